"""Model files: the JSON config, the safetensors header, loading and saving."""
