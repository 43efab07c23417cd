"""The one exception type for mistakes a user can fix (bad name, bad file, bad option)."""


class CnnzooError(Exception):
    """A user-facing error: its message is one line saying what is wrong and what to do."""
