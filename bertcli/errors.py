"""Error types for bertcli.

Every error a user can cause (a bad model folder, bad input, an unavailable device)
is a :class:`BertcliError`. The CLI prints ``Error: <message>; <hint>`` on one line on
stderr and exits with the error's ``exit_code``: 2 for a :class:`UsageError` (a wrong
command line, as Click's own usage errors), 1 for everything else (input data, model
folders, devices); it never shows a traceback for these. Library users catch
:class:`BertcliError` or one of its kinds.
"""

from __future__ import annotations


class BertcliError(Exception):
    """Base class of all user-facing bertcli errors.

    Args:
        message: one line saying what is wrong (no trailing period needed).
        hint: optional one line saying how to fix it.
    """

    exit_code = 1

    def __init__(self, message: str, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:  # one line, always
        return self.message if not self.hint else f"{self.message} ({self.hint})"


class ModelError(BertcliError):
    """The model folder is missing, incomplete, unsafe or lacks the needed head."""


class InputError(BertcliError):
    """An input record is malformed. ``line`` is 1-based when known."""

    def __init__(self, message: str, hint: str | None = None, line: int | None = None,
                 source: str | None = None):
        super().__init__(message, hint)
        self.line = line
        self.source = source

    def where(self) -> str:
        src = self.source or "input"
        return f"{src}, line {self.line}" if self.line is not None else src


class UsageError(InputError):
    """The command line itself is wrong: texts and ``--input`` both given, no input at all,
    an odd number of pair arguments, ``-o`` naming the input file, or an option value the
    model cannot take (``--labels``, ``--targets``, ``--stride``). Exit status 2, as for
    Click's own usage errors; an :class:`InputError`, so that API callers catching that
    still do."""

    exit_code = 2


class DeviceError(BertcliError):
    """The requested device or dtype is not available here."""


class DataError(BertcliError):
    """A training/evaluation data file is malformed (names file and line)."""
