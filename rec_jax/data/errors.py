"""The one error type of the data package."""


class DataError(ValueError):
    """Bad or missing data: the message names the file, line and field where it can.

    A ``ValueError`` so that callers catching config/data errors generically still
    see it; the CLI turns it into one ``error: ...`` line and a non-zero exit.
    """
