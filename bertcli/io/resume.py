"""Resume an interrupted run: count what an output file already holds, skip that much input.

An output file written by bertcli holds whole JSON lines only, except after a hard kill
(SIGKILL, power loss), which can leave a torn last line: it is cut off. The records
already written are skipped in the input, and the last one written is checked against
its input record (the ``id`` field when present, and the field(s) the text(s) came from:
``--field``, ``--field-b``, whatever they are named), so that resuming with the wrong
input file is refused instead of silently producing a wrong file. Scores
written with another ``--precision`` than the resuming run's are refused too (see
:func:`check_precision`).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator
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
              compose, fields: Iterable[str | None] = ()) -> Iterator[Record]:
    """Skip the first ``done`` good records (bad ones wrote no output line); check the last
    skipped one against ``last``; yield the rest unchanged.

    ``compose(record)`` describes the input side of its output record for the check (see
    :func:`check_last`).
    ``fields`` names the input fields the text(s) came from (``--field``, ``--field-b``;
    None entries are ignored): they are compared after ``id`` and before the other
    :data:`CHECK_KEYS`, and must be in the written record wherever the input record has
    them (see :func:`check_last`).

    Raises:
        InputError: the input has fewer records than the output file, or the last written
            record does not belong to this input.
    """
    fields = tuple(f for f in fields if f)
    seen = 0
    for rec in records:
        if seen < done:
            if rec.error is None:
                seen += 1
                if seen == done and last is not None:
                    check_last(last, compose(rec), done, out_name, fields)
            continue
        yield rec
    if seen < done:
        raise InputError(f"cannot resume '{out_name}': it holds {done} records but the input has only {seen}",
                         "is this the same input?")


def check_last(last: dict, expect: dict, n: int, out_name: str, fields: Iterable[str] = ()) -> None:
    """Check that ``last``, the ``n``-th record written to ``out_name``, was written from the
    input record described by ``expect``: input field name -> ``(key it is written under,
    value)`` (the key from :func:`bertcli.cli.output.input_names`, so a field renamed
    ``input_<name>`` beside a result key is looked up there).

    Compared, in order: ``id``, then ``fields`` (the fields the texts came from), then the
    other :data:`CHECK_KEYS`, each only where the input has it. A key of ``fields`` missing
    from ``last`` is a mismatch (the same input and options always write it); a missing
    :data:`CHECK_KEYS` key is not checked.

    Raises:
        InputError: ``Error: cannot resume 'FILE': its record N has KEY=... but input
            record N has FIELD=...; is this the same input?``, or ``... its record N has
            no KEY ...``.
    """
    fields = tuple(fields)
    for k in dict.fromkeys(("id", *fields, *CHECK_KEYS)):  # ordered, without duplicates
        if k not in expect:
            continue
        written, want = expect[k]
        if written not in last:
            if k in fields:
                raise InputError(f"cannot resume '{out_name}': its record {n} has no {written} but input "
                                 f"record {n} has {k}={_short(want)}", "is this the same input?")
            continue
        if last[written] != want:
            raise InputError(
                f"cannot resume '{out_name}': its record {n} has {written}={_short(last[written])} but input "
                f"record {n} has {k}={_short(want)}", "is this the same input?")


#: bytes read from the end of the file to judge the precision it was written with.
PRECISION_SAMPLE = 1 << 18
#: non-integral numbers needed to tell a lower precision from scores that merely end in 0
#: (at N places, a score ends in a 0 digit one time in ten).
PRECISION_EVIDENCE = 8


def written_precision(path: str | Path) -> tuple[int | None, int]:
    """``(decimal places, count)`` of the non-integral numbers in the last complete lines
    of the JSONL file ``path``: the most decimal places any of them has (None when there
    is none) and how many there are. Every float bertcli writes is rounded to
    ``--precision`` places, so the first value is the precision the file was written with
    as soon as a few scores are in it."""
    from decimal import Decimal

    places: list[int] = []

    def number(s: str):
        d = Decimal(s)
        if d != d.to_integral_value():
            places.append(-d.normalize().as_tuple().exponent)
        return float(s)

    p = Path(path)
    with open(p, "rb") as f:
        size = f.seek(0, os.SEEK_END)
        f.seek(max(0, size - PRECISION_SAMPLE))
        data = f.read()
    lines = data.split(b"\n")[1 if size > PRECISION_SAMPLE else 0:-1]  # whole lines only
    for line in lines:
        try:
            json.loads(line, parse_float=number)
        except ValueError:
            continue
    return (max(places) if places else None), len(places)


def check_precision(path: str | Path, precision: int) -> None:
    """Refuse to append scores rounded to ``precision`` places to a file written with another
    ``--precision``: a file with more places than ``precision`` always; one with fewer when
    it holds at least :data:`PRECISION_EVIDENCE` non-integral numbers (fewer cannot tell).

    Raises:
        InputError: naming the file's precision and how to resume.
    """
    if not Path(path).is_file():
        return
    found, n = written_precision(path)
    if found is None or found == precision or (found < precision and n < PRECISION_EVIDENCE):
        return
    raise InputError(f"cannot resume '{path}': its scores were written with --precision {found} "
                     f"but this run uses --precision {precision}",
                     f"resume with --precision {found}, the options of the interrupted run")


def _short(v) -> str:
    s = json.dumps(v, ensure_ascii=False)
    return s if len(s) <= 40 else s[:39] + "…\""
