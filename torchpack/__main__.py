"""``python -m torchpack``: the command line."""

import sys

from torchpack.cli import main

if __name__ == "__main__":
    sys.exit(main())
