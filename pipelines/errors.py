"""Error types the command line maps to exit codes.

`BadInput` (exit 2) is for anything the user can fix: a flag, a file, a reference. Its message is
one line naming the flag or file, what is wrong and what to do. `RunFailure` (exit 1) is for
failures at run time that are not the user's input.
"""

from __future__ import annotations


class GdriveError(Exception):
    exit_code = 1


class BadInput(GdriveError):
    """Bad usage or bad input: exit code 2, one line, nothing written."""

    exit_code = 2


class RunFailure(GdriveError):
    """A failure at run time: exit code 1."""

    exit_code = 1


class TrajectoryTooShort(BadInput):
    """A logged (`gt`) or waypoint trajectory that ends before the asked horizon. `available` is the
    number of whole keyframes it covers after the start frame, so a caller that asks in other units
    (`generate --frames`) can say how much fits without reading the message."""

    def __init__(self, message: str, available: int):
        super().__init__(message)
        self.available = available
