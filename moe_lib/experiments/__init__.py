"""Chapter drivers: one module per chapter family; only notebooks (and tests) import these.

- ``primer``: the MoE-layer checks of the primer chapter (``random_layer``, parameter tables,
  timings);
- ``p2_shallow``: the shallow-MoE chapters of P2 (``sphere_problem``, ``evaluate``, the routing
  lemma, ``theorem_4_8_sweep``, ``corollary_4_9_sweep``);
- ``p2_training``: P2's trained experiments (Exp I: circle in R^D; Exp II: deep vs shallow on a
  compositional target);
- ``p2_geometry``: targets, samplers and problems of P2's geometry chapters (Thm 3.1, Thm 4.4,
  Ex 4.6, Def 4.7);
- ``p1_approximation``: P1's routing-tree, approximation, trade-off and vector-valued chapters;
- ``p1_experiments``: P1's experiments (grid regression, digits), our protocol;
- ``p1_store_probe``: the child process that measures peak memory of the expert store;
- ``p3_generalization``: P3's bound-versus-gap sweeps, spectral complexity, optimal k.

Chapters import a module, e.g. ``from moe_lib.experiments import p2_training as x2t``.
"""
