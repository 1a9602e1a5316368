"""Character-span NER annotations, as annotation tools export them, read as words and tags.

Two layouts (``data_format`` of :func:`bertcli.train.data.read_ner`):

* ``spans``: one record per line (JSONL), or a JSON array of such records, each with the
  text and its entities as character offsets (``end`` exclusive, Python string indices,
  i.e. code points):

  - ``{"text": ..., "spans": [{"start": 0, "end": 5, "label": "PER"}, ...]}``: spaCy /
    Prodigy, and what ``bertcli ner --format spans`` writes (extra keys such as
    ``score`` or ``token_start`` are ignored);
  - ``{"text": ..., "entities": [[0, 5, "PER"], ...]}`` or ``"label": [[0, 5, "PER"]]``:
    doccano (also its ``{"start_offset", "end_offset", "label"}`` objects);
  - ``"ents"`` (displaCy), and ``bertcli ner``'s own ``entities``
    (``{entity_group, start, end, ...}``); Label Studio's JSON-MIN export
    (``"label": [{"start", "end", "labels": ["PER"]}]``).

  When a record has several of these keys the first of :data:`SPAN_KEYS` is read (so a
  ``bertcli ner --format spans`` run over a doccano file reads back the predictions, not
  the ``label`` it kept). Prodigy records whose ``answer`` is ``reject`` or ``ignore``
  are left out, as Prodigy's own exports leave them out.
* ``labelstudio``: Label Studio's JSON export, an array of tasks ``{"data": {"text": ...},
  "annotations": [{"result": [{"type": "labels", "value": {"start", "end", "labels"}}]}]}``.
  Every annotation not cancelled (``was_cancelled``) is one example, as
  label-studio-converter exports them; a task without one is left out (reported);
  results of other types (choices, relations, ...) are ignored. Where ``value.text`` does
  not match ``text[start:end]`` but matches with the offsets counted in UTF-16 code
  units (JavaScript string indices: Label Studio before 1.0.1 counted an emoji as two,
  HumanSignal/label-studio#1347), the offsets are converted and reported.

Words: the text is split at whitespace, and every punctuation character (ASCII
``!"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~`` and Unicode category P*) and CJK ideograph is a
word of its own: the rule of BERT's BasicTokenizer (``tokenization.py``), which is also
the word split of every WordPiece checkpoint's tokenizer, so a span that a model
predicted on whole words always lands on word boundaries here. The words then take the
usual word -> WordPiece alignment (:func:`bertcli.train.features.align_labels`).

A span is valid when it covers whole words: it may include whitespace at its ends, but
may not start or end inside a word, cover no word, overlap another span, or fall
outside the text. Label Studio's own CoNLL export instead tags a whole whitespace token
that a span only touches (``Paris.`` for a span ``Paris``); here that is an error, since
guessing would teach the model wrong boundaries. Exact duplicates (same start, end and
label) are read once and reported.
"""

from __future__ import annotations

import bisect
import json
import unicodedata
from dataclasses import dataclass

from ...errors import DataError
from .lines import Issue, _err

SPAN_FORMATS = ("spans", "labelstudio")
#: keys holding a record's spans, in the order they are looked for.
SPAN_KEYS = ("spans", "entities", "label", "ents")
#: what an invalid span does (``on_invalid``): ``skip`` leaves its record out (reported);
#: ``fix`` and ``error`` stop, since a span has no repair that is not a guess.
ON_INVALID = ("fix", "skip", "error")

_HINT = ("a span must cover whole words (split at whitespace and at each punctuation character, as BERT's "
         "tokenizer does); correct it, or pass --on-invalid skip to leave such records out")


@dataclass
class SpanExample:
    """One annotated text read as words: ``words[i]`` is ``text[offsets[i][0]:offsets[i][1]]``."""

    text: str
    words: list[str]
    offsets: list[tuple[int, int]]
    tags: list[str]
    spans: list[tuple[int, int, str]]  #: the valid spans read, sorted by start
    line: int


class SpanError(ValueError):
    """A span that cannot be turned into word tags (the message names it)."""


# ---------------------------------------------------------------- words and tags

def _is_punctuation(ch: str) -> bool:
    # BERT's BasicTokenizer: all non-letter/number ASCII ("$", "^", "`" are not category P)
    # plus Unicode punctuation.
    cp = ord(ch)
    if 33 <= cp <= 47 or 58 <= cp <= 64 or 91 <= cp <= 96 or 123 <= cp <= 126:
        return True
    return unicodedata.category(ch).startswith("P")


def _is_cjk(cp: int) -> bool:
    # The CJK Unified Ideographs blocks of BERT's tokenization._is_chinese_char.
    return (0x4E00 <= cp <= 0x9FFF or 0x3400 <= cp <= 0x4DBF or 0x20000 <= cp <= 0x2A6DF
            or 0x2A700 <= cp <= 0x2B73F or 0x2B740 <= cp <= 0x2B81F or 0x2B820 <= cp <= 0x2CEAF
            or 0xF900 <= cp <= 0xFAFF or 0x2F800 <= cp <= 0x2FA1F)


def split_words(text: str) -> list[tuple[int, int]]:
    """Word offsets ``(start, end)`` of ``text`` (end exclusive), by BERT's BasicTokenizer
    rule: split at whitespace; each punctuation character and CJK ideograph alone.

    ``split_words("Paris, France.")`` -> ``[(0, 5), (5, 6), (7, 13), (13, 14)]``.
    """
    out: list[tuple[int, int]] = []
    start = None
    for i, ch in enumerate(text):
        if ch.isspace():
            if start is not None:
                out.append((start, i))
                start = None
        elif _is_punctuation(ch) or _is_cjk(ord(ch)):
            if start is not None:
                out.append((start, i))
                start = None
            out.append((i, i + 1))
        elif start is None:
            start = i
    if start is not None:
        out.append((start, len(text)))
    return out


def _show(span) -> str:
    return json.dumps(list(span), ensure_ascii=False)


def spans_to_tags(text: str, spans, scheme: str = "IOB2",
                  offsets: list[tuple[int, int]] | None = None) -> tuple[list[str], list[str]]:
    """Words of ``text`` and their tags for character ``spans``.

    Args:
        text: the annotated text.
        spans: ``(start, end, label)`` triples (any order; end exclusive).
        scheme: ``IOB2`` (BIO: ``B-X`` on a span's first word, ``I-X`` on the rest) or
            ``BIOES`` (``S-X`` for a one-word span, ``E-X`` on the last word).
        offsets: the words (default :func:`split_words` of ``text``).

    Returns:
        ``(words, tags)``, one tag per word, ``O`` outside every span.

    Raises:
        SpanError: a span out of range (negative, past the text, ``start >= end``), one
            that starts or ends inside a word or covers no word, one that overlaps another
            (the message names the span, its text and the word it cuts).
    """
    words = offsets if offsets is not None else split_words(text)
    starts = [s for s, _ in words]
    ends = [e for _, e in words]
    tags = ["O"] * len(words)
    prev = None
    for span in sorted(spans, key=lambda x: (x[0], x[1])):
        s, e, label = span
        if s < 0 or e > len(text) or s >= e:
            why = "is empty or reversed (start >= end)" if 0 <= s and e <= len(text) else \
                f"is out of range (the text has {len(text)} characters)"
            raise SpanError(f"span {_show(span)} {why}")
        if prev is not None and s < prev[1]:
            raise SpanError(f"span {_show(span)} ({text[s:e]!r}) overlaps span {_show(prev)} "
                            f"({text[prev[0]:prev[1]]!r})")
        first = bisect.bisect_right(ends, s)  # the first word ending after s
        last = bisect.bisect_left(starts, e) - 1  # the last word starting before e
        if first <= last and words[first][0] < s:
            ws, we = words[first]
            raise SpanError(f"span {_show(span)} ({text[s:e]!r}) starts inside the word {text[ws:we]!r} "
                            f"(characters {ws}-{we})")
        if first <= last and words[last][1] > e:
            ws, we = words[last]
            raise SpanError(f"span {_show(span)} ({text[s:e]!r}) ends inside the word {text[ws:we]!r} "
                            f"(characters {ws}-{we})")
        if first > last:
            raise SpanError(f"span {_show(span)} ({text[s:e]!r}) covers no word")
        n = last - first + 1
        for k in range(first, last + 1):
            if scheme == "BIOES":
                p = "S" if n == 1 else "B" if k == first else "E" if k == last else "I"
            else:
                p = "B" if k == first else "I"
            tags[k] = f"{p}-{label}"
        prev = span
    return [text[s:e] for s, e in words], tags


def entities_to_spans(entities: list[dict]) -> list[dict]:
    """``bertcli ner`` entities (``{entity_group, score, word, start, end}``) as span
    objects ``{"start", "end", "label", "score"}``, the record shape of the ``spans``
    format (spaCy / Prodigy keys; ``score`` is extra, for reviewing the least certain first).

    Raises:
        ValueError: token-level entities (``aggregation none``: ``entity`` B-/I- tags,
            not ``entity_group``), which are not entities yet.
    """
    out = []
    for e in entities:
        if "entity_group" not in e:
            raise ValueError("span output needs grouped entities (entity_group), not token tags")
        out.append({"start": e["start"], "end": e["end"], "label": e["entity_group"], "score": e["score"]})
    return out


# ---------------------------------------------------------------- records

def json_records(src: str, lines: list[str]) -> list[tuple[int, object]]:
    """``(line, value)`` of every JSON value in a file: the elements of a JSON array (the
    file starts with ``[``; each numbered by the line it starts on), else one per
    non-empty line (JSONL).

    Raises:
        DataError: malformed JSON, naming the line.
    """
    first = next((s for s in lines if s.strip()), "")
    if not first.lstrip().startswith("["):
        out = []
        for n, s in enumerate(lines, 1):
            if not s.strip():
                continue
            try:
                out.append((n, json.loads(s)))
            except json.JSONDecodeError as e:
                raise _err(src, n, f"malformed JSON: {e.msg} at column {e.colno}") from None
        return out
    text = "\n".join(lines)
    line_starts = [0]
    for s in lines[:-1]:
        line_starts.append(line_starts[-1] + len(s) + 1)

    def line_at(pos: int) -> int:
        return bisect.bisect_right(line_starts, pos)

    dec = json.JSONDecoder()
    pos = text.index("[") + 1
    out = []

    def skip_ws(p: int) -> int:
        while p < len(text) and text[p].isspace():
            p += 1
        return p

    pos = skip_ws(pos)
    if pos < len(text) and text[pos] == "]":
        pos += 1
    else:
        while True:
            try:
                value, end = dec.raw_decode(text, pos)
            except json.JSONDecodeError as e:
                raise _err(src, line_at(e.pos), f"malformed JSON array: {e.msg} at column {e.colno}") from None
            out.append((line_at(pos), value))
            pos = skip_ws(end)
            if pos < len(text) and text[pos] == ",":
                pos = skip_ws(pos + 1)
                continue
            if pos < len(text) and text[pos] == "]":
                pos += 1
                break
            raise _err(src, line_at(pos), "malformed JSON array: expected ',' or ']' after an element")
    if skip_ws(pos) < len(text):
        raise _err(src, line_at(skip_ws(pos)), "text after the end of the JSON array")
    return out


def detect_span_format(value) -> str | None:
    """``labelstudio``, ``spans`` or None (neither) from a file's first JSON record: a task
    with a ``data`` object (or ``annotations``) is Label Studio's; a record with a list in
    one of :data:`SPAN_KEYS` is spans (``{"text", "label": "pos"}`` is classification data)."""
    if not isinstance(value, dict):
        return None
    if isinstance(value.get("data"), dict) or "annotations" in value or "completions" in value:
        return "labelstudio"
    if any(isinstance(value.get(k), list) for k in SPAN_KEYS):
        return "spans"
    return None


def _keys(obj: dict) -> str:
    return ", ".join(map(str, obj)) or "no fields"


def _offset(v, what: str, i: int, src, n) -> int:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or (isinstance(v, float) and not v.is_integer()):
        raise _err(src, n, f"span {i + 1}: {what} {json.dumps(v)} is not an integer offset")
    return int(v)


def _label(v, i: int, src, n) -> str:
    if isinstance(v, list):  # Label Studio / JSON-MIN: "labels": ["PER"]
        if len(v) != 1:
            raise SpanError(f"span {i + 1} has {len(v)} labels ({', '.join(map(str, v)) or 'none'}); "
                            "a word gets one tag")
        v = v[0]
    if not isinstance(v, str) or not v.strip():
        raise _err(src, n, f"span {i + 1}: label {json.dumps(v, ensure_ascii=False)} is not a non-empty string")
    return v.strip()


def _parse_span(item, i: int, src, n) -> tuple[int, int, str]:
    """One span as ``(start, end, label)``; a malformed one is a DataError (not skippable)."""
    if isinstance(item, list):
        if len(item) != 3:
            raise _err(src, n, f"span {i + 1} {_show(item)} is not [start, end, label]")
        return _offset(item[0], "start", i, src, n), _offset(item[1], "end", i, src, n), _label(item[2], i, src, n)
    if isinstance(item, dict):
        s = item.get("start", item.get("start_offset"))
        e = item.get("end", item.get("end_offset"))
        lab = next((item[k] for k in ("label", "labels", "entity_group") if k in item), None)
        if s is None or e is None or lab is None:
            hint = None
            if "entity" in item and "entity_group" not in item:
                hint = "token-level entities (ner --aggregation none) are tags, not spans; rerun with an aggregation"
            raise _err(src, n, f"span {i + 1} has no start, end and label (its keys: {_keys(item)})", hint)
        return _offset(s, "start", i, src, n), _offset(e, "end", i, src, n), _label(lab, i, src, n)
    raise _err(src, n, f"span {i + 1} {json.dumps(item, ensure_ascii=False)[:60]} is not [start, end, label] "
                       "or {start, end, label}")


def _text_of(obj: dict, text_field: str, src, n, where: str = "") -> str:
    if text_field not in obj:
        raise _err(src, n, f"missing field '{where}{text_field}' (the object has {_keys(obj)})",
                   "name the text field with --text-field")
    v = obj[text_field]
    if not isinstance(v, str):
        raise _err(src, n, f"field '{where}{text_field}' is not a string")
    return v


def _utf16_to_index(text: str) -> list[int]:
    """``m[u]`` = the code-point index at UTF-16 code unit ``u`` (-1 inside a surrogate pair)."""
    m = []
    for i, ch in enumerate(text):
        m.append(i)
        if ord(ch) > 0xFFFF:
            m.append(-1)
    m.append(len(text))
    return m


class _Reader:
    """Turns records into :class:`SpanExample` s, collecting invalid spans and notices."""

    def __init__(self, src: str, on_invalid: str, scheme: str):
        if on_invalid not in ON_INVALID:
            raise ValueError(f"on_invalid must be one of {', '.join(ON_INVALID)}")
        self.src, self.on_invalid, self.scheme = src, on_invalid, scheme
        self.examples: list[SpanExample] = []
        self.issues: list[Issue] = []
        self.invalid: list[Issue] = []

    def add(self, text: str, raw_spans: list, n: int, where: str = "") -> None:
        """``raw_spans``: parsed ``(start, end, label)`` or a SpanError (an invalid label list)."""
        bad = next((s for s in raw_spans if isinstance(s, SpanError)), None)
        spans = sorted(set(s for s in raw_spans if not isinstance(s, SpanError)), key=lambda x: (x[0], x[1], x[2]))
        if bad is None and len(spans) < len(raw_spans):
            self.issues.append(Issue(self.src, n, f"{where}{len(raw_spans) - len(spans)} duplicate span(s) read once"))
        try:
            if bad is not None:
                raise bad
            offsets = split_words(text)
            words, tags = spans_to_tags(text, spans, self.scheme, offsets)
        except SpanError as e:
            self.invalid.append(Issue(self.src, n, f"{where}{e}"))
            return
        if not words:
            self.issues.append(Issue(self.src, n, f"{where}empty text; record left out"))
            return
        self.examples.append(SpanExample(text, words, offsets, tags, spans, n))

    def spans_record(self, obj, n: int, text_field: str) -> None:
        if not isinstance(obj, dict):
            raise _err(self.src, n, "expected a JSON object")
        answer = obj.get("answer")
        if answer in ("reject", "ignore"):
            self.issues.append(Issue(self.src, n, f"Prodigy answer '{answer}'; record left out"))
            return
        text = _text_of(obj, text_field, self.src, n)
        key = next((k for k in SPAN_KEYS if k in obj), None)
        if key is None:
            if isinstance(obj.get("data"), dict):
                raise _err(self.src, n, "a Label Studio task in a spans file",
                           "read Label Studio exports with --data-format labelstudio (or auto)")
            raise _err(self.src, n, f"no spans: expected a list in one of {', '.join(SPAN_KEYS)} "
                                    f"(the object has {_keys(obj)})",
                       "a text without entities needs an empty list, e.g. \"spans\": []")
        items = obj[key]
        if not isinstance(items, list):
            raise _err(self.src, n, f"field '{key}' is not a list of spans")
        self.add(text, [self._parse(item, i, n) for i, item in enumerate(items)], n)

    def _parse(self, item, i, n):
        try:
            return _parse_span(item, i, self.src, n)
        except SpanError as e:
            return e

    def labelstudio_task(self, task, n: int, text_field: str) -> None:
        if not isinstance(task, dict):
            raise _err(self.src, n, "expected a Label Studio task (a JSON object)")
        data = task.get("data")
        if not isinstance(data, dict):
            raise _err(self.src, n, f"task has no 'data' object (its keys: {_keys(task)})",
                       "Label Studio's JSON export (not JSON-MIN or CSV) is expected; JSON-MIN reads as spans")
        text = _text_of(data, text_field, self.src, n, "data.")
        anns = task.get("annotations", task.get("completions"))
        if anns is None:
            anns = []
        if not isinstance(anns, list):
            raise _err(self.src, n, "'annotations' is not a list")
        anns = [a for a in anns if isinstance(a, dict) and not (a.get("was_cancelled") or a.get("skipped"))]
        if not anns:
            tid = f" {task['id']}" if "id" in task else ""
            self.issues.append(Issue(self.src, n, f"task{tid} has no annotation (not cancelled); left out"))
            return
        for k, ann in enumerate(anns):
            where = f"annotation {k + 1}: " if len(anns) > 1 else ""
            result = ann.get("result") or []
            if not isinstance(result, list):
                raise _err(self.src, n, f"{where}'result' is not a list")
            raw = []
            utf16 = None
            converted: list[str] = []
            for r in result:
                if not isinstance(r, dict) or not isinstance(r.get("value"), dict):
                    continue
                v = r["value"]
                if r.get("type", "labels") != "labels" and "labels" not in v:
                    continue  # choices, relations, text areas: not spans
                if "start" not in v or "end" not in v or isinstance(v.get("start"), str):
                    raise _err(self.src, n, f"{where}a '{r.get('type', 'labels')}' result without character offsets "
                                            "(HyperText / Paragraphs labels use XPath offsets)",
                               "label plain <Text> to train a tagger")
                i = len(raw)
                try:
                    s, e, lab = _parse_span([v["start"], v["end"], v.get("labels")], i, self.src, n)
                except SpanError as err:
                    raw.append(err)
                    continue
                said = v.get("text")
                if isinstance(said, str) and text[s:e] != said:
                    if utf16 is None:
                        utf16 = _utf16_to_index(text)
                    s2 = utf16[s] if 0 <= s < len(utf16) else -1
                    e2 = utf16[e] if 0 <= e < len(utf16) else -1
                    if s2 >= 0 and e2 >= 0 and text[s2:e2] == said:
                        converted.append(f"{_show((s, e, lab))} -> {_show((s2, e2, lab))}")
                        s, e = s2, e2
                    else:
                        raw.append(SpanError(f"span {_show((s, e, lab))} is {text[s:e]!r} in the text but "
                                             f"{said!r} in the annotation"))
                        continue
                raw.append((s, e, lab))
            if converted:
                more = f" and {len(converted) - 3} more" if len(converted) > 3 else ""
                self.issues.append(Issue(self.src, n, f"{where}offsets counted in UTF-16 code units (JavaScript) read "
                                                      f"as characters: {', '.join(converted[:3])}{more}"))
            self.add(text, raw, n, where)

    def finish(self) -> tuple[list[SpanExample], list[Issue]]:
        if self.invalid:
            if self.on_invalid != "skip":
                first = self.invalid[0]
                more = f" ({len(self.invalid)} records with invalid spans in all)" if len(self.invalid) > 1 else ""
                raise DataError(f"{first}{more}", _HINT)
            self.issues.extend(Issue(i.source, i.line, f"{i.message}; record left out") for i in self.invalid)
            self.issues.sort(key=lambda i: i.line or 0)
        return self.examples, self.issues


def read_spans(src: str, lines: list[str], data_format: str, *, text_field: str = "text",
               on_invalid: str = "fix", scheme: str = "IOB2") -> tuple[list[SpanExample], list[Issue]]:
    """Read a ``spans`` or ``labelstudio`` file's lines (see the module docstring).

    Args:
        src: the file name, for messages.
        lines: its lines (:func:`bertcli.train.data.read_lines`).
        data_format: ``spans`` or ``labelstudio``.
        text_field: the text's key (Label Studio: the key in ``data``).
        on_invalid: ``skip`` leaves a record with an invalid span out (reported);
            ``fix`` / ``error`` raise.
        scheme: tags to produce, ``IOB2`` or ``BIOES``.

    Returns:
        ``(examples, notices)``, examples in file order.

    Raises:
        DataError: malformed JSON, a record without its text or spans, a malformed span
            (not ``[start, end, label]`` / ``{start, end, label}``, a non-integer offset,
            an empty label), or, unless ``on_invalid="skip"``, the first invalid span
            (out of range, cutting a word, covering no word, overlapping another, several
            labels, Label Studio text that does not match), naming file, line and span,
            with the count of such records.
    """
    if data_format not in SPAN_FORMATS:
        raise ValueError(f"data_format must be one of {SPAN_FORMATS}")
    rd = _Reader(src, on_invalid, scheme)
    for n, value in json_records(src, lines):
        if data_format == "labelstudio":
            rd.labelstudio_task(value, n, text_field)
        else:
            rd.spans_record(value, n, text_field)
    return rd.finish()
