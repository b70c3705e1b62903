"""The one exception type for mistakes a user can make.

Everything a user can get wrong (a missing file, a malformed line, a checkpoint of the
wrong variant) raises :class:`KgptError` with a message that names what, where and how
to fix it. The CLI prints that message as one line and exits non-zero; anything else
that escapes is a bug in kgpt and keeps its traceback.
"""


class KgptError(Exception):
    """A user-facing error: the message is the whole story, no traceback needed."""
