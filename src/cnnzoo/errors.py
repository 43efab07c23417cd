"""The exception types for mistakes a user can fix (bad name, bad file, bad option): the
command line prints their message as one line and exits with 2."""


class CnnzooError(Exception):
    """A user-facing error: its message is one line saying what is wrong and what to do."""


class OptionError(CnnzooError, ValueError):
    """An option value that is refused (a model option the builder rejects, a bench flag that
    does not fit the others, an unknown precision): a user error that is also a ValueError, as
    the builders raise it."""
