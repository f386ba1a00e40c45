"""Desktop screenshot sessions in a real QGIS under Xvfb, and the QGIS profile they use."""
