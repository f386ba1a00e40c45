"""The Map Refiner dialog and its widgets."""
