"""Rasters: reading, writing GeoTIFFs, pixel grids, safe output files, quick-look PNGs."""
