"""`python -m teachset ...`: the same as the `teachset` command."""

import sys

from .cli import main

sys.exit(main())
