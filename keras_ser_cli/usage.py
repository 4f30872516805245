"""`UsageError`, the error of a bad flag value or argument (its own module: every subcommand raises it)."""


class UsageError(Exception):
    """A bad flag value or argument: printed as one line, exit status 2 (`keras_ser_cli.main.run`)."""
