"""``python -m lazcancel``: the same command line as the ``lazcancel`` console script."""

import sys

from lazcancel.cli import main

if __name__ == "__main__":
    sys.exit(main())
