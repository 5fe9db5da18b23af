"""`python -m arsample.cli ...` (what torchrun runs for a sharded benchmark)."""

import sys

from .main import main

sys.exit(main())
