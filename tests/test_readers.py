"""bertcli.io.readers, bertcli.batching and bertcli.io.writers: records in, batches, records out.

Pure Python: no model, no torch. Exact values throughout (messages, line numbers, texts).
"""

from __future__ import annotations

import csv
import io
import json
import math

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bertcli import batching
from bertcli.errors import InputError
from bertcli.io import readers, writers
from bertcli.io.readers import Record, read_records

FAST = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def read(data: bytes, fmt: str = "auto", **kw) -> list[Record]:
    return list(read_records(io.BytesIO(data), fmt, **kw))


def summary(recs: list[Record]) -> list[tuple]:
    """(index, line, text, text_pair, error) per record: everything but the echoed fields."""
    return [(r.index, r.line, r.text, r.text_pair, r.error) for r in recs]


# ---------------------------------------------------------------- plain text

def test_text_lines_bom_crlf_and_blank_lines_are_records():
    data = b"\xef\xbb\xbfhello\r\n\r\n   \r\nworld\r\nlast without newline"
    assert summary(read(data, "text")) == [
        (0, 1, "hello", None, None),
        (1, 2, "", None, None),
        (2, 3, "   ", None, None),
        (3, 4, "world", None, None),
        (4, 5, "last without newline", None, None),
    ]


def test_text_bom_only_dropped_on_first_line_and_inner_cr_kept():
    data = "a\rb\n\ufeffsecond\n".encode()
    assert [r.text for r in read(data, "text")] == ["a\rb", "\ufeffsecond"]


def test_text_invalid_utf8_is_an_error_record_with_its_line():
    recs = read(b"ok\nstill ok\nbad \xff\xfe here\nafter\n", "text")
    assert summary(recs) == [
        (0, 1, "ok", None, None),
        (1, 2, "still ok", None, None),
        (2, 3, None, None, "invalid UTF-8 at byte 4"),
        (3, 4, "after", None, None),
    ]
    err = recs[2].to_error("in.txt")
    assert isinstance(err, InputError) and err.where() == "in.txt, line 3"


def test_text_pairs_split_at_first_tab_only():
    recs = read(b"A one\tB one\nA\tB\twith tab\nno tab here\n", "text", pairs=True)
    assert summary(recs) == [
        (0, 1, "A one", "B one", None),
        (1, 2, "A", "B\twith tab", None),
        (2, 3, None, None, "expected two texts separated by a TAB"),
    ]


def test_unterminated_string_names_its_column_once():
    recs = read(b'{"text": "ok"}\n{"text": "broken\n', "jsonl")
    assert recs[1].error == "malformed JSON: Unterminated string starting at column 10"


def test_text_pairs_skip_blank_lines():
    """A blank line holds no pair: skipped (as in JSONL), the line numbers kept; plain text
    keeps an empty line as an empty record."""
    recs = read(b"A one\tB one\n\n  \nA two\tB two\n\t\n\n", "text", pairs=True)
    assert summary(recs) == [(0, 1, "A one", "B one", None), (1, 4, "A two", "B two", None),
                             (2, 5, "", "", None)]  # a lone TAB: two empty texts, a pair
    assert [r.text for r in read(b"a\n\nb\n", "text")] == ["a", "", "b"]


def test_empty_input_gives_no_records():
    for fmt in ("auto", "text", "jsonl", "csv", "tsv"):
        assert read(b"", fmt) == []


def test_unknown_format_raises():
    with pytest.raises(InputError, match="unknown input format 'xml'"):
        read(b"x\n", "xml")


# ---------------------------------------------------------------- JSONL

def test_jsonl_good_records_keep_their_fields():
    data = b'{"text": "caf\xc3\xa9", "id": 7, "meta": {"a": [1, 2]}}\n{"id": 8, "text": "b"}\n'
    recs = read(data, "jsonl")
    assert summary(recs) == [(0, 1, "café", None, None), (1, 2, "b", None, None)]
    assert recs[0].fields == {"text": "café", "id": 7, "meta": {"a": [1, 2]}}
    assert list(recs[1].fields) == ["id", "text"]  # key order kept for the output record


@pytest.mark.parametrize("line, message", [
    (b'{"text": bad', "malformed JSON: Expecting value at column 10"),
    (b'{"text": "a",}', "malformed JSON: Expecting property name enclosed in double quotes at column 14"),
    (b'[1, 2]', "expected a JSON object, got an array"),
    (b'"just a string"', "expected a JSON object, got a string"),
    (b'42', "expected a JSON object, got a number"),
    (b'null', "expected a JSON object, got null"),
    (b'{"txt": "a"}', "missing field 'text' (the object has fields txt); choose one with --field"),
    (b'{}', "missing field 'text' (the object has no fields); choose one with --field"),
    (b'{"text": 5}', "field 'text' is a number, expected a string"),
    (b'{"text": null}', "field 'text' is null, expected a string"),
    (b'{"text": ["a"]}', "field 'text' is an array, expected a string"),
    (b'{"text": true}', "field 'text' is a boolean, expected a string"),
    # a blank line is no record (JSON Lines): tests/test_everyday_input.py
    (b'{"text": "\xff"}', "invalid UTF-8 at byte 10"),
])
def test_jsonl_bad_line_is_an_error_record_between_good_ones(line, message):
    data = b'{"text": "one"}\n{"text": "two"}\n' + line + b'\n{"text": "four"}\n'
    assert summary(read(data, "jsonl")) == [
        (0, 1, "one", None, None),
        (1, 2, "two", None, None),
        (2, 3, None, None, message),
        (3, 4, "four", None, None),
    ]


def test_jsonl_pathological_lines_are_error_records_not_crashes():
    # Found by these tests: json.loads raises RecursionError / a plain ValueError (not
    # JSONDecodeError) for these, which used to escape the reader and kill the run.
    deep = b"[" * 100_000
    huge_int = b'{"text": "a", "n": ' + b"1" * 5000 + b"}"
    recs = read(deep + b"\n" + huge_int + b'\n{"text": "ok"}\n', "jsonl")
    assert summary(recs) == [
        (0, 1, None, None, "malformed JSON: nested too deeply"),
        (1, 2, None, None, "malformed JSON: Exceeds the limit (4300 digits) for integer string conversion"),
        (2, 3, "ok", None, None),
    ]


def test_jsonl_custom_field_and_pairs():
    data = b'{"q": "A", "a": "B"}\n{"q": "A2"}\n{"q": "A3", "a": 3}\n'
    assert summary(read(data, "jsonl", field="q", field_b="a", pairs=True)) == [
        (0, 1, "A", "B", None),
        (1, 2, None, None, "missing field 'a' (the object has fields q); choose one with --field-b"),
        (2, 3, None, None, "field 'a' is a number, expected a string"),
    ]
    # default second field is text_pair
    data = b'{"text": "A", "text_pair": "B"}\n'
    assert summary(read(data, "jsonl", pairs=True)) == [(0, 1, "A", "B", None)]


def test_jsonl_error_record_keeps_fields_when_object_parsed():
    recs = read(b'{"id": 1}\n', "jsonl")
    assert recs[0].fields == {"id": 1}
    assert recs[0].error == "missing field 'text' (the object has fields id); choose one with --field"


def test_jsonl_bom_and_crlf():
    recs = read(b'\xef\xbb\xbf{"text": "a"}\r\n{"text": "b\\r\\n"}\r\n', "jsonl")
    assert summary(recs) == [(0, 1, "a", None, None), (1, 2, "b\r\n", None, None)]


# ---------------------------------------------------------------- CSV / TSV

def test_csv_quoted_multiline_field_and_line_numbers():
    data = b'id,text\n1,"first, with comma"\n2,"two\nline ""quoted"" field"\n3,plain\n'
    recs = read(data, "csv")
    assert summary(recs) == [
        (0, 2, "first, with comma", None, None),
        (1, 3, 'two\nline "quoted" field', None, None),
        (2, 5, "plain", None, None),
    ]
    assert recs[1].fields == {"id": "2", "text": 'two\nline "quoted" field'}


def test_csv_ragged_row_blank_row_and_bad_utf8():
    data = b"text,label\na,1\nonly-one-column\n\nb,1,extra\nc\xff,0\nd,0\n"
    assert summary(read(data, "csv")) == [
        (0, 2, "a", None, None),
        (1, 3, None, None, "row has 1 columns, the header has 2"),
        (2, 4, None, None, "row has 0 columns, the header has 2"),
        (3, 5, None, None, "row has 3 columns, the header has 2"),
        (4, 6, None, None, "invalid UTF-8 at byte 1"),
        (5, 7, "d", None, None),
    ]


def test_csv_bad_utf8_inside_multiline_field_reports_first_line():
    data = b'text,id\n"a\n\xff",1\nc,3\n'
    assert summary(read(data, "csv")) == [
        (0, 2, None, None, "invalid UTF-8 at byte 0"),
        (1, 4, "c", None, None),
    ]


def test_csv_field_longer_than_pythons_default_limit():
    # Python's csv refuses fields over 128 KiB unless told otherwise; found by this test.
    big = "x" * 200_000
    recs = read(f"text,id\n{big},1\nb,2\n".encode(), "csv")
    assert summary(recs) == [(0, 2, big, None, None), (1, 3, "b", None, None)]


def test_tsv_has_no_quoting_bom_and_crlf():
    data = b'\xef\xbb\xbfid\ttext\r\n1\t"not, quoted\r\n2\tsay "hi"\r\n'
    recs = read(data, "tsv")
    assert summary(recs) == [(0, 2, '"not, quoted', None, None), (1, 3, 'say "hi"', None, None)]
    assert recs[0].fields == {"id": "1", "text": '"not, quoted'}


def test_tsv_pairs_with_custom_fields_like_rte():
    data = b"index\tsentence1\tsentence2\tlabel\n0\tA man eats.\tSomeone eats.\tentailment\n"
    recs = read(data, "tsv", field="sentence1", field_b="sentence2", pairs=True)
    assert summary(recs) == [(0, 2, "A man eats.", "Someone eats.", None)]
    assert recs[0].fields["label"] == "entailment"


@pytest.mark.parametrize("fmt, data, pairs, message", [
    ("csv", b"x,y\n1,2\n", False, "no column 'text' in the header (x, y)"),
    ("tsv", b"text\tother\n1\t2\n", True, "no column 'text_pair' in the header (text, other)"),
])
def test_header_without_the_field_raises_input_error_on_line_1(fmt, data, pairs, message):
    with pytest.raises(InputError) as ei:
        read(data, fmt, pairs=pairs, name="data." + fmt)
    e = ei.value
    assert e.message == message
    assert e.line == 1 and e.source == "data." + fmt
    # two columns read as pairs may be A<TAB>B lines with no header row: the hint names the way out
    assert e.hint == ("choose one with --field/--field-b, or pass --input-format text to read each line as one "
                      "A<TAB>B pair" if pairs else "choose one with --field")


# ---------------------------------------------------------------- auto-detection

@pytest.mark.parametrize("name, data, expected", [
    ("in.jsonl", b'{"text": "j"}\n', [(0, 1, "j", None, None)]),
    ("in.ndjson", b'{"text": "j"}\n', [(0, 1, "j", None, None)]),
    ("in.JSON", b'{"text": "j"}\n', [(0, 1, "j", None, None)]),
    # .json holding one array of objects (what -f json writes): its elements, by line
    ("in.json", b'\n[{"text": "a"},\n {"text": "b"}]\n', [(0, 2, "a", None, None), (1, 3, "b", None, None)]),
    ("in.csv", b"text\n\"c,1\"\n", [(0, 2, "c,1", None, None)]),
    ("in.tsv", b"text\n\"t\n", [(0, 2, '"t', None, None)]),
    ("in.tab", b"text\nt\n", [(0, 2, "t", None, None)]),
    # .txt is text even when a line looks like JSON
    ("in.txt", b'{"text": "j"}\n', [(0, 1, '{"text": "j"}', None, None)]),
    # unknown extension / stdin: by content of the first line (BOM and blanks ignored)
    ("in.dat", b'\xef\xbb\xbf  {"text": "j"}\n', [(0, 1, "j", None, None)]),
    ("<stdin>", b'{"text": "j"}\n', [(0, 1, "j", None, None)]),
    ("<stdin>", b"plain {not json}\n", [(0, 1, "plain {not json}", None, None)]),
    (None, b"text,with,commas\n", [(0, 1, "text,with,commas", None, None)]),
])
def test_auto_detection_by_extension_then_content(name, data, expected):
    assert summary(read(data, "auto", name=name)) == expected


def test_auto_by_content_does_not_lose_the_first_line():
    recs = read(b"one\ntwo\nthree\n", "auto", name="<stdin>")
    assert [r.text for r in recs] == ["one", "two", "three"]


# ---------------------------------------------------------------- sources

def test_from_args_and_pairs():
    assert summary(readers.from_args(["a", "b"])) == [(0, None, "a", None, None), (1, None, "b", None, None)]
    assert summary(readers.from_args(["a", "b", "c", "d"], pairs=True)) == [
        (0, None, "a", "b", None), (1, None, "c", "d", None)]
    with pytest.raises(InputError, match="pairs need an even number of texts, got 3"):
        list(readers.from_args(["a", "b", "c"], pairs=True))


def test_open_source_errors(tmp_path):
    with pytest.raises(InputError) as ei:
        readers.open_source(tmp_path / "nope.txt")
    assert ei.value.message == f"input file '{tmp_path / 'nope.txt'}' does not exist"
    with pytest.raises(InputError) as ei:
        readers.open_source(tmp_path)
    assert ei.value.message == f"input '{tmp_path}' is a folder, not a file"


def test_iter_input_file_and_both_given(tmp_path):
    p = tmp_path / "x.jsonl"
    p.write_bytes(b'{"text": "a"}\n{"text": "b"}\n')
    recs, name = readers.iter_input([], str(p))
    assert name == str(p) and [r.text for r in recs] == ["a", "b"]
    with pytest.raises(InputError, match="not both"):
        readers.iter_input(["x"], str(p))


# ---------------------------------------------------------------- properties

_line_text = st.text(st.characters(blacklist_characters="\n", blacklist_categories=("Cs",)), max_size=40).filter(
    lambda s: not s.endswith("\r"))


@FAST
@given(st.lists(_line_text, min_size=1, max_size=8))
def test_property_text_round_trip_of_arbitrary_unicode(texts):
    # U+2028, \x0b, \x85, \x1c ... are line breaks for str.splitlines but not for the
    # reader: only \n ends a record (and one \r before it).
    texts = [t.lstrip("\ufeff") if i == 0 else t for i, t in enumerate(texts)]
    data = "".join(t + "\n" for t in texts).encode("utf-8")
    recs = read(data, "text")
    assert [r.text for r in recs] == texts
    assert [r.line for r in recs] == list(range(1, len(texts) + 1))


@FAST
@given(st.lists(st.fixed_dictionaries({"text": st.text(), "k": st.text()}), min_size=1, max_size=8))
def test_property_jsonl_round_trip_of_arbitrary_unicode(objs):
    data = "".join(json.dumps(o, ensure_ascii=False) + "\n" for o in objs).encode("utf-8")
    recs = read(data, "jsonl")
    assert [r.error for r in recs] == [None] * len(objs)
    assert [r.text for r in recs] == [o["text"] for o in objs]
    assert [r.fields for r in recs] == objs


_cell = st.text(st.characters(blacklist_categories=("Cs",)), max_size=30).filter(lambda s: "\r\n" not in s)


@FAST
@given(st.lists(st.tuples(_cell, _cell), min_size=1, max_size=6))
def test_property_csv_round_trip_as_written_by_python_csv(rows):
    # commas, quotes, newlines, lone CRs and any Unicode survive standard CSV quoting
    # (a CRLF inside a quoted field is read as LF: line ends are normalised)
    buf = io.StringIO()
    w = csv.writer(buf)  # QUOTE_MINIMAL, CRLF row ends
    w.writerow(["text", "other"])
    w.writerows(rows)
    recs = read(buf.getvalue().encode("utf-8"), "csv")
    assert [(r.text, r.fields and r.fields["other"], r.error) for r in recs] == [(a, b, None) for a, b in rows]


@FAST
@given(st.lists(st.tuples(_cell, _cell), min_size=1, max_size=6))
def test_property_tsv_round_trip_without_quoting(rows):
    rows = [tuple(x.replace("\t", " ").replace("\n", " ").replace("\r", " ") for x in r) for r in rows]
    data = "text\tother\n" + "".join(f"{a}\t{b}\n" for a, b in rows)
    recs = read(data.encode("utf-8"), "tsv")
    assert [(r.text, r.fields and r.fields["other"], r.error) for r in recs] == [(a, b, None) for a, b in rows]


@FAST
@given(st.lists(st.binary(max_size=30).map(lambda b: b.replace(b"\n", b"")), min_size=0, max_size=10),
       st.sampled_from(["text", "jsonl"]))
def test_property_one_record_per_line_whatever_the_bytes(lines, fmt):
    data = b"".join(x + b"\n" for x in lines)
    recs = read(data, fmt)  # never raises
    # JSONL: a blank line (spaces and TABs, once its CR and a first line's BOM are gone) is not a record
    def blank(n, x):
        x = x[:-1] if x.endswith(b"\r") else x
        return not (x[3:] if n == 1 and x.startswith(b"\xef\xbb\xbf") else x).strip(b" \t")

    kept = [n for n, x in enumerate(lines, 1) if fmt == "text" or not blank(n, x)]
    assert [r.index for r in recs] == list(range(len(kept)))
    assert [r.line for r in recs] == kept
    for r in recs:
        assert (r.error is None) == (r.text is not None)


# ---------------------------------------------------------------- batching

def test_windows_cut_at_barriers_and_bounded():
    items = [1, 2, 3, -1, 4, 5, 6, 7, 8, -2, -3, 9]
    got = list(batching.windows(items, 3, is_barrier=lambda x: x < 0, start=3))
    assert got == [[1, 2, 3], [-1], [4, 5, 6], [7, 8], [-2], [-3], [9]]


def test_windows_read_nothing_beyond_a_barrier():
    consumed = []

    def source():
        for x in [1, 2, -1, 3, 4]:
            consumed.append(x)
            yield x

    it = batching.windows(source(), 10, is_barrier=lambda x: x < 0, start=10)
    assert next(it) == [1, 2]
    assert consumed == [1, 2, -1]  # the barrier was read to end the window, nothing after it
    assert next(it) == [-1]
    assert consumed == [1, 2, -1]
    assert list(it) == [[3, 4]]


def test_plan_batches_hand_computed():
    lengths = [5, 10, 3, 10, 7]
    # longest first: 1, 3 (10), 4 (7), 0 (5), 2 (3)
    assert batching.plan_batches(lengths, batch_size=2, max_tokens=None) == [[1, 3], [4, 0], [2]]
    assert batching.plan_batches(lengths, batch_size=10, max_tokens=20) == [[1, 3], [4, 0], [2]]
    assert batching.plan_batches(lengths, batch_size=10, max_tokens=21) == [[1, 3], [4, 0, 2]]
    # a single item over the budget still gets its own batch
    assert batching.plan_batches([50, 1], batch_size=4, max_tokens=8) == [[0], [1]]
    assert batching.plan_batches([], 4, 8) == []


@FAST
@given(st.lists(st.integers(0, 300), max_size=60), st.integers(1, 16), st.one_of(st.none(), st.integers(1, 2000)))
def test_property_plan_batches(lengths, batch_size, max_tokens):
    batches = batching.plan_batches(lengths, batch_size, max_tokens)
    flat = [i for b in batches for i in b]
    assert sorted(flat) == list(range(len(lengths)))
    for b in batches:
        assert 1 <= len(b) <= batch_size
        if max_tokens is not None and len(b) > 1:
            assert len(b) * max(max(1, lengths[i]) for i in b) <= max_tokens


def test_run_sorted_restores_input_order():
    items = ["ccc", "a", "bb", "dddd", ""]
    calls = []

    def run(batch):
        calls.append(list(batch))
        return [s.upper() for s in batch]

    out = batching.run_sorted(items, [len(s) for s in items], run, batch_size=2, max_tokens=None)
    assert out == ["CCC", "A", "BB", "DDDD", ""]
    assert calls == [["dddd", "ccc"], ["bb", "a"], [""]]


# ---------------------------------------------------------------- writers

def test_json_array_writer_empty_and_streamed():
    buf = io.StringIO()
    w = writers.JsonArrayWriter(buf)
    w.close()
    assert buf.getvalue() == "[]\n"

    buf = io.StringIO()
    w = writers.JsonArrayWriter(buf, precision=3)
    w.write({"a": 1.23456, "t": "é"})
    w.write({"a": float("nan")})
    w.close()
    assert buf.getvalue() == '[\n{"a": 1.235, "t": "é"},\n{"a": null}\n]\n'
    assert json.loads(buf.getvalue()) == [{"a": 1.235, "t": "é"}, {"a": None}]


def test_jsonl_writer_rounding_nan_inf_and_unicode():
    buf = io.StringIO()
    w = writers.JsonlWriter(buf, precision=6)
    w.write({"score": 0.123456789, "n": 3, "ok": True, "x": [float("inf"), -float("inf"), 1e-9],
             "nested": {"v": (0.5, 2.0000004)}, "t": "東京 😀"})
    w.close()
    assert buf.getvalue() == ('{"score": 0.123457, "n": 3, "ok": true, "x": [null, null, 0.0], '
                              '"nested": {"v": [0.5, 2.0]}, "t": "東京 😀"}\n')
    assert w.count == 1


def test_round_floats_keeps_non_floats():
    obj = {"b": False, "i": 10**20, "s": "nan", "n": None, "f": math.pi}
    assert writers.round_floats(obj, 2) == {"b": False, "i": 10**20, "s": "nan", "n": None, "f": 3.14}


@pytest.mark.parametrize("name", ["<stdin>", "reviews.txt"])
def test_a_field_name_on_plain_text_is_a_usage_error(name):
    # `cat reviews.csv | bertcli sentiment --field review` would otherwise classify the
    # header and every whole row as text.
    from bertcli.errors import UsageError

    data = b"review,stars\ngreat movie,5\n"
    if name == "<stdin>":  # a header naming the field is read as CSV (tests/test_everyday_input.py)
        assert [r.text for r in read(data, field="review", name=name)] == ["great movie"]
    else:
        with pytest.raises(UsageError, match=r"field 'review' needs JSONL, CSV or TSV input, but .* reads as plain"):
            read(data, field="review", name=name)
    with pytest.raises(UsageError, match=r"field 'second'"):
        read(b"a\tb\n", field_b="second", pairs=True, name=name)
    assert [r.text for r in read(data, name=name)] == ["review,stars", "great movie,5"]  # default field: plain lines
    assert [r.text for r in read(data, "csv", field="review", name=name)] == ["great movie"]
    assert [r.text_pair for r in read(b"a\tb\n", pairs=True, name=name)] == ["b"]
