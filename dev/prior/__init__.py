"""Refining a map the user already has: measurements (docs/results_prior.md)."""
