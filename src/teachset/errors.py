"""The exceptions a user sees: a one-line message that says what is wrong and what to do."""

from __future__ import annotations


class TeachsetError(Exception):
    """A problem with the user's input or environment. The CLI prints it without a traceback."""


class OptionError(TeachsetError):
    """A bad value of one named option. The message names the option in the library's terms
    ('epochs'); the command line shows the flag instead (--epochs)."""

    def __init__(self, option: str, message: str):
        self.option, self.template = option, message
        super().__init__(message.format(option=f"'{option}'"))

    def for_flag(self, flag: str) -> str:
        return self.template.format(option=flag)
