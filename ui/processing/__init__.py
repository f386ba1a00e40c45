"""The "Map Refiner" Processing provider (id ``map_refiner``) and its algorithms."""
