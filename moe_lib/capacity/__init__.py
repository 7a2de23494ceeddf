"""Capacity: VC dimension (P1), Natarajan dimension, growth functions, Rademacher complexity and
the generalization-bound formulas (P3).

- ``vc``: P1's VC bound L max{nL, JW}, its crossover, Sauer and Cover counts, exact sign-pattern
  counts by linear programming (HiGHS);
- ``superexpressive``: the one-parameter sin network that shatters any finite set (mpmath) and
  where float64 stops doing so;
- ``natarajan``: exact N-shattering of linear top-k routers by LP, the Natarajan bounds;
- ``growth``: binomial counts (``log_binom``, ``relaxed_log_binom``, Sauer-Shelah), routing-pattern
  counts of random and all linear routers, Cover's count;
- ``rademacher``: seeded Monte Carlo Rademacher complexities and their closed forms (linear
  classes, finite classes and Massart, the ramp loss);
- ``bounds``: P3's generalization bound (relaxed and exact), its terms, where it stops being vacuous;
- ``spectral``: spectral complexity of (stacked) experts and the margin bound it implies.

Chapters import a module, e.g. ``from moe_lib.capacity import bounds as cb``.
"""

from . import bounds, growth, natarajan, rademacher, spectral, superexpressive, vc

__all__ = ["bounds", "growth", "natarajan", "rademacher", "spectral", "superexpressive", "vc"]
