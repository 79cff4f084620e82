"""Errors every layer may raise to say a user asked for something impossible (bad argument,
non-empty mountpoint, unknown mount). The CLI prints them as one line with their exit code."""

from __future__ import annotations


class UsageError(Exception):
    def __init__(self, message: str, exit_code: int = 2):
        super().__init__(message)
        self.exit_code = exit_code
