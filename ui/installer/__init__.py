"""Installing the engine's dependencies (torch, safetensors) into the QGIS profile."""
