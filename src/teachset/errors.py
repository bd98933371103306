"""The one exception type a user sees: a one-line message that says what is wrong and what to do."""


class TeachsetError(Exception):
    """A problem with the user's input or environment. The CLI prints it without a traceback."""
