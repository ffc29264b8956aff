"""Error types that the CLI maps to exit codes."""


class InvalidInput(Exception):
    """Bad input from the user (spec, data, checkpoint, path): exit code 2.

    The message must name what was wrong and where; the CLI prints it without
    a traceback.
    """
