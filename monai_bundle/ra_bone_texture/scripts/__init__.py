"""Helpers of the ra_bone_texture bundle that configs cannot express: the Deep-TEN network and the ROI cut."""
