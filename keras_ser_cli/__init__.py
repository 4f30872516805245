"""The `keras-ser` command-line interface (see `keras_ser.cli.main`)."""
