"""Code the metacarpal_contour configs cannot express: the closed spline and the Curve-GCN loss."""
