"""Errors a user can cause and the CLI reports in one line (no traceback)."""


class CliError(Exception):
    """A problem to report in one line, then exit 1."""
