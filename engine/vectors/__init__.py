"""Vectors: reading layers, writing polygons, class map -> polygons."""
