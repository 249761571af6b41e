"""`python -m daemon` is the `orderflowd` command."""

import sys

from daemon.cli import main

sys.exit(main())
