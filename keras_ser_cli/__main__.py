"""`python -m keras_ser.cli ...` is the same as `keras-ser ...`."""

import sys

from keras_ser.cli.main import run

sys.exit(run())
