"""The `keras-ser` command-line interface (see `keras_ser_cli.main`).

The application layer: it may import every package below it
(`tf_pipeline -> keras_ser -> saved_models -> serving`), and none of them
imports it (tests/test_layering.py checks the order).
"""
