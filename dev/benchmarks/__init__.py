"""Speed figures (make bench -> docs/benchmarks.md) and the GPU box checks."""
