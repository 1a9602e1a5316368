"""Text-classification data: JSONL, CSV, TSV and label-text files.

* ``jsonl``; ``csv`` (standard double-quote quoting); ``tsv`` (no quoting, the GLUE
  convention: raw ``"`` is text); ``label-text`` (the label, whitespace, then the text:
  the TREC / Li & Roth ``COARSE:fine question`` files). ``auto`` goes by the extension
  (.jsonl/.json/.ndjson, .csv, .tsv/.tab) and otherwise by the first line.
* CSV/TSV may have a header (detected when the first row names the fields) or not (then
  fields are column indices: text first, label last).
"""

from __future__ import annotations

import csv
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from ...errors import DataError
from .lines import Issue, _err, read_lines
from .ner import looks_like_conll


def label_order(labels) -> list[str]:
    """The label set in a stable order: numerically when every label is an integer
    (so ``2`` < ``10``), else by string. The order defines the ids in ``id2label``."""
    labels = set(labels)
    if labels and all(re.fullmatch(r"[+-]?\d+", s) for s in labels):
        return sorted(labels, key=lambda s: (int(s), s))
    return sorted(labels)


def _label_str(v, source, line) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, str)):
        s = str(v).strip()
        if s:
            return s
        raise _err(source, line, "empty label")
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    raise _err(source, line, f"label {v!r} is not a string or an integer")



#: field names tried, in order, when none is given (common dataset conventions).
TEXT_FIELDS = ("text", "sentence", "sentence1", "#1 String", "premise", "question1", "question", "review",
               "content", "document")
#: text field -> its usual pair field.
PAIR_FIELDS = {"text": "text_pair", "sentence1": "sentence2", "#1 String": "#2 String", "premise": "hypothesis",
               "question1": "question2", "question": "sentence", "sentence": "text_pair"}
LABEL_FIELDS = ("label", "labels", "Quality", "gold_label", "class", "category", "target", "y")
CLASSIFY_FORMATS = ("auto", "jsonl", "csv", "tsv", "label-text")
_EXT = {".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "jsonl", ".csv": "csv", ".tsv": "tsv", ".tab": "tsv"}


@dataclass
class ClassifyExample:
    """One example; ``label`` is a string, a list of strings (multi-label), or None (no label)."""

    text: str
    text_pair: str | None
    label: str | list[str] | None
    line: int


@dataclass
class ClassifyData:
    """A classification file as read: examples plus what was detected."""

    source: str
    examples: list[ClassifyExample]
    data_format: str
    text_field: str | int
    text_pair_field: str | int | None
    label_field: str | int | None
    multi_label: bool
    warnings: list[Issue] = field(default_factory=list)

    def labels(self) -> list[str]:
        """The label set present in the data, in :func:`label_order`."""
        out = set()
        for ex in self.examples:
            if isinstance(ex.label, list):
                out.update(ex.label)
            elif ex.label is not None:
                out.add(ex.label)
        return label_order(out)

    def __len__(self) -> int:
        return len(self.examples)


def read_classification(path: str | Path, *, text_field: str | int | None = None,
                        text_pair_field: str | int | None = None, label_field: str | int | None = None,
                        data_format: str = "auto", multi_label: bool = False, label_sep: str | None = None,
                        header: bool | None = None, encoding: str = "auto",
                        require_labels: bool = True, label_map: dict[str, str] | None = None) -> ClassifyData:
    """Read a text-classification file.

    Args:
        path: JSONL, CSV, TSV or label-text file.
        text_field, text_pair_field, label_field: JSON keys or column names (or 0-based
            column indices for CSV/TSV without header). ``None``: the first of
            :data:`TEXT_FIELDS` / :data:`LABEL_FIELDS` present; the pair field is taken
            only when named, or when the text field was found by default and its usual
            partner (:data:`PAIR_FIELDS`, e.g. ``sentence1`` -> ``sentence2``) is present.
            Without a header: text = column 0, label = the last column.
        data_format: one of :data:`CLASSIFY_FORMATS`.
        multi_label: labels are lists: JSON arrays, or in CSV/TSV a JSON array or a cell
            split at ``label_sep`` (default ``,``).
        header: CSV/TSV only; ``None`` detects it (the first row names the label field).
        encoding: see :func:`read_lines`.
        require_labels: a missing label is an error (else ``label`` is None).
        label_map: rename labels as read (e.g. ``{"0": "negative", "1": "positive"}``);
            labels not in the map are kept.

    Returns:
        :class:`ClassifyData`.

    Raises:
        DataError: file problems (see :func:`read_lines`), unknown format, a field not
            present (the message lists those that are), malformed JSON, a row with the
            wrong number of columns, an empty text or label, a list label without
            ``multi_label`` (and the reverse in JSONL), an empty file.
    """
    if data_format not in CLASSIFY_FORMATS:
        raise DataError(f"unknown data format '{data_format}'", f"use one of {', '.join(CLASSIFY_FORMATS)}")
    lines, issues = read_lines(path, encoding)
    src = str(path)
    fmt = data_format if data_format != "auto" else _detect_classify_format(path, lines, label_field)
    if fmt == "jsonl":
        data = _classify_jsonl(src, lines, text_field, text_pair_field, label_field, multi_label, require_labels)
    elif fmt in ("csv", "tsv"):
        data = _classify_delimited(src, lines, fmt, text_field, text_pair_field, label_field, multi_label,
                                   label_sep, header, require_labels)
    else:
        data = _classify_label_text(src, lines, multi_label, label_sep)
    data.warnings = issues + data.warnings
    if not data.examples:
        raise DataError(f"{src}: no examples found")
    if label_map:
        for ex in data.examples:
            if isinstance(ex.label, list):
                ex.label = [label_map.get(x, x) for x in ex.label]
            elif ex.label is not None:
                ex.label = label_map.get(ex.label, ex.label)
    return data


def _detect_classify_format(path, lines, label_field) -> str:
    ext = Path(path).suffix.lower()
    if ext in _EXT:
        return _EXT[ext]
    first = next((s for s in lines if s.strip()), "")
    if first.lstrip().startswith("{"):
        return "jsonl"
    if "\t" in first:
        return "tsv"
    if "," in first:
        row = next(csv.reader([first]))
        names = {c.strip() for c in row}
        if (label_field in names) if isinstance(label_field, str) else bool(names & set(LABEL_FIELDS)):
            return "csv"
    if looks_like_conll(lines):
        raise _err(path, None, "looks like CoNLL token/tag lines (a token and its BIO tag per line), not "
                               "label-text classification data",
                   "train a tagger with `bertcli train ner`, or pass --data-format label-text")
    return "label-text"


def _pick(names, wanted, defaults, what, src, kind="field"):
    if wanted is not None:
        if wanted not in names:
            shown = ", ".join(str(n) for n in names) or "none"
            raise DataError(f"{src}: no {kind} '{wanted}' for the {what} (found: {shown})",
                            f"choose the {what} with --{what.replace(' ', '-')}-field")
        return wanted, False
    for d in defaults:
        if d in names:
            return d, True
    return None, True


def _split_labels(cell: str, sep: str | None, src, line) -> list[str]:
    cell = cell.strip()
    if cell.startswith("["):
        try:
            vals = json.loads(cell)
        except json.JSONDecodeError as e:
            raise _err(src, line, f"label cell looks like a JSON array but is not valid JSON: {e.msg}") from None
        if not isinstance(vals, list):
            raise _err(src, line, "label cell is not a JSON array")
        return sorted({_label_str(v, src, line) for v in vals})
    if not cell:
        return []
    return sorted({s.strip() for s in cell.split(sep or ",") if s.strip()})


def _classify_jsonl(src, lines, text_field, pair_field, label_field, multi_label, require_labels) -> ClassifyData:
    examples: list[ClassifyExample] = []
    warnings: list[Issue] = []
    resolved = None
    for n, s in enumerate(lines, 1):
        if not s.strip():
            continue  # blank lines between JSON objects are harmless
        try:
            obj = json.loads(s)
        except json.JSONDecodeError as e:
            raise _err(src, n, f"malformed JSON: {e.msg} at column {e.colno}") from None
        if not isinstance(obj, dict):
            raise _err(src, n, "expected a JSON object")
        if resolved is None:
            tf, tf_default = _pick(list(obj), text_field, TEXT_FIELDS, "text", src)
            if tf is None:
                raise _err(src, n, f"no text field found (keys: {', '.join(obj)})", "choose one with --text-field")
            pf = pair_field
            if pf is None and tf_default and PAIR_FIELDS.get(tf) in obj:
                pf = PAIR_FIELDS[tf]
            lf, _ = _pick(list(obj), label_field, LABEL_FIELDS, "label", src)
            if lf is None and require_labels:
                raise _err(src, n, f"no label field found (keys: {', '.join(obj)})", "choose one with --label-field")
            resolved = (tf, pf, lf)
        tf, pf, lf = resolved
        text = _json_text(obj, tf, src, n)
        pair = _json_text(obj, pf, src, n) if pf is not None else None
        if not text or (pf is not None and not pair):
            warnings.append(Issue(src, n, f"empty text in field '{tf if not text else pf}'; line skipped"))
            continue
        label = None
        if lf is not None and lf in obj and obj[lf] is not None:
            v = obj[lf]
            if isinstance(v, list):
                if not multi_label:
                    raise _err(src, n, f"label '{lf}' is a list", "pass --multi-label for list-valued labels")
                label = sorted({_label_str(x, src, n) for x in v})
            elif multi_label:
                label = _split_labels(v, None, src, n) if isinstance(v, str) else [_label_str(v, src, n)]
            else:
                label = _label_str(v, src, n)
        elif require_labels:
            raise _err(src, n, f"missing label field '{lf}'")
        examples.append(ClassifyExample(text, pair, label, n))
    tf, pf, lf = resolved or (text_field or "text", pair_field, label_field)
    return ClassifyData(src, examples, "jsonl", tf, pf, lf, multi_label, warnings)


def _json_text(obj, key, src, n) -> str:
    if key not in obj:
        raise _err(src, n, f"missing field '{key}'")
    v = obj[key]
    if not isinstance(v, str):
        raise _err(src, n, f"field '{key}' is not a string")
    return v.strip()


def _classify_delimited(src, lines, fmt, text_field, pair_field, label_field, multi_label, label_sep, header,
                        require_labels) -> ClassifyData:
    if fmt == "tsv":
        reader = csv.reader((s + "\n" for s in lines), delimiter="\t", quoting=csv.QUOTE_NONE)
    else:
        reader = csv.reader((s + "\n" for s in lines), delimiter=",", quotechar='"', doublequote=True, strict=True)
    rows: list[tuple[int, list[str]]] = []
    prev = 0
    try:
        for row in reader:
            rows.append((prev + 1, row))  # a quoted CSV row may span lines: report its first
            prev = reader.line_num
    except csv.Error as e:
        raise _err(src, prev + 1, f"malformed {fmt.upper()} row: {e}") from None
    rows = [(n, r) for n, r in rows if any(c.strip() for c in r)]
    if not rows:
        raise DataError(f"{src}: no rows")
    first = [c.strip() for c in rows[0][1]]
    if header is None:
        named = [f for f in (text_field, pair_field, label_field)
                 if isinstance(f, str) and not f.lstrip("-").isdigit()]
        # A header names at least one field (requested or conventional); a data row
        # practically never consists of such names.
        header = bool(set(first) & (set(named) | set(LABEL_FIELDS) | set(TEXT_FIELDS)))
    if header:
        names: list = first
        body = rows[1:]
        tf, tf_default = _pick(names, text_field, TEXT_FIELDS, "text", src, "column")
        if tf is None:
            raise _err(src, 1, f"no text column found (header: {', '.join(names)})", "choose one with --text-field")
        pf = pair_field
        if pf is not None:
            _pick(names, pf, (), "text pair", src, "column")
        elif tf_default and PAIR_FIELDS.get(tf) in names:
            pf = PAIR_FIELDS[tf]
        lf, _ = _pick(names, label_field, LABEL_FIELDS, "label", src, "column")
        if lf is None and require_labels:
            raise _err(src, 1, f"no label column found (header: {', '.join(names)})", "choose one with --label-field")
        idx = {k: names.index(k) for k in (tf, pf, lf) if k is not None}
        width = len(names)
    else:
        width = len(rows[0][1])

        def as_index(v, default, what):
            if v is None:
                return default
            try:
                i = int(v)
            except (TypeError, ValueError):
                raise _err(src, 1, f"the file has no header row, so the {what} field must be a column index, "
                                   f"not '{v}'", "pass a 0-based column number, or add a header") from None
            if not -width <= i < width:
                raise _err(src, 1, f"column {i} for the {what} is out of range ({width} columns)")
            return i % width
        tf = as_index(text_field, 0, "text")
        lf = as_index(label_field, width - 1, "label")
        pf = as_index(pair_field, None, "text pair")
        idx = {k: k for k in (tf, pf, lf) if k is not None}
        body = rows
    examples = []
    warnings: list[Issue] = []
    for n, row in body:
        if len(row) != width:
            raise _err(src, n, f"row has {len(row)} columns, expected {width}",
                       "TSV files are read without quoting; check for a stray TAB" if fmt == "tsv" else None)
        text = row[idx[tf]].strip()
        pair = row[idx[pf]].strip() if pf is not None else None
        if not text or (pf is not None and not pair):
            # An empty text carries no signal; skipping it (reported) keeps real sets readable.
            warnings.append(Issue(src, n, f"empty text in column '{tf if not text else pf}'; row skipped"))
            continue
        label = None
        if lf is not None:
            cell = row[idx[lf]]
            if multi_label:
                label = _split_labels(cell, label_sep, src, n)
            elif cell.strip():
                label = cell.strip()
            elif require_labels:
                raise _err(src, n, "empty label")
        elif require_labels:
            raise _err(src, n, "no label column")
        examples.append(ClassifyExample(text, pair, label, n))
    return ClassifyData(src, examples, fmt, tf, pf, lf, multi_label, warnings)


def _classify_label_text(src, lines, multi_label, label_sep) -> ClassifyData:
    examples = []
    for n, s in enumerate(lines, 1):
        if not s.strip():
            continue
        parts = s.strip().split(None, 1)
        if len(parts) < 2:
            raise _err(src, n, "expected a label, whitespace, then the text (label-text format)")
        label: str | list[str] = parts[0]
        if multi_label:
            label = _split_labels(parts[0], label_sep, src, n)
        examples.append(ClassifyExample(parts[1].strip(), None, label, n))
    return ClassifyData(src, examples, "label-text", 1, None, 0, multi_label)

