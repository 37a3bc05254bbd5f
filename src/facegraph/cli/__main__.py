"""``python -m facegraph.cli`` (and ``torchrun -m facegraph.cli``) runs the command line."""

import sys

from facegraph.cli import main

sys.exit(main())
