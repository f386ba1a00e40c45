"""The paper's experiment (make experiment -> docs/results.md) and its baselines."""
