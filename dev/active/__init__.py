"""The corrections / active-learning study (docs/results_active.md)."""
