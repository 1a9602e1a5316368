"""NER data as words and tags (:func:`read_ner`).

* ``conll``: one token per line, whitespace or TAB separated columns, the tag in the last
  column by default, blank lines between sentences, ``-DOCSTART-`` lines skipped.
* ``jsonl``: ``{"tokens": [...], "tags": [...]}`` per line.
* ``spans`` and ``labelstudio``: texts with character-span entities, as annotation
  tools export them (doccano, spaCy/Prodigy, Label Studio), split into words and tagged
  BIO by :mod:`.spans`.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from ...errors import DataError
from .lines import Issue, _err, read_lines
from .spans import ON_INVALID, SPAN_FORMATS, detect_span_format, read_spans
from .tags import SCHEMES, _normalise_tag, detect_scheme, iob1_to_iob2, sort_tags, validate_tags

NER_FORMATS = ("auto", "conll", "jsonl", "spans", "labelstudio")
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


def read_ner(path: str | Path, *, data_format: str = "auto", token_column: int = 0, tag_column: int = -1,
             tokens_field: str = "tokens", tags_field: str | None = None, scheme: str = "auto",
             convert_iob1: bool = True, on_invalid: str = "fix", token_format: str = "auto",
             encoding: str = "auto", tag_names: list[str] | None = None, text_field: str = "text") -> NerData:
    """Read a NER file (CoNLL columns, JSONL tokens/tags, or character spans) as words and tags.

    Args:
        path: the file.
        data_format: ``conll``, ``jsonl`` (tokens/tags), ``spans`` (JSONL or a JSON array
            of texts with doccano / spaCy / Prodigy spans), ``labelstudio`` (Label Studio's
            JSON export); see :mod:`bertcli.train.data.spans` for the last two. ``auto``:
            a file starting with ``[`` is Label Studio when its first element has a
            ``data`` object, else spans; a first line starting with ``{`` (or a
            .jsonl/.json/.ndjson file) is ``jsonl`` when the object has ``tokens_field``,
            spans when it has ``spans``, ``entities``, ``label`` or ``ents``; anything
            else is CoNLL.
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
            BIOES: kept as is) and report each in ``warnings``; ``skip``: leave the
            sentence out (reported); ``error``: raise. Spans (which have no repair that
            is not a guess): an invalid span raises under ``fix`` and ``error``, and
            ``skip`` leaves its record out.
        token_format: ``auto``, ``plain`` or ``char-position``: every token is one
            character followed by its position in a word (Weibo NER); the digits are
            stripped. ``auto`` picks ``char-position`` only when every token has that form.
        encoding: see :func:`read_lines`.
        tag_names: for JSONL with integer tags: the tag of each id.
        text_field: spans / Label Studio: the key of the text (Label Studio: in ``data``).

    Returns:
        :class:`NerData` with tags in ``scheme`` (IOB2 after IOB1 conversion). Span data
        is tagged IOB2 (BIOES when ``scheme="BIOES"``); each record is one sentence.

    Raises:
        DataError: file problems, a line with too few columns, a tag that is neither
            ``O`` nor ``<B|I|E|S|L|U>-TYPE``, tokens/tags of different lengths (JSONL), an
            empty token, integer tags without ``tag_names``, invalid sequences with
            ``on_invalid="error"``, or no sentences; for spans see
            :func:`bertcli.train.data.spans.read_spans`.
    """
    if data_format not in NER_FORMATS:
        raise DataError(f"unknown NER data format '{data_format}'", f"use one of {', '.join(NER_FORMATS)}")
    if scheme not in SCHEMES:
        raise DataError(f"unknown tag scheme '{scheme}'", f"use one of {', '.join(SCHEMES)}")
    if on_invalid not in ON_INVALID:
        raise ValueError(f"on_invalid must be one of {', '.join(ON_INVALID)}")
    lines, issues = read_lines(path, encoding)
    src = str(path)
    fmt = data_format if data_format != "auto" else _detect_format(path, lines, tokens_field)
    if fmt in SPAN_FORMATS:
        out_scheme = "BIOES" if scheme == "BIOES" else "IOB2"
        examples, notes = read_spans(src, lines, fmt, text_field=text_field, on_invalid=on_invalid,
                                     scheme=out_scheme)
        if not examples:
            raise DataError(f"{src}: no annotated texts found")
        sents = [NerSentence(ex.words, ex.tags, ex.line, [ex.line] * len(ex.words)) for ex in examples]
        return NerData(src, sents, fmt, out_scheme, out_scheme, "plain", issues + notes)
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
        kept = []
        for s in sents:
            fixed, problems = validate_tags(s.tags, found)
            for i, msg in problems:
                bad.append(Issue(src, s.lines[i], msg + ("; sentence left out" if on_invalid == "skip" else "")))
            if on_invalid == "fix":
                s.tags = fixed
            if not (problems and on_invalid == "skip"):
                kept.append(s)
        if bad and on_invalid == "error":
            raise DataError(f"{bad[0]} ({len(bad)} invalid tag sequence(s) in all)",
                            "pass on_invalid='fix' to read them as conlleval does")
        issues.extend(bad)
        sents = kept
        if not sents:
            raise DataError(f"{src}: no sentences left: every one has an invalid tag sequence")
    return NerData(src, sents, fmt, out_scheme, found, tf, issues)


def _first_json_value(lines: list[str]):
    """The first JSON value of a JSONL file, or the first element of a JSON array; None when
    it does not parse (the reader then reports the error with its line)."""
    text = "\n".join(lines).lstrip()
    dec = json.JSONDecoder()
    try:
        if text.startswith("["):
            rest = text[1:].lstrip()
            return None if rest.startswith("]") else dec.raw_decode(rest)[0]
        return dec.raw_decode(next((s for s in lines if s.strip()), "").strip())[0]
    except (json.JSONDecodeError, StopIteration):
        return None


def _detect_format(path, lines: list[str], tokens_field: str) -> str:
    first = next((s for s in lines if s.strip()), "").lstrip()
    if first.startswith("["):
        return detect_span_format(_first_json_value(lines)) or "spans"
    if first.startswith("{") or Path(path).suffix.lower() in (".jsonl", ".json", ".ndjson"):
        obj = _first_json_value(lines)
        if isinstance(obj, dict) and tokens_field not in obj:
            return detect_span_format(obj) or "jsonl"
        return "jsonl"
    return "conll"


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



_BIO_TAG = re.compile(r"(O|[BIESLU]-\S+)\Z")


def conll_documents(path: str | Path) -> list[list[list[str]]]:
    """The documents of a CoNLL file as plain text: one list per ``-DOCSTART-`` article, of
    sentences (blank-line separated), of tokens (the first column). Tags are not read or
    checked (see :func:`read_ner` for that); used to build pre-training and benchmark text
    from CoNLL-2003 articles. A file without ``-DOCSTART-`` lines is one document.

    Raises:
        OSError: the file cannot be read.
    """
    docs: list[list[list[str]]] = []
    doc: list[list[str]] = []
    sent: list[str] = []
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        parts = line.split()
        if not parts or parts[0] == "-DOCSTART-":
            if sent:
                doc.append(sent)
            sent = []
            if parts and doc:
                docs.append(doc)
                doc = []
            continue
        sent.append(parts[0])
    if sent:
        doc.append(sent)
    if doc:
        docs.append(doc)
    return docs


def looks_like_conll(lines) -> bool:
    """True when the first 200 non-empty lines are CoNLL-style: ``-DOCSTART-``, or at
    least 80 % of them end in a BIO/BIOES tag after at most 3 other columns."""
    sample = [s.split() for s in lines[:2000] if s.strip()][:200]
    if not sample:
        return False
    if sample[0][0] == "-DOCSTART-":
        return True
    tagged = sum(1 for p in sample if 2 <= len(p) <= 4 and _BIO_TAG.match(p[-1]))
    return tagged >= 0.8 * len(sample)

