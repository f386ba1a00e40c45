"""``python -m map_refiner``: the command line."""

import sys

from .cli import main

sys.exit(main())
