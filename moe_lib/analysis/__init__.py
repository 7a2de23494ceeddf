"""Analysis of measured numbers: rates and slopes, routing-path statistics."""
