"""Chapter drivers: one module per chapter family; only notebooks (and tests) import these.

- ``primer``: the MoE-layer checks of the primer chapter (``random_layer``, parameter tables,
  timings);
- ``p2_shallow``: the shallow-MoE chapters of P2 (``sphere_problem``, ``evaluate``, the routing
  lemma, ``theorem_4_8_sweep``, ``corollary_4_9_sweep``);
- ``p2_training``: P2's trained experiments (Exp I: circle in R^D; Exp II: deep vs shallow on a
  compositional target);
- ``p2_geometry``: targets, samplers and problems of P2's geometry chapters (Thm 3.1, Thm 4.4,
  Ex 4.6, Def 4.7).

Chapters import a module, e.g. ``from moe_lib.experiments import p2_training as x2t``.
"""
