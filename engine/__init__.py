"""The Map Refiner engine: numpy, torch and GDAL only (never qgis or Qt).

Import submodules directly (``from map_refiner.engine.refine import pipeline``);
importing this package pulls in nothing heavy.
"""
