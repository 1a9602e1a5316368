"""Generate bertcli's bad-input corpus: one small file per fault class, and what each must give.

Every file mixes good records with the fault, so that a test can check the CLI contract
around it: the good records before (and, with ``--on-error skip``, after) a bad one each
give exactly one output line, in order, equal to their output when run alone; a bad
record gives one error naming its line; nothing ever shows a traceback.

The expectations depend on what a command takes as a good record, so the corpus comes in
three *profiles*:

* ``single``: one text per record (classify, sentiment, ner): a blank text line is a record;
* ``mask``: one text with a ``[MASK]`` (fill-mask): a text line without one is a bad record;
* ``pair``: two texts per record (nsp): text lines are ``A<TAB>B`` (a blank one is skipped),
  JSONL/CSV/TSV have a ``text_pair`` field.

Every good text holds ``[MASK]``, so the same sentences serve all three profiles.

Use from tests: ``cases(profile)`` (pure, for parametrising) and ``write(folder, profile)``;
from a shell: ``python tests/badinput/make_corpus.py OUT_DIR [single|mask|pair]`` writes the
files and a ``manifest.json`` of the expectations.
"""

from __future__ import annotations

import csv
import io
import json
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path

PROFILES = ("single", "mask", "pair")
MASK = "[MASK]"
NO_MASK = f"no {MASK} in the text (write the mask exactly as {MASK})"
NO_TAB = "expected two texts separated by a TAB"

# Plain sentences (with commas and quotes, so CSV quoting is exercised) and their pair halves.
SENTENCES = [
    "The capital of France is [MASK].",
    "Angela Merkel visited [MASK] on Tuesday, with Emmanuel Macron.",
    'He said "the food was [MASK]" and left.',
    "I loved this [MASK], it was wonderful.",
    "Microsoft and Google announced new [MASK] in San Francisco.",
    "She sells sea [MASK] by the sea shore.",
]
SECOND = ["It was empty.", "Paris is big.", 'She said "no".', "The river bank.", "東京 は 日本", "Zürich 😀"]


@dataclass
class Expect:
    """One input record, in order: ``ok`` (its output-side ``fields``), ``bad`` (skippable),
    ``fatal`` (ends the run in both modes), or ``header`` (the whole file is refused)."""

    kind: str
    line: int
    fields: dict | None = None
    message: str | None = None


@dataclass
class Case:
    """One corpus file: its name (the extension picks the reader), bytes and expectations."""

    name: str
    fault: str
    data: bytes
    expect: list[Expect] = field(default_factory=list)
    input_format: str | None = None  # for --input-format, when the name alone does not tell


class _Builder:
    """Builds lines of one format and the expectation of each."""

    def __init__(self, profile: str, fmt: str):
        self.profile, self.fmt = profile, fmt
        self.pairs = profile == "pair"
        self.lines: list[bytes] = []
        self.next_line = 1  # a quoted CSV field may hold line breaks
        self.expect: list[Expect] = []
        self.n_good = 0
        if fmt in ("csv", "tsv"):
            cols = ["id", "text"] + (["text_pair"] if self.pairs else [])
            self.raw(self._row(cols))

    # -------------------------------------------------------------- lines

    def _row(self, cells: list[str]) -> bytes:
        if self.fmt == "tsv":
            return "\t".join(cells).encode("utf-8")
        buf = io.StringIO()
        csv.writer(buf, lineterminator="").writerow(cells)
        return buf.getvalue().encode("utf-8")

    def raw(self, line: bytes, *expect: Expect) -> int:
        """Append a raw line (no line end); returns its 1-based line number."""
        n = self.next_line
        self.lines.append(line)
        self.next_line += line.count(b"\n") + 1
        self.expect.extend(expect)
        return n

    def good(self, a: str | None = None, b: str | None = None) -> None:
        """A good record: the next plain sentence, or the text(s) given."""
        i = self.n_good
        self.n_good += 1
        a = SENTENCES[i % len(SENTENCES)] if a is None else a
        b = SECOND[i % len(SECOND)] if b is None else b
        n = self.next_line
        if self.fmt == "text":
            fields = {"text": a, "text_pair": b} if self.pairs else {"text": a}
            line = f"{a}\t{b}" if self.pairs else a
            self.raw(line.encode("utf-8"), self._judge(n, fields, a, line))
        elif self.fmt == "jsonl":
            fields = {"id": i, "text": a, **({"text_pair": b} if self.pairs else {})}
            self.raw(json.dumps(fields, ensure_ascii=False).encode("utf-8"), self._judge(n, fields, a))
        else:
            fields = {"id": str(i), "text": a, **({"text_pair": b} if self.pairs else {})}
            self.raw(self._row(list(fields.values())), self._judge(n, fields, a))

    def text_line(self, line: str) -> None:
        """A plain-text line whose judgement depends on the profile (blank, no TAB, no mask)."""
        if self.pairs and "\t" not in line and not line.strip(" \r"):
            self.raw(line.encode("utf-8"))  # a blank line holds no pair: skipped, as in JSONL
            return
        n = self.next_line
        a, sep, b = line.partition("\t")
        fields = {"text": a, "text_pair": b} if self.pairs else {"text": line}
        self.raw(line.encode("utf-8"), self._judge(n, fields, line if not self.pairs else a, line))

    def _judge(self, n: int, fields: dict, text: str, line: str | None = None) -> Expect:
        if self.pairs and line is not None and "\t" not in line:
            return Expect("bad", n, message=NO_TAB)
        if self.profile == "mask" and MASK not in text:
            return Expect("bad", n, message=NO_MASK)
        return Expect("ok", n, fields)

    def bad(self, line: bytes | str, message: str, kind: str = "bad") -> None:
        if isinstance(line, str):
            line = line.encode("utf-8")
        n = self.next_line
        self.raw(line, Expect(kind, n, message=message))

    def case(self, name: str, fault: str, *, eol: bytes = b"\n", bom: bool = False, last_eol: bool = True,
             input_format: str | None = None) -> Case:
        data = eol.join(self.lines) + (eol if last_eol and self.lines else b"")
        if bom:
            data = b"\xef\xbb\xbf" + data
        return Case(name, fault, data, self.expect, input_format)


def _b(profile: str, fmt: str) -> _Builder:
    return _Builder(profile, fmt)


def cases(profile: str) -> list[Case]:
    """The corpus of ``profile`` (see the module docstring), in memory."""
    if profile not in PROFILES:
        raise ValueError(f"unknown profile {profile!r}")
    pair = profile == "pair"
    out: list[Case] = []

    # -------------------------------------------------------------- JSONL faults
    b = _b(profile, "jsonl")
    b.good(), b.good()
    b.bad('{"text": bad', "malformed JSON: Expecting value at column 10")
    b.good(), b.good()
    out.append(b.case("malformed.jsonl", "malformed JSON line"))

    b = _b(profile, "jsonl")
    b.good()
    b.bad("[1, 2]", "expected a JSON object, got an array")
    b.bad('"just a string"', "expected a JSON object, got a string")
    b.bad("42", "expected a JSON object, got a number")
    b.bad("null", "expected a JSON object, got null")
    b.good()
    out.append(b.case("not-object.jsonl", "JSON that is not an object"))

    b = _b(profile, "jsonl")
    b.good()
    if pair:
        b.bad('{"id": 7, "text": "A [MASK]."}',
              "missing field 'text_pair' (the object has fields id, text); choose one with --field-b")
    else:
        b.bad('{"id": 7, "txt": "A [MASK].", "la\\u2028n\\tg\\u202e": "en"}',
              "missing field 'text' (the object has fields id, txt, la\\u2028n\\u0009g\\u202e); "
              "choose one with --field")
    b.bad("{}", "missing field 'text' (the object has no fields); choose one with --field")
    b.good()
    out.append(b.case("missing-field.jsonl", "missing field"))

    b = _b(profile, "jsonl")
    b.good()
    b.bad('{"text": null}', "field 'text' is null, expected a string")
    b.bad('{"text": 3.5}', "field 'text' is a number, expected a string")
    b.bad('{"text": ["a", "[MASK]"]}', "field 'text' is an array, expected a string")
    b.bad('{"text": {"t": "x"}}', "field 'text' is an object, expected a string")
    b.bad('{"text": false}', "field 'text' is a boolean, expected a string")
    if pair:
        b.bad('{"text": "A [MASK].", "text_pair": 1}', "field 'text_pair' is a number, expected a string")
    b.good()
    out.append(b.case("wrong-type.jsonl", "null/number/list instead of a string"))

    b = _b(profile, "jsonl")
    b.good()
    bad = b'{"text": "caf\xe9 [MASK] cr\xe8me"}'
    b.bad(bad, "invalid UTF-8 at byte %d" % bad.index(b"\xe9"))
    b.good()
    out.append(b.case("invalid-utf8.jsonl", "invalid UTF-8 bytes"))

    b = _b(profile, "jsonl")
    b.good()
    b.bad('{"text": "a \\ud800 [MASK]"}', "lone surrogate \\ud800 in a JSON string (not a Unicode character)")
    b.bad('{"text": "ok [MASK]", "note": "\\udcff"}',
          "lone surrogate \\udcff in a JSON string (not a Unicode character)")
    # an escaped surrogate *pair* is one character: a good record
    fields = {"id": 9, "text": "a pair \U0001F600 is fine [MASK]", **({"text_pair": "B"} if pair else {})}
    line = json.dumps(fields)  # ASCII: the emoji is written as a surrogate pair
    assert "\\ud83d\\ude00" in line
    b.raw(line.encode(), Expect("ok", b.next_line, fields))
    b.good()
    out.append(b.case("lone-surrogate.jsonl", "escaped lone surrogate in JSON"))

    b = _b(profile, "jsonl")
    b.good()
    b.bad(b'{"text": "tab\there [MASK]"}',
          "malformed JSON: control character U+0009 inside a string at column 14 (JSON spells it \\u0009)")
    b.bad(b'{"text": "nul\x00here [MASK]"}',
          "malformed JSON: control character U+0000 inside a string at column 14 (JSON spells it \\u0000)")
    b.good("escaped NUL \x00, BEL \x07, ESC \x1b[31m, DEL \x7f and a tab\t[MASK].")
    b.good()
    out.append(b.case("control.jsonl", "NUL and other control characters"))

    b = _b(profile, "jsonl")
    b.good()
    b.bad(b"[" * 50_000, "malformed JSON: nested too deeply")
    b.good()
    out.append(b.case("deep.jsonl", "JSON nested too deeply"))

    b = _b(profile, "jsonl")
    b.raw(b'[{"text": "a [MASK]"}, {"text": "b [MASK]"}]',
          Expect("bad", 1, message="expected a JSON object, got an array; for a file holding one JSON array of "
                                   "objects use --input-format json (or a .json name)"))
    b.good()
    out.append(b.case("array-as-jsonl.jsonl", "a JSON array read as JSONL"))

    b = _b(profile, "jsonl")
    b.good(), b.good()
    b.raw(b""), b.raw(b"   "), b.raw(b"\t")  # blank lines are no records (JSON Lines; jq, pandas)
    b.good()
    out.append(b.case("blank-line.jsonl", "blank lines in JSONL"))

    # -------------------------------------------------------------- plain-text faults
    b = _b(profile, "text")
    b.good(), b.good()
    bad = "bad \xff\xfe [MASK] here".encode("latin-1")
    b.bad(bad, "invalid UTF-8 at byte 4")
    b.good(), b.good()
    out.append(b.case("invalid-utf8.txt", "invalid UTF-8 bytes"))

    b = _b(profile, "text")
    b.good()
    for c in "\x00\x01\x07\x08\x0b\x0c\x1b\x1c\x1f\x7f\x85\u2028":
        b.good(f"control {c!r}: [{c}]{c} the [MASK] {c}end")
    b.good()
    out.append(b.case("control.txt", "NUL and other control characters"))

    b = _b(profile, "text")
    b.good()
    b.good("zero\u200bwidth\u200cjoin\u200d\u2060 and \ufeffBOM inside [MASK].")
    b.good("bidi \u202eevil\u202c \u2066isolate\u2069 \u200fRTL\u200e [MASK] مرحبا")
    b.good("\u202e[MASK]\u202c")
    b.good()
    out.append(b.case("zero-width-bidi.txt", "zero-width and bidi characters"))

    b = _b(profile, "text")
    b.good("Emoji 😀👩‍👩‍👧 🇫🇷 👍🏽 🎉 and [MASK] ™ ©")
    b.good("東京は日本の[MASK]です。北京と上海", "中文 句子")
    b.good("한국어 [MASK] 텍스트 ∑∫ 𝔘𝔫𝔦𝔠𝔬𝔡𝔢")
    b.good()
    out.append(b.case("emoji-cjk.txt", "emoji and CJK"))

    long_text = ("Angela Merkel visited Paris and Berlin, " * 2500)[:50_000] + MASK + \
        (" Barack Obama was born in Hawaii." * 1600)[:50_000 - len(MASK)]
    assert len(long_text) == 100_000
    b = _b(profile, "text")
    b.good()
    b.good(long_text, "Short second text.")
    b.good()
    out.append(b.case("long-line.txt", "a 100,000-character line"))

    b = _b(profile, "jsonl")
    b.good()
    b.good(long_text)
    b.good()
    out.append(b.case("long-line.jsonl", "a 100,000-character line"))

    for name in ("empty.txt", "empty.jsonl", "empty.csv", "empty.json"):
        out.append(Case(name, "an empty file", b""))

    b = _b(profile, "text")
    for _ in range(3):
        b.text_line("")
    out.append(b.case("blank-lines.txt", "a file of only blank lines"))
    b = _b(profile, "jsonl")
    for _ in range(3):
        b.raw(b"")  # no records at all
    out.append(b.case("blank-lines.jsonl", "a file of only blank lines"))
    out.append(Case("blank-lines.csv", "a file of only blank lines", b"\n\n\n",
                    [Expect("header", 1, message="no column 'text' in the header (empty); choose one with --field"
                            + ("/--field-b" if pair else ""))]))

    b = _b(profile, "text")
    b.good(), b.text_line("a line without a tab or a mask"), b.good()
    out.append(b.case("mixed.txt", "a line bad for some commands only"))

    # -------------------------------------------------------------- BOM, CRLF, no final newline
    for fmt, ext in (("text", "txt"), ("jsonl", "jsonl"), ("csv", "csv"), ("tsv", "tsv")):
        b = _b(profile, fmt)
        b.good(), b.good(), b.good()
        out.append(b.case(f"bom.{ext}", "a UTF-8 BOM", bom=True))
        b = _b(profile, fmt)
        b.good(), b.good("with a lone \r inside [MASK]" if fmt == "jsonl" else None), b.good()
        out.append(b.case(f"crlf.{ext}", "CRLF line ends", eol=b"\r\n"))
        b = _b(profile, fmt)
        b.good(), b.good()
        out.append(b.case(f"no-final-newline.{ext}", "no trailing newline", last_eol=False))

    # -------------------------------------------------------------- CSV / TSV
    b = _b(profile, "csv")
    b.good()
    cols = 3 if pair else 2
    b.bad("1,two [MASK]", f"row has 2 columns, the header has {cols}") if pair else \
        b.bad("only-one-cell [MASK]", f"row has 1 columns, the header has {cols}")
    b.bad(",".join(["x"] * (cols + 2)), f"row has {cols + 2} columns, the header has {cols}")
    b.raw(b"", Expect("bad", b.next_line, message=f"row has 0 columns, the header has {cols}"))
    b.good()
    out.append(b.case("ragged.csv", "a CSV with a ragged row"))

    b = _b(profile, "csv")
    b.good()
    bad = b'9,"caf\xe9 [MASK]"' + (b",B" if pair else b"")
    b.bad(bad, "invalid UTF-8 at byte 6")
    b.good()
    out.append(b.case("invalid-utf8.csv", "invalid UTF-8 bytes"))

    b = _b(profile, "csv")
    b.good()
    b.good("a quoted field\nover two lines, [MASK]")
    b.good()
    out.append(b.case("multiline.csv", "a quoted CSV field over several lines"))

    b = _b(profile, "tsv")
    b.good('"quoted" [MASK]')
    b.good('"unbalanced [MASK]')
    b.good('say "hi", [MASK] ""twice""')
    b.good()
    out.append(b.case("quotes.tsv", "a TSV with quotes (no quoting: literal)"))

    # the rows after it hold no quote: the open field runs to the end of the file (a later
    # quote would close it, and the rows between would be one valid, if unintended, field)
    b = _b(profile, "csv")
    b.good(), b.good()
    n = b.next_line
    b.raw(b'3,"an unterminated quote, [MASK]' + (b",B" if pair else b""))
    b.good("plain row [MASK] five", "B5"), b.good("plain row [MASK] six", "B6")  # swallowed: never records
    b.expect = [e for e in b.expect if e.line < n] + [Expect(
        "fatal", n, message=f"unterminated quoted field: the quote opened on this line is never closed, "
                            f"so lines {n}-{n + 2} cannot be read")]
    out.append(b.case("unterminated-quote.csv", "a CSV with an unterminated quote"))

    out.append(Case("no-field.csv", "a CSV header without the field", b"review,label\ngood [MASK],1\n",
                    [Expect("header", 1, message="no column 'text' in the header (review, label); choose one with "
                                                 "--field" + ("/--field-b" if pair else ""))]))

    # -------------------------------------------------------------- JSON array files
    def array(name, fault, elements, tail="\n]\n", input_format=None):
        lines = ["["]
        exp = []
        for k, (el, e) in enumerate(elements):
            lines.append("  " + el + ("," if k < len(elements) - 1 else ""))
            if e is not None:
                exp.append(Expect(e.kind, len(lines), e.fields, e.message))
        data = "\n".join(lines).encode("utf-8") + tail.encode("utf-8")
        out.append(Case(name, fault, data, exp, input_format))

    def g(i, a=None):
        f = {"id": i, "text": a or SENTENCES[i], **({"text_pair": SECOND[i]} if pair else {})}
        return json.dumps(f, ensure_ascii=False), Expect("ok", 0, f)

    array("array.json", "a JSON array of objects", [g(0), g(1), g(2)])
    array("array-bad-elements.json", "a JSON array with bad elements",
          [g(0), ("5", Expect("bad", 0, message="expected a JSON object, got a number")),
           ('{"txt": "x"}', Expect("bad", 0, message="missing field 'text' (the object has fields txt); "
                                                     "choose one with --field")), g(1)])
    # cut after the third element's comma: three records, then the end of the file
    array("array-truncated.json", "a JSON array cut short", [g(0), g(1), g(2)], tail=",\n")
    out[-1].expect.append(Expect("fatal", 4, message="malformed JSON array: the file ends before its closing ]"))
    array("array-syntax.json", "a syntax error inside a JSON array",
          [g(0), ('{"text": "x" "y"}', None), g(1)])
    out[-1].expect = out[-1].expect[:1] + [
        Expect("fatal", 3, message="malformed JSON array: Expecting ',' delimiter at column 16")]
    array("array.data", "a JSON array given --input-format json", [g(0), g(1)], input_format="json")
    return out


def write(folder: str | Path, profile: str) -> list[tuple[Case, Path]]:
    """Write the corpus of ``profile`` into ``folder``; returns each case with its path."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for c in cases(profile):
        p = folder / c.name
        p.write_bytes(c.data)
        written.append((c, p))
    return written


def main(argv: list[str]) -> int:
    """``make_corpus.py OUT_DIR [PROFILE]``: write the files and ``manifest.json``."""
    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__)
        return 0 if argv else 2
    out = Path(argv[0])
    profile = argv[1] if len(argv) > 1 else "single"
    manifest = [{"file": str(p), "fault": c.fault, "input_format": c.input_format,
                 "expect": [asdict(e) for e in c.expect]} for c, p in write(out, profile)]
    (out / "manifest.json").write_text(json.dumps(manifest, ensure_ascii=False, indent=1), encoding="utf-8")
    print(f"wrote {len(manifest)} files to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
