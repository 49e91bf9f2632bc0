"""Bootstrap intervals over the unit that leaks (scenes, queries): resample units with replacement and read the
spread of a statistic, so a table's numbers come with how much they could move on other data like it."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np


def bootstrap_interval(
    units: int, statistic: Callable[[np.ndarray], float], draws: int = 1000, seed: int = 0, level: float = 0.95
) -> tuple[float, float]:
    """The central `level` percentile interval of `statistic(indices)` over `draws` resamples of `units` units
    (indices may repeat); draws where the statistic is undefined (NaN) are left out."""
    if units == 0:
        return float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    values = np.array([statistic(rng.integers(0, units, units)) for _ in range(draws)], dtype=float)
    values = values[~np.isnan(values)]
    if not len(values):
        return float("nan"), float("nan")
    tail = 100 * (1 - level) / 2
    low, high = np.percentile(values, [tail, 100 - tail])
    return float(low), float(high)
