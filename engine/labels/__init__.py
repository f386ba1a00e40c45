"""Training labels on an image grid: vector layers burned, label rasters read."""
