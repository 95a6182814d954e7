class StackError(RuntimeError):
    """A stack operation failed; the message says what went wrong and what to do about it."""
