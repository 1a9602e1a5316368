"""Reading a data file's lines, and the :class:`Issue` every reader reports repairs with.

Text decoding (``encoding="auto"``, the default): UTF-8, a BOM at the start of the file
is dropped, CRLF/CR/LF line ends are accepted; a line that is not valid UTF-8 is read
as latin-1 (every byte is a latin-1 character) and reported. Any other ``encoding`` is
strict: an undecodable line is an error.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ...errors import DataError


@dataclass
class Issue:
    """A repaired or suspicious spot in a data file (reported, not fatal)."""

    source: str
    line: int | None
    message: str

    def __str__(self) -> str:
        return f"{self.source}, line {self.line}: {self.message}" if self.line else f"{self.source}: {self.message}"


def _err(source, line, message, hint=None) -> DataError:
    where = f"{source}, line {line}" if line else str(source)
    return DataError(f"{where}: {message}", hint)


def read_lines(path: str | Path, encoding: str = "auto") -> tuple[list[str], list[Issue]]:
    """All lines of a text file, without line ends (1-based line ``n`` is ``lines[n-1]``).

    Args:
        path: the file.
        encoding: ``auto`` (UTF-8 with a per-line latin-1 fallback, reported) or a Python
            codec name (strict).

    Returns:
        ``(lines, issues)``.

    Raises:
        DataError: the file is missing, a folder, unreadable, or (with an explicit
            encoding) has a line that does not decode.
    """
    p = Path(path)
    if not p.exists():
        raise DataError(f"data file '{p}' does not exist")
    if p.is_dir():
        raise DataError(f"data path '{p}' is a folder, expected a file")
    try:
        raw = p.read_bytes()
    except OSError as e:
        raise DataError(f"cannot read '{p}': {e.strerror}") from None
    if raw.startswith(b"\xef\xbb\xbf"):
        raw = raw[3:]
    # splitlines() would also split on \x0b, \x1c, U+2028... inside text; only real line ends count.
    parts = raw.replace(b"\r\n", b"\n").replace(b"\r", b"\n").split(b"\n")
    if parts and parts[-1] == b"":
        parts.pop()
    lines: list[str] = []
    issues: list[Issue] = []
    enc = (encoding or "auto").lower()
    for n, b in enumerate(parts, 1):
        if enc == "auto":
            try:
                lines.append(b.decode("utf-8"))
            except UnicodeDecodeError as e:
                lines.append(b.decode("latin-1"))
                issues.append(Issue(str(p), n, f"not valid UTF-8 (byte {e.start}); read as latin-1"))
        else:
            try:
                lines.append(b.decode(enc))
            except LookupError:
                raise DataError(f"unknown encoding '{encoding}'", "use auto, utf-8, latin-1, cp1252, ...") from None
            except UnicodeDecodeError as e:
                raise _err(p, n, f"cannot decode byte {e.start} as {encoding}",
                           "pass the file's encoding (e.g. latin-1) or auto") from None
    return lines, issues

