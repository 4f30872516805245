"""`python -m keras_ser_cli ...` is the same as `keras-ser ...`."""

import sys

from keras_ser_cli.main import run

sys.exit(run())
