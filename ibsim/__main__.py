"""`python -m ibsim` runs the simulated gateway (same as the `ibsim` command)."""

import sys

from ibsim.cli import main

sys.exit(main())
