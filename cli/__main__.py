"""`python -m cli ...`, the same as the `clickstream` command."""

import sys

from .main import main

sys.exit(main())
