"""Geometry: manifolds, partitions of unity, charts and covers."""
