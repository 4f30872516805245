"""`python -m experiments.reproduce`: the command line of the package (`cli.main`)."""

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
