"""Resume an interrupted run: count what an output file already holds, skip that much input.

An output file written by bertcli holds whole JSON lines only, except after a hard kill
(SIGKILL, power loss), which can leave a torn last line: it is cut off. The records
already written are skipped in the input, and the last one written is checked against
its input record (``id`` field when present, else the text fields), so that resuming
with the wrong input file is refused instead of silently producing a wrong file.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

from ..errors import InputError
from .readers import Record

CHECK_KEYS = ("id", "text", "text_pair")


def prepare_resume(path: str | Path) -> tuple[int, dict | None]:
    """Cut a torn last line off ``path``; return ``(complete_records, last_record)``.

    Raises:
        InputError: the file holds a complete line that is not a JSON object (not a
            bertcli JSONL output).
    """
    p = Path(path)
    if not p.exists():
        return 0, None
    with open(p, "rb+") as f:
        data = f.read()
        keep = data.rfind(b"\n") + 1
        if keep != len(data):
            f.truncate(keep)
            f.flush()
            os.fsync(f.fileno())
    lines = data[:keep].splitlines()
    last = None
    if lines:
        try:
            last = json.loads(lines[-1])
        except ValueError:
            last = None
        if not isinstance(last, dict):
            raise InputError(f"cannot resume '{p}': line {len(lines)} is not a JSON object",
                             "--resume continues a JSONL file written by bertcli")
    return len(lines), last


def skip_done(records: Iterator[Record], done: int, last: dict | None, out_name: str,
              compose) -> Iterator[Record]:
    """Skip the first ``done`` good records (bad ones wrote no output line); check the last
    skipped one against ``last``; yield the rest unchanged.

    ``compose(record)`` gives the input-side fields of the output record for the check.

    Raises:
        InputError: the input has fewer records than the output file, or the last written
            record does not belong to this input.
    """
    seen = 0
    for rec in records:
        if seen < done:
            if rec.error is None:
                seen += 1
                if seen == done and last is not None:
                    expect = compose(rec)
                    for k in CHECK_KEYS:
                        if k in expect and k in last and expect[k] != last[k]:
                            raise InputError(
                                f"cannot resume '{out_name}': its record {done} has {k}={_short(last[k])} but input "
                                f"record {done} has {k}={_short(expect[k])}", "is this the same input?")
            continue
        yield rec
    if seen < done:
        raise InputError(f"cannot resume '{out_name}': it holds {done} records but the input has only {seen}",
                         "is this the same input?")


def _short(v) -> str:
    s = json.dumps(v, ensure_ascii=False)
    return s if len(s) <= 40 else s[:39] + "…\""
