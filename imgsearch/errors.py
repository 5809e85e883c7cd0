"""Errors that the CLI turns into one line on stderr (exit 2), never a traceback."""


class UserError(Exception):
    """A problem with the user's input or environment, with a message that says what to do."""
