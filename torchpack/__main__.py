"""``python -m torchpack``: the command line."""

import sys

from torchpack.cli import program

if __name__ == "__main__":
    sys.exit(program())
