"""Small statistics shared by the reports of several apps."""

import math


def percentile(values: list[float], fraction: float) -> float | None:
    """Continuous percentile, as PostgreSQL's percentile_cont and numpy's default: interpolate
    between the nearest ranks. The median is 0.5; an empty list has none."""
    if not values:
        return None
    ordered = sorted(values)
    position = (len(ordered) - 1) * fraction
    low, high = math.floor(position), math.ceil(position)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)
