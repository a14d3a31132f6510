"""`python -m momentumbot` runs the command line."""

import sys

from momentumbot.cli import main

sys.exit(main())
