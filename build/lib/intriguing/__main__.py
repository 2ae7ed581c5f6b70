"""``python -m intriguing``: see :mod:`intriguing.cli`."""

import sys

from .cli import main

sys.exit(main())
