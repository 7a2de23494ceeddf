"""Constructions: networks whose weights are written down from a proof, not trained.

- ``wiring``: shared weight-writing tools (state coordinates, hidden layers built row block by
  row block, carried coordinates, parameter roles, fixed gates);
- ``p2_shallow``: P2 Thm 4.8 / Cor 4.9, the two-layer MoE on a manifold (partition-of-unity
  network, chart experts);
- ``p2_compositional``: P2 Thm 5.3, deep MoEs for compositional targets on a cube;
- ``p2_product``: P2 Thm 5.2, the deep MoE on a product of circles;
- ``p1_lipschitz``: P1's MoMLP for Lipschitz targets (constant and Freudenthal-hat experts on the
  cells of a grid, exact loaded-parameter counts).

A paper's modules carry its prefix (``p1_``, ``p2_``, ``p3_``); one paper's modules never import
another's. Chapters import a module, e.g. ``from moe_lib.constructions import p2_shallow as p2s``.
"""
