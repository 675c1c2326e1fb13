"""``python -m torchpack``: the command line."""

import sys

from torchpack.cli import main

sys.exit(main())
