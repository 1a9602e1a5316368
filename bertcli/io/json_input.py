"""JSON input: JSON Lines (one object per line) and a JSON array of objects, read into
:class:`~bertcli.io.readers.Record` objects, with a one-line reason for each bad record (its
line, the field, what was found); :func:`bertcli.io.readers.read_records` picks the format."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator

from .readers import _SURROGATE, Record, _decoded, _lone


def _get_str(obj: dict, key: str, option: str) -> tuple[str | None, str | None]:
    if key not in obj:
        return None, f"missing field '{key}' (the object has {_keys(obj)}); choose one with {option}"
    v = obj[key]
    if not isinstance(v, str):
        return None, f"field '{key}' is {_json_kind(v)}, expected a string"
    return v, None


def _keys(obj: dict, most: int = 10) -> str:
    if not obj:
        return "no fields"
    # the message stays one printable line: control characters, line and paragraph
    # separators, bidi controls ... are shown as escapes; other non-ASCII is kept
    names = ["".join(c if c.isprintable() else f"\\u{ord(c):04x}" if ord(c) < 0x10000 else f"\\U{ord(c):08x}"
                     for c in k) for k in list(obj)[:most]]
    more = f", ... ({len(obj) - most} more)" if len(obj) > most else ""
    return "fields " + ", ".join(names) + more


def _json_error(e: ValueError) -> str:
    if isinstance(e, json.JSONDecodeError):
        if e.msg.startswith("Invalid control character") and e.pos < len(e.doc):
            c = ord(e.doc[e.pos])
            return (f"malformed JSON: control character U+{c:04X} inside a string at column {e.colno} "
                    f"(JSON spells it \\u{c:04x})")
        # json's "Unterminated string starting at" already ends in "at"
        return f"malformed JSON: {e.msg.removesuffix(' at')} at column {e.colno}"
    # e.g. an integer longer than Python's int_max_str_digits
    return f"malformed JSON: {str(e).split(':')[0]}"


def _loads(s: str):
    """``(object, None)`` or ``(None, error)`` for one JSON text."""
    try:
        return json.loads(s), None
    except RecursionError:
        return None, "malformed JSON: nested too deeply"
    except ValueError as e:
        return None, _json_error(e)


#: a JSON escape of a UTF-16 surrogate; only then can a parsed string hold a lone one
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89abcdefABCDEF]")


def _deep_surrogate(v) -> str | None:
    if isinstance(v, str):
        m = _SURROGATE.search(v)
        return _lone(ord(m.group()), "a JSON string") if m else None
    if isinstance(v, dict):
        return next((e for k, x in v.items() for e in (_deep_surrogate(k), _deep_surrogate(x)) if e), None)
    if isinstance(v, list):
        return next((e for x in v if (e := _deep_surrogate(x))), None)
    return None


def _from_object(i: int, n: int, obj, field: str, field_b: str | None, raw: str) -> Record:
    """The record of one parsed JSON value (a JSONL line or a JSON array element)."""
    if not isinstance(obj, dict):
        return Record(i, n, error=f"expected a JSON object, got {_json_kind(obj)}")
    if _SURROGATE_ESCAPE.search(raw):
        err = _deep_surrogate(obj)
        if err:
            return Record(i, n, error=err)
    text, err = _get_str(obj, field, "--field")
    pair = None
    if err is None and field_b is not None:
        pair, err = _get_str(obj, field_b, "--field-b")
    if err:
        return Record(i, n, fields=obj, error=err)
    return Record(i, n, text, pair, fields=obj)


_ARRAY_HINT = "; for a file holding one JSON array of objects use --input-format json (or a .json name)"


def _read_jsonl(lines, field: str, field_b: str | None) -> Iterator[Record]:
    # A blank line is no record (JSON Lines; jq and pandas skip it too): drop it before the
    # records are numbered, keeping each line's own number for errors.
    lines = ((n, raw) for n, raw in lines if raw.strip(b" \t"))
    for i, n, s, bad in _decoded(lines):
        if bad is not None:
            yield bad
            continue
        obj, err = _loads(s)
        rec = Record(i, n, error=err) if err else _from_object(i, n, obj, field, field_b, s)
        # the first line of a JSON array file: one array, or "[" / "[{..." of a pretty-printed one
        if i == 0 and rec.error and (isinstance(obj, list) or s.strip() == "[" or s.lstrip().startswith("[{")):
            rec.error += _ARRAY_HINT
        yield rec


_WS = re.compile(r"[ \t\n\r]*")


def _read_json_array(lines, field: str, field_b: str | None) -> Iterator[Record]:
    """Records from one JSON array of objects (read whole); see the module docstring.

    Elements that are not objects or lack the field are error records like JSONL lines;
    a syntax error or invalid UTF-8 outside a string ends the array: a fatal record.
    """
    raw = b"\n".join(r for _, r in lines)  # line numbers stay: lines are consecutive from 1
    # undecodable bytes become U+DC80..U+DCFF: an element holding one is an error record
    s = raw.decode("utf-8", errors="surrogateescape")
    dec = json.JSONDecoder()
    pos_line = [0, 1]  # a position and its line number, moved forward as parsing goes

    def line_at(pos: int) -> int:
        p, n = pos_line
        n += s.count("\n", p, pos) if pos >= p else -s.count("\n", pos, p)
        pos_line[:] = [pos, n]
        return n

    def fatal(k: int, pos: int, msg: str) -> Record:
        return Record(k, line_at(pos), error=msg, fatal=True)

    pos = _WS.match(s).end()
    if pos == len(s):
        return
    if s[pos] != "[":
        yield fatal(0, pos, "expected a JSON array of objects ([...])" + (
            "; for one object per line use --input-format jsonl" if s[pos] == "{" else ""))
        return
    pos = _WS.match(s, pos + 1).end()
    k = 0
    if s.startswith("]", pos):
        pos = _WS.match(s, pos + 1).end()
    else:
        while True:
            start = pos
            try:
                obj, end = dec.raw_decode(s, pos)
            except RecursionError:
                yield fatal(k, start, "malformed JSON array: nested too deeply")
                return
            except json.JSONDecodeError as e:
                yield fatal(k, e.pos, "malformed JSON array: the file ends before its closing ]" if e.pos >= len(s)
                            else _json_error(e).replace("malformed JSON:", "malformed JSON array:"))
                return
            except ValueError as e:
                yield fatal(k, start, _json_error(e).replace("malformed JSON:", "malformed JSON array:"))
                return
            n = line_at(start)
            chunk = s[start:end]
            if _SURROGATE.search(chunk):  # in the source text, only an undecodable byte is one
                yield Record(k, n, error="invalid UTF-8 in this element")
            else:
                yield _from_object(k, n, obj, field, field_b, chunk)
            k += 1
            pos = _WS.match(s, end).end()
            if s.startswith(",", pos):
                pos = _WS.match(s, pos + 1).end()
                continue
            if s.startswith("]", pos):
                pos = _WS.match(s, pos + 1).end()
                break
            yield fatal(k, pos, "malformed JSON array: " + (
                "the file ends before its closing ]" if pos == len(s) else "expected ',' or ']' after an element"))
            return
    if pos != len(s):
        yield fatal(k, pos, "malformed JSON array: more data after the closing ]")


def _json_kind(v) -> str:
    return {list: "an array", str: "a string", bool: "a boolean", type(None): "null",
            int: "a number", float: "a number", dict: "an object"}.get(type(v), type(v).__name__)
