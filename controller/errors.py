"""Errors a user can meet, each carrying the message that names the cause and the fix."""

from __future__ import annotations


class CurtaildError(Exception):
    """Base of the errors the CLI turns into one clear message and an exit code."""

    exit_code = 1


class ConfigError(CurtaildError):
    """The configuration is invalid: every problem, one per line, with its key path."""

    exit_code = 2

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("\n".join(problems))


class UsageError(CurtaildError):
    """Bad command-line arguments."""

    exit_code = 2
