"""Helpers of the sjogren_us_segmentation bundle that its configs cannot express."""
