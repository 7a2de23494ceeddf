"""Chapter drivers: one module per chapter family; only notebooks import these."""
