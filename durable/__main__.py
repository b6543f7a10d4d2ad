"""``python -m durable``: the command line."""

import sys

from durable.cli import main

sys.exit(main())
