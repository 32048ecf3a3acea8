"""Proportions with Wilson score 95% intervals (Wilson 1927; Newcombe 1998 method 3, no continuity correction)."""

from __future__ import annotations

import math

from .roc import Z975


def wilson(successes: int, n: int, z: float = Z975) -> tuple[float, float]:
    if n <= 0:
        raise ValueError("a proportion needs n > 0")
    if not 0 <= successes <= n:
        raise ValueError(f"successes must be in 0..{n}")
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def proportion(successes: int, n: int) -> dict:
    """Estimate with its Wilson 95% CI and the counts, as the reports show it."""
    return {"estimate": successes / n, "ci95": list(wilson(successes, n)), "count": [int(successes), int(n)],
            "ci_method": "Wilson score interval"}
