"""Training and evaluation data readers: classification, NER and raw text.

Every reader returns plain Python objects (no tensors) and raises
:class:`bertcli.errors.DataError` naming the file and the 1-based line for data it
cannot use. Problems that can be repaired without guessing (an IOB2 entity that starts
with ``I-``, a line that is not UTF-8) are repaired the way the reference tools do and
*reported* in the result's ``warnings`` list, never dropped silently.

Text decoding (``encoding="auto"``, the default): UTF-8, a BOM at the start of the file
is dropped, CRLF/CR/LF line ends are accepted; a line that is not valid UTF-8 is read
as latin-1 (every byte is a latin-1 character) and reported. Any other ``encoding`` is
strict: an undecodable line is an error.

Formats (``data_format``):

* classification: ``jsonl``; ``csv`` (standard double-quote quoting); ``tsv`` (no quoting,
  the GLUE convention: raw ``"`` is text); ``label-text`` (the label, whitespace, then the
  text: the TREC / Li & Roth ``COARSE:fine question`` files). ``auto`` goes by the
  extension (.jsonl/.json/.ndjson, .csv, .tsv/.tab) and otherwise by the first line.
  CSV/TSV may have a header (detected when the first row names the fields) or not
  (then fields are column indices: text first, label last).
* NER: ``conll`` (one token per line, whitespace or TAB separated columns, the tag in the
  last column by default, blank lines between sentences, ``-DOCSTART-`` lines skipped)
  or ``jsonl`` (``{"tokens": [...], "tags": [...]}``).
* raw text for MLM/NSP: a file or a folder of files; see :func:`read_documents`.
"""

from __future__ import annotations

import csv
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import DataError

# ---------------------------------------------------------------- common


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


# ---------------------------------------------------------------- classification

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
    if _looks_like_conll(lines):
        raise _err(path, None, "looks like CoNLL token/tag lines (a token and its BIO tag per line), not "
                               "label-text classification data",
                   "train a tagger with `bertcli train ner`, or pass --data-format label-text")
    return "label-text"


_BIO_TAG = re.compile(r"(O|[BIESLU]-\S+)\Z")


def _looks_like_conll(lines) -> bool:
    """True when the first 200 non-empty lines are CoNLL-style: ``-DOCSTART-``, or at
    least 80 % of them end in a BIO/BIOES tag after at most 3 other columns."""
    sample = [s.split() for s in lines[:2000] if s.strip()][:200]
    if not sample:
        return False
    if sample[0][0] == "-DOCSTART-":
        return True
    tagged = sum(1 for p in sample if 2 <= len(p) <= 4 and _BIO_TAG.match(p[-1]))
    return tagged >= 0.8 * len(sample)


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


# ---------------------------------------------------------------- NER

SCHEMES = ("auto", "IOB1", "IOB2", "BIOES")
NER_FORMATS = ("auto", "conll", "jsonl")
_TAG_RE = re.compile(r"^([BIESLU])[-_](.+)$")
#: a character followed by its 1-2 digit position in a word: the Weibo NER layout
#: (Peng & Dredze 2015), where ``我0`` is the character 我, first in its word.
_CHAR_POS_RE = re.compile(r"^(\ufffd\ufffd|.)(\d{1,2})$", re.S)


@dataclass
class NerSentence:
    tokens: list[str]
    tags: list[str]
    line: int  #: line of the first token
    lines: list[int] = field(default_factory=list)  #: line of each token (CoNLL) or all the same (JSONL)


@dataclass
class NerData:
    """A NER file as read.

    ``scheme`` is the scheme of ``tags`` after reading (IOB1 input is converted to IOB2
    by default; ``source_scheme`` keeps what the file used).
    """

    source: str
    sentences: list[NerSentence]
    data_format: str
    scheme: str
    source_scheme: str
    token_format: str = "plain"
    warnings: list[Issue] = field(default_factory=list)

    def labels(self) -> list[str]:
        """Tag set, sorted with ``O`` first and each type's tags together (B, I, E, S)."""
        return sort_tags({t for s in self.sentences for t in s.tags})

    def __len__(self) -> int:
        return len(self.sentences)


def sort_tags(tags) -> list[str]:
    """``O`` first, then by entity type, then by prefix order B, I, E, S (stable, readable)."""
    order = {"B": 0, "I": 1, "E": 2, "S": 3}

    def key(t):
        if t == "O":
            return ("", -1)
        m = _TAG_RE.match(t)
        return (m.group(2), order.get(m.group(1), 9)) if m else (t, 9)
    return sorted(set(tags), key=key)


def read_ner(path: str | Path, *, data_format: str = "auto", token_column: int = 0, tag_column: int = -1,
             tokens_field: str = "tokens", tags_field: str | None = None, scheme: str = "auto",
             convert_iob1: bool = True, on_invalid: str = "fix", token_format: str = "auto",
             encoding: str = "auto", tag_names: list[str] | None = None) -> NerData:
    """Read a NER file (CoNLL columns or JSONL) and validate its tags.

    Args:
        path: the file.
        data_format: ``auto`` (JSONL when the extension is .jsonl/.json/.ndjson or the first
            line starts with ``{``, else CoNLL), ``conll`` or ``jsonl``.
        token_column, tag_column: CoNLL columns (0-based; negative counts from the end).
        tokens_field, tags_field: JSONL keys (``tags_field=None`` tries ``tags``,
            ``ner_tags``, ``labels``).
        scheme: ``auto`` or one of IOB1, IOB2, BIOES (BILOU is read as BIOES). Auto:
            any E-/S- tag means BIOES; otherwise entities that start with ``I-`` while no
            ``B-`` ever starts an entity after ``O`` means IOB1 (in IOB1 ``B-`` only
            separates two touching entities of one type); otherwise IOB2.
        convert_iob1: rewrite IOB1 as IOB2 (an entity's first tag becomes ``B-``).
        on_invalid: what to do with tag sequences the scheme forbids (an IOB2 entity
            starting with ``I-X``; a BIOES ``B-X`` not closed by ``E-X``...): ``fix``
            (IOB2: read ``I-X`` as ``B-X``, which is how conlleval and seqeval count it;
            BIOES: kept as is) and report each in ``warnings``; ``error``: raise.
        token_format: ``auto``, ``plain`` or ``char-position``: every token is one
            character followed by its position in a word (Weibo NER); the digits are
            stripped. ``auto`` picks ``char-position`` only when every token has that form.
        encoding: see :func:`read_lines`.
        tag_names: for JSONL with integer tags: the tag of each id.

    Returns:
        :class:`NerData` with tags in ``scheme`` (IOB2 after IOB1 conversion).

    Raises:
        DataError: file problems, a line with too few columns, a tag that is neither
            ``O`` nor ``<B|I|E|S|L|U>-TYPE``, tokens/tags of different lengths (JSONL), an
            empty token, integer tags without ``tag_names``, invalid sequences with
            ``on_invalid="error"``, or no sentences.
    """
    if data_format not in NER_FORMATS:
        raise DataError(f"unknown NER data format '{data_format}'", f"use one of {', '.join(NER_FORMATS)}")
    if scheme not in SCHEMES:
        raise DataError(f"unknown tag scheme '{scheme}'", f"use one of {', '.join(SCHEMES)}")
    if on_invalid not in ("fix", "error"):
        raise ValueError("on_invalid must be 'fix' or 'error'")
    lines, issues = read_lines(path, encoding)
    src = str(path)
    fmt = data_format
    if fmt == "auto":
        first = next((s for s in lines if s.strip()), "")
        fmt = "jsonl" if Path(path).suffix.lower() in (".jsonl", ".json", ".ndjson") or \
            first.lstrip().startswith("{") else "conll"
    if fmt == "conll":
        sents = _conll(src, lines, token_column, tag_column)
    else:
        sents = _ner_jsonl(src, lines, tokens_field, tags_field, tag_names)
    if not sents:
        raise DataError(f"{src}: no sentences found")
    tf = token_format
    if tf == "auto":
        toks = [t for s in sents for t in s.tokens]
        tf = "char-position" if toks and all(_CHAR_POS_RE.match(t) for t in toks) else "plain"
    if tf == "char-position":
        for s in sents:
            for i, t in enumerate(s.tokens):
                m = _CHAR_POS_RE.match(t)
                if not m:
                    raise _err(src, s.lines[i], f"token '{t}' is not a character followed by a position number")
                s.tokens[i] = m.group(1)
    elif tf != "plain":
        raise DataError(f"unknown token format '{token_format}'", "use auto, plain or char-position")
    for s in sents:
        for i, t in enumerate(s.tags):
            s.tags[i] = _normalise_tag(t, src, s.lines[i])
    found = detect_scheme(s.tags for s in sents) if scheme == "auto" else scheme
    out_scheme = found
    if found == "IOB1" and convert_iob1:
        for s in sents:
            s.tags = iob1_to_iob2(s.tags)
        out_scheme = "IOB2"
    elif found in ("IOB2", "BIOES"):
        bad = []
        for s in sents:
            fixed, problems = validate_tags(s.tags, found)
            for i, msg in problems:
                bad.append(Issue(src, s.lines[i], msg))
            if on_invalid == "fix":
                s.tags = fixed
        if bad and on_invalid == "error":
            raise DataError(f"{bad[0]} ({len(bad)} invalid tag sequence(s) in all)",
                            "pass on_invalid='fix' to read them as conlleval does")
        issues.extend(bad)
    return NerData(src, sents, fmt, out_scheme, found, tf, issues)


def _conll(src, lines, token_column, tag_column) -> list[NerSentence]:
    sents: list[NerSentence] = []
    toks: list[str] = []
    tags: list[str] = []
    where: list[int] = []

    def flush():
        if toks:
            sents.append(NerSentence(list(toks), list(tags), where[0], list(where)))
        toks.clear()
        tags.clear()
        where.clear()

    ncols = None
    for n, s in enumerate(lines, 1):
        if not s.strip():
            flush()
            continue
        if s.startswith("-DOCSTART-"):
            flush()
            continue
        # TAB-separated files may hold tokens with spaces; otherwise any whitespace separates.
        cols = s.split("\t") if "\t" in s else s.split()
        cols = [c.strip() for c in cols]
        need = max(token_column if token_column >= 0 else -token_column - 1,
                   tag_column if tag_column >= 0 else -tag_column - 1) + 1
        if len(cols) < max(need, 2):
            raise _err(src, n, f"expected a token and a tag (at least {max(need, 2)} columns), got {len(cols)}",
                       "CoNLL lines are TOKEN ... TAG; sentences are separated by blank lines")
        if ncols is None:
            ncols = len(cols)
        elif len(cols) != ncols:
            raise _err(src, n, f"line has {len(cols)} columns, earlier lines have {ncols}")
        tok, tag = cols[token_column], cols[tag_column]
        if not tok:
            raise _err(src, n, "empty token")
        toks.append(tok)
        tags.append(tag)
        where.append(n)
    flush()
    return sents


def _ner_jsonl(src, lines, tokens_field, tags_field, tag_names) -> list[NerSentence]:
    sents = []
    for n, s in enumerate(lines, 1):
        if not s.strip():
            continue
        try:
            obj = json.loads(s)
        except json.JSONDecodeError as e:
            raise _err(src, n, f"malformed JSON: {e.msg} at column {e.colno}") from None
        if not isinstance(obj, dict):
            raise _err(src, n, "expected a JSON object")
        tk = obj.get(tokens_field)
        tgf = tags_field or next((k for k in ("tags", "ner_tags", "labels") if k in obj), "tags")
        tg = obj.get(tgf)
        if tokens_field not in obj:
            raise _err(src, n, f"missing field '{tokens_field}' (the object has {', '.join(map(str, obj)) or 'no fields'})",
                       "NER JSONL needs a list of tokens and a list of tags per line")
        if not isinstance(tk, list) or not all(isinstance(t, str) for t in tk):
            raise _err(src, n, f"field '{tokens_field}' must be a list of strings")
        if not isinstance(tg, list):
            raise _err(src, n, f"field '{tgf}' must be a list of tags")
        if len(tk) != len(tg):
            raise _err(src, n, f"{len(tk)} tokens but {len(tg)} tags")
        if not tk:
            continue
        out_tags = []
        for t in tg:
            if isinstance(t, int) and not isinstance(t, bool):
                if tag_names is None:
                    raise _err(src, n, "tags are integers", "pass the tag names (tag_names / --labels) in id order")
                if not 0 <= t < len(tag_names):
                    raise _err(src, n, f"tag id {t} is out of range ({len(tag_names)} tag names)")
                out_tags.append(tag_names[t])
            elif isinstance(t, str):
                out_tags.append(t)
            else:
                raise _err(src, n, f"tag {t!r} is not a string")
        toks = [t.strip() for t in tk]
        if any(not t for t in toks):
            raise _err(src, n, f"empty or whitespace-only token at position {[not t for t in toks].index(True)}")
        sents.append(NerSentence(toks, out_tags, n, [n] * len(toks)))
    return sents


def _normalise_tag(tag: str, src, line) -> str:
    if tag == "O":
        return tag
    m = _TAG_RE.match(tag)
    if not m:
        raise _err(src, line, f"tag '{tag}' is not O or PREFIX-TYPE with PREFIX one of B, I, E, S (or L, U)",
                   "tags without a prefix (IO scheme) are not supported; convert them to IOB2")
    p = {"L": "E", "U": "S"}.get(m.group(1), m.group(1))
    return f"{p}-{m.group(2)}"


def _split(tag):
    return ("O", None) if tag == "O" else (tag[0], tag[2:])


def detect_scheme(tag_seqs) -> str:
    """IOB1, IOB2 or BIOES from tag sequences (see :func:`read_ner` for the rule)."""
    b_after_outside = i_start = False
    for tags in tag_seqs:
        prev = ("O", None)
        for t in tags:
            p, typ = _split(t)
            if p in ("E", "S"):
                return "BIOES"
            if p == "B" and prev[1] != typ:
                b_after_outside = True
            if p == "I" and prev[1] != typ:
                i_start = True
            prev = (p, typ)
    return "IOB1" if i_start and not b_after_outside else "IOB2"


def iob1_to_iob2(tags: list[str]) -> list[str]:
    """IOB1 -> IOB2: an ``I-X`` that does not continue an ``X`` entity becomes ``B-X``."""
    out = []
    prev_type = None
    for t in tags:
        p, typ = _split(t)
        if p == "I" and prev_type != typ:
            t = "B-" + typ
        out.append(t)
        prev_type = typ
    return out


def validate_tags(tags: list[str], scheme: str) -> tuple[list[str], list[tuple[int, str]]]:
    """Check one sentence's tags against ``scheme`` (IOB2 or BIOES).

    Returns:
        ``(fixed_tags, problems)``: problems are ``(token index, message)``. For IOB2 an
        ``I-X`` that does not continue an ``X`` entity is fixed to ``B-X`` (conlleval
        semantics); BIOES problems are reported and the tags kept.
    """
    fixed = list(tags)
    problems = []
    prev = ("O", None)
    for i, t in enumerate(tags):
        p, typ = _split(t)
        before = tags[i - 1] if i else "the sentence start"
        if scheme == "IOB2":
            if p in ("E", "S"):
                problems.append((i, f"tag {t} is not an IOB2 tag"))
            elif p == "I" and prev[1] != typ:
                problems.append((i, f"{t} follows {before}; an IOB2 entity starts with B- (read as B-{typ})"))
                fixed[i] = "B-" + typ
        else:  # BIOES
            open_ = prev[0] in ("B", "I")
            if p in ("I", "E") and not (open_ and prev[1] == typ):
                problems.append((i, f"{t} follows {before}; in BIOES it must continue a B-{typ}/I-{typ}"))
            elif p in ("B", "S", "O") and open_:
                problems.append((i, f"{tags[i - 1]} is not closed by E-{prev[1]} before {t}"))
        prev = (p, typ)
    if scheme == "BIOES" and tags and prev[0] in ("B", "I"):
        problems.append((len(tags) - 1, f"{tags[-1]} at the sentence end is not closed by E-{prev[1]}"))
    return fixed, problems


# ---------------------------------------------------------------- raw text (MLM / NSP)

@dataclass
class Document:
    """One document: its source (file, and first line for blank-line separated files) and sentences."""

    source: str
    sentences: list[str]


_PG_START = re.compile(r"^\s*\*\*\*\s*START OF (THE|THIS) PROJECT GUTENBERG", re.I)
_PG_END = re.compile(r"^\s*\*\*\*\s*END OF (THE|THIS) PROJECT GUTENBERG", re.I)
_PG_CREDIT = re.compile(r"^\s*(Produced by|This (e-?text|e-?book) was (produced|prepared))", re.I)
_PG_TAIL = re.compile(r"^\s*End of (the |this )?Project Gutenberg", re.I)
_ABBREV = {"mr", "mrs", "ms", "dr", "st", "prof", "sr", "jr", "vs", "etc", "e.g", "i.e", "no", "vol", "fig",
           "mt", "capt", "col", "gen", "lt", "rev", "hon", "messrs", "mme", "mlle", "co", "inc", "ltd", "jan",
           "feb", "mar", "apr", "jun", "jul", "aug", "sep", "sept", "oct", "nov", "dec", "p", "pp", "cf"}
# A sentence ends at . ! ? (plus closing quotes/brackets) followed by whitespace, or at
# the CJK full stops which need no space after them.
_SENT_END = re.compile(r"([.!?…]+[\"'”’»)\]]*)(\s+)|([。！？]+[”’」』）]*)")


def strip_gutenberg(lines: list[str]) -> list[str]:
    """The lines between Project Gutenberg's ``*** START OF ...`` and ``*** END OF ...``
    markers (both excluded), without a leading "Produced by ..." credit paragraph and a
    trailing "End of the Project Gutenberg EBook ..." line; ``lines`` unchanged when
    there is no START marker."""
    start = next((i for i, s in enumerate(lines) if _PG_START.match(s)), None)
    if start is None:
        return lines
    end = next((i for i in range(start + 1, len(lines)) if _PG_END.match(lines[i])), len(lines))
    first_body = start + 1
    if not lines[start].rstrip().endswith("***"):
        # The marker's title can wrap onto the next lines, up to the closing "***".
        for j in range(start + 1, min(start + 4, end)):
            if lines[j].rstrip().endswith("***"):
                first_body = j + 1
                break
    body = lines[first_body:end]
    # Older releases also put a credit paragraph first and an "End of (the) Project
    # Gutenberg EBook of ..." line last, inside the markers.
    first = next((i for i, s in enumerate(body) if s.strip()), None)
    if first is not None and _PG_CREDIT.match(body[first]):
        j = first
        while j < len(body) and body[j].strip():
            j += 1
        body = body[j:]
    last = next((i for i in range(len(body) - 1, -1, -1) if body[i].strip()), None)
    if last is not None:
        j = last
        while j > 0 and body[j - 1].strip():
            j -= 1
        if _PG_TAIL.match(body[j]):  # the last paragraph (it may wrap)
            body = body[:j]
    return body


def split_sentences(text: str) -> list[str]:
    """Split a paragraph into sentences with a small rule set (no model).

    A sentence ends at ``.``, ``!``, ``?`` or ``…`` (with any closing quotes/brackets)
    followed by whitespace and then an upper-case letter, digit or opening quote/bracket,
    unless the word before the ``.`` is a known abbreviation (Mr., Dr., e.g.) or a single
    capital initial (``J. R. R. Tolkien``); and at the CJK full stops ``。！？``. Whitespace
    runs (including the hard line wraps of Gutenberg texts) become single spaces.
    """
    text = " ".join(text.split())
    out = []
    start = 0
    for m in _SENT_END.finditer(text):
        if m.group(3):  # CJK
            end = m.end()
        else:
            end = m.end(1)
            nxt = text[m.end():m.end() + 1]
            if not nxt or not (nxt.isupper() or nxt.isdigit() or nxt in "\"'“‘«([" or not nxt.isalpha()):
                continue
            if m.group(1).startswith(".") and len(m.group(1).rstrip("\"'”’»)]")) == 1:
                word = text[start:m.start()].rsplit(None, 1)[-1] if text[start:m.start()].strip() else ""
                w = word.lower().lstrip("(\"'“‘")
                if w in _ABBREV or (len(w) == 1 and w.isalpha()):
                    continue
        s = text[start:end].strip()
        if s:
            out.append(s)
        start = end
    tail = text[start:].strip()
    if tail:
        out.append(tail)
    return out


def _paragraph_sentences(lines: list[str]) -> list[str]:
    sents, para = [], []
    for s in lines + [""]:
        if s.strip():
            para.append(s.strip())
        elif para:
            sents.extend(split_sentences(" ".join(para)))
            para = []
    return sents


def read_documents(path: str | Path, *, documents: str = "auto", encoding: str = "auto",
                   gutenberg: bool = True, max_files: int | None = None) -> tuple[list[Document], list[Issue]]:
    """Read raw text for MLM/NSP pre-training as documents of sentences.

    Args:
        path: a text file or a folder (all non-hidden files below it, sorted by path).
        documents: ``file`` (each file is one document), ``blank-line`` (documents are
            separated by blank lines, the layout of BERT's ``create_pretraining_data.py``
            input) or ``auto``: a folder or a Project Gutenberg file is read per file,
            another single file by blank lines.
        encoding: see :func:`read_lines`.
        gutenberg: strip Project Gutenberg header and footer when the markers are present.
        max_files: read at most this many files from a folder.

    Returns:
        ``(documents, warnings)``; a document has at least one sentence. Within a
        per-file document, blank lines separate paragraphs, and sentences are split with
        :func:`split_sentences` (never across paragraphs).

    Raises:
        DataError: the path does not exist, holds no text, or ``documents`` is unknown.
    """
    if documents not in ("auto", "file", "blank-line"):
        raise DataError(f"unknown documents mode '{documents}'", "use auto, file or blank-line")
    p = Path(path)
    if not p.exists():
        raise DataError(f"data path '{p}' does not exist")
    if p.is_dir():
        files = sorted(f for f in p.rglob("*") if f.is_file() and not any(
            part.startswith(".") for part in f.relative_to(p).parts) and f.name.upper() not in ("SOURCE.MD",))
        if max_files:
            files = files[:max_files]
        mode = "file" if documents == "auto" else documents
    else:
        files = [p]
        mode = documents
    docs: list[Document] = []
    issues: list[Issue] = []
    for f in files:
        lines, iss = read_lines(f, encoding)
        issues.extend(iss)
        is_pg = gutenberg and any(_PG_START.match(s) for s in lines[:400])
        if gutenberg:
            lines = strip_gutenberg(lines)
        m = mode if mode != "auto" else ("file" if is_pg else "blank-line")
        if m == "file":
            sents = _paragraph_sentences(lines)
            if sents:
                docs.append(Document(str(f), sents))
        else:
            block: list[str] = []
            first = 0
            for n, s in enumerate(lines + [""], 1):
                if s.strip():
                    if not block:
                        first = n
                    block.append(s)
                elif block:
                    sents = _paragraph_sentences(block)
                    if sents:
                        docs.append(Document(f"{f}:{first}", sents))
                    block = []
    if not docs:
        raise DataError(f"no text found in '{p}'")
    return docs, issues
