"""The two kinds of error the CLI turns into one line and an exit status."""


class UsageError(Exception):
    """A bad input (chapter id, parameter, project file): the CLI prints it on one line and exits 2."""
