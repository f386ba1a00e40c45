"""Map Refiner: refine coarse classification maps with a learned RNN.

QGIS calls :func:`classFactory`. Nothing here imports torch or qgis at import
time, so ``import map_refiner`` is cheap and works outside QGIS.
"""


def classFactory(iface):  # noqa: N802 (QGIS naming)
    from .plugin import MapRefinerPlugin

    return MapRefinerPlugin(iface)
