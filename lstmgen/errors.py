"""Exception types of lstmgen; the CLI maps every one of them to exit code 2."""


class LstmgenError(Exception):
    """A problem with what the user asked for or handed in (not a bug in lstmgen)."""


class CellError(LstmgenError):
    """A cell name or cell file that cannot be used."""


class DocumentError(LstmgenError):
    """A document handed to `lstmgen check` that cannot be read at all."""


class OutputError(LstmgenError):
    """An output path that cannot be written."""


class LayoutError(LstmgenError):
    """A cell whose equations do not fit the requested weight layout."""


class UsageError(LstmgenError):
    """Command-line arguments that do not make sense."""
