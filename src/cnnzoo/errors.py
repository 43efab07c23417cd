"""The one exception type for mistakes a user can fix (bad name, bad file, bad option)."""


class CnnzooError(Exception):
    """A user-facing error: its message is one line saying what is wrong and what to do."""


class OptionError(CnnzooError, ValueError):
    """A model option the builder rejects (a bad stem, block, width...): a user error that is
    also a ValueError, as the builders raise it."""
