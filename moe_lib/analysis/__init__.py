"""Analysis of measured numbers: rates and slopes, routing-path statistics.

- ``rates``: ``loglog_slope`` (least-squares slope of log y on log x), ``slope_interval`` (that
  slope with its standard error and a t confidence interval), ``one_sided_difference``
  (finite differences for one-sided derivatives);
- ``paths``: ``path_ids`` (one integer per routing path), ``n_distinct_paths``,
  ``task_path_counts``, ``path_purity``, ``task_purity``, ``group_purity``, ``is_bijection``;
- ``spread``: seed-to-seed spread of trained results (seeded bootstrap intervals of a median and of
  a ratio of medians, ``null_spread_bound``), the source of trained-model thresholds.

Chapters write ``from moe_lib import analysis as an``.
"""

from .paths import (
    group_purity,
    is_bijection,
    n_distinct_paths,
    path_ids,
    path_purity,
    task_path_counts,
    task_purity,
)
from .rates import loglog_slope, one_sided_difference, slope_interval
from .spread import median_interval, null_spread_bound, ratio_interval

__all__ = [
    "group_purity", "is_bijection", "n_distinct_paths", "path_ids", "path_purity",
    "task_path_counts", "task_purity", "loglog_slope", "one_sided_difference", "slope_interval",
    "median_interval", "null_spread_bound", "ratio_interval",
]
