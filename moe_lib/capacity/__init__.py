"""Capacity: VC dimension (P1), Natarajan dimension, growth functions, Rademacher complexity and
the generalization-bound formulas (P3)."""
