"""Geometry: manifolds, partitions of unity, charts and covers.

- ``manifolds``: ``EmbeddedManifold``, ``Sphere``, ``FlatTorus`` (orthogonally embedded in R^D by
  ``random_embedding``), ``cover_radius``, samples in balls and caps (``ball_points``,
  ``ball_grid``, ``cap_points``), ``rotated_axis_centres``, ``EXACT`` (exact cdist mode);
- ``partition``: the bump ``bump``/``log_bump`` and ``partition_of_unity`` -> ``PartitionOfUnity``;
- ``charts``: ``TangentChart``/``tangent_charts``, ``StereographicChart``, ``EmbeddedChart``,
  ``lower_lipschitz``, ``max_chart_radius``, ``greedy_chart_cover``, ``greedy_curve_cover``.

Chapters write ``from moe_lib import geometry as geo``.
"""

from .charts import (
    EmbeddedChart,
    StereographicChart,
    TangentChart,
    greedy_chart_cover,
    greedy_curve_cover,
    lower_lipschitz,
    max_chart_radius,
    tangent_charts,
)
from .manifolds import (
    EXACT,
    EmbeddedManifold,
    FlatTorus,
    Sphere,
    as_centre,
    as_points,
    ball_grid,
    ball_points,
    cap_points,
    cover_radius,
    random_embedding,
    rotated_axis_centres,
)
from .partition import PartitionOfUnity, bump, log_bump, partition_of_unity, radii

__all__ = [
    "EmbeddedChart", "StereographicChart", "TangentChart", "greedy_chart_cover",
    "greedy_curve_cover", "lower_lipschitz", "max_chart_radius", "tangent_charts", "EXACT",
    "EmbeddedManifold", "FlatTorus", "Sphere", "as_centre", "as_points", "ball_grid",
    "ball_points", "cap_points", "cover_radius", "random_embedding", "rotated_axis_centres",
    "PartitionOfUnity", "bump", "log_bump", "partition_of_unity", "radii",
]
