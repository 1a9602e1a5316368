"""Write result records: JSONL (one line per record) or a streamed JSON array.

Floats are plain JSON numbers rounded to ``precision`` decimal places (the core keeps
full precision); non-ASCII text is written as UTF-8, not escaped. Each record is
written with a single ``write`` call so that an interrupted run leaves whole lines.
"""

from __future__ import annotations

import json
import math
from typing import TextIO


def round_floats(obj, precision: int):
    """Round every float inside ``obj`` (dicts, lists) to ``precision`` places; NaN/inf -> None."""
    if isinstance(obj, float):
        if not math.isfinite(obj):
            return None
        return round(obj, precision)
    if isinstance(obj, dict):
        return {k: round_floats(v, precision) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [round_floats(v, precision) for v in obj]
    return obj


def dumps(record: dict, precision: int = 6) -> str:
    return json.dumps(round_floats(record, precision), ensure_ascii=False, allow_nan=False)


class JsonlWriter:
    """One JSON object per line."""

    def __init__(self, stream: TextIO, precision: int = 6):
        self.stream, self.precision, self.count = stream, precision, 0
        self.closed = False

    def write(self, record: dict) -> None:
        self.stream.write(dumps(record, self.precision) + "\n")
        self.count += 1

    def flush(self) -> None:
        self.stream.flush()

    def close(self) -> None:
        self.closed = True
        self.flush()


class JsonArrayWriter(JsonlWriter):
    """A JSON array streamed row by row: ``[`` first, ``]`` at close; ``[]`` when empty."""

    def write(self, record: dict) -> None:
        self.stream.write(("[\n" if self.count == 0 else ",\n") + dumps(record, self.precision))
        self.count += 1

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        self.stream.write("[]\n" if self.count == 0 else "\n]\n")
        self.flush()
