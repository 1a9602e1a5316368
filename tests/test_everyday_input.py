"""Input in everyday use (issue #13, items 3 and 4): CSV/TSV piped on stdin is read as a
table (with a note) or warned about, binary data is refused, ordinary prose with commas
stays text, and blank lines in JSONL are not records."""

from __future__ import annotations

import gzip
import io
import json
import os
import shutil
import subprocess
import threading
import zipfile

import pytest
from click.testing import CliRunner

from bertcli.cli.main import cli
from bertcli.io import sniff
from bertcli.io.readers import read_records


def invoke(args, input=None):
    res = CliRunner().invoke(cli, [str(a) for a in args], input=input, prog_name="bertcli",
                             env={"BERTCLI_MODEL": None, "BERTCLI_BACKEND": None})
    assert res.exception is None or isinstance(res.exception, SystemExit), res.exc_info
    assert "Traceback" not in res.stderr
    return res


def read(data: bytes, **kw):
    return list(read_records(io.BytesIO(data), "auto", name=kw.pop("name", "<stdin>"), **kw))


def jsonl(res):
    return [json.loads(x) for x in res.stdout.splitlines()]


# ---------------------------------------------------------------- CSV / TSV on stdin

def test_csv_with_a_header_on_stdin_is_read_as_csv_with_a_note(cls_dir):
    res = invoke(["sentiment", "-m", cls_dir, "-f", "jsonl", "--labels", "negative,positive"],
                 input=b"id,text\n1,great\n")
    same = invoke(["sentiment", "-m", cls_dir, "-f", "jsonl", "--labels", "negative,positive", "--input-format",
                   "csv"], input=b"id,text\n1,great\n")
    assert res.exit_code == 0 and res.stdout == same.stdout and same.stderr == ""
    assert [(r["id"], r["text"]) for r in jsonl(res)] == [("1", "great")]  # one record: the header is no text
    assert res.stderr == ("Note: reading <stdin> as CSV: a header row and 2 columns on every line (header: id, "
                          "text); --input-format text reads each line as one text\n")
    plain = invoke(["sentiment", "-m", cls_dir, "-f", "jsonl", "--labels", "negative,positive", "--input-format",
                    "text"], input=b"id,text\n1,great\n")
    assert [r["text"] for r in jsonl(plain)] == ["id,text", "1,great"] and plain.stderr == ""


def test_sst2_on_stdin_is_tsv_and_asks_for_its_text_column(cls_dir, shared_data):
    head = b"".join((shared_data / "sst2" / "dev.tsv").read_bytes().splitlines(keepends=True)[:6])
    res = invoke(["classify", "-m", cls_dir, "-f", "jsonl"], input=head)
    assert (res.exit_code, res.stdout) == (1, "")
    assert res.stderr == ("Error: <stdin>, line 1: no column 'text' in the header (sentence, label); choose one "
                          "with --field (<stdin> was read as TSV, a header row and 1 TAB on every line; "
                          "--input-format text reads each line as one text)\n")
    res = invoke(["classify", "-m", cls_dir, "-f", "jsonl", "--field", "sentence"], input=head)
    same = invoke(["classify", "-m", cls_dir, "-f", "jsonl", "--field", "sentence", "--input-format", "tsv"],
                  input=head)
    assert res.exit_code == 0 and res.stdout == same.stdout
    assert [r["sentence"] for r in jsonl(res)] == [ln.split("\t")[0] for ln in head.decode().splitlines()[1:]]
    assert res.stderr.startswith("Note: reading <stdin> as TSV: a header row and 1 TAB on every line (header: "
                                 "sentence, label)")


def test_rte_pairs_on_stdin(cls_dir, shared_data):
    head = b"".join((shared_data / "rte" / "dev.tsv").read_bytes().splitlines(keepends=True)[:4])
    res = invoke(["classify", "-m", cls_dir, "-f", "jsonl", "-q", "--field-a", "sentence1", "--field-b", "sentence2"],
                 input=head)
    rows = [ln.split("\t") for ln in head.decode().splitlines()[1:]]
    assert res.exit_code == 0
    assert [(r["sentence1"], r["sentence2"], r["input_label"]) for r in jsonl(res)] == [(a, b, y) for _, a, b, y in rows]


def test_headerless_text_tab_label_lines_warn_and_read_as_text(cls_dir, shared_data):
    # UCI's yelp_labelled.txt: "sentence<TAB>label", no header
    path = shared_data / "uci_sentiment" / "yelp_labelled.txt"
    lines = path.read_bytes().splitlines(keepends=True)[:5]
    res = invoke(["classify", "-m", cls_dir, "-f", "jsonl"], input=b"".join(lines))
    assert res.exit_code == 0
    assert [r["text"] for r in jsonl(res)] == [ln.decode().rstrip("\n") for ln in lines]  # as documented
    warning = ("every line of {} has 1 TAB (2 columns) and no header row, so each whole line, TABs and all, is "
               "read as one text; to read the text column only, cut it out (cut -f 1) or add a header row and "
               "pass --field NAME")
    assert res.stderr == "Warning: " + warning.format("<stdin>") + "\n"
    # the same file by name (.txt: plain text by its name) gets the same warning
    res = invoke(["classify", "-m", cls_dir, "-f", "jsonl", "-i", path])
    assert res.exit_code == 0 and len(jsonl(res)) == 1000
    assert res.stderr == "Warning: " + warning.format(path) + "\n"
    # pairs: A<TAB>B is the pair format itself; three columns are not
    assert read(b"a b\tc d\ne f\tg h\n", pairs=True)[0].notices == []
    assert read(b"a b\tc d\t1\ne f\tg h\t0\n", pairs=True)[0].notices == [("warning", (
        "every line of <stdin> has 2 TABs (3 columns) and no header row: each pair is split at the first TAB, so "
        "the second text holds 2 columns; cut out the two text columns (cut -f 1,2) or add a header row and pass "
        "--field-a NAME --field-b NAME"))]


def test_csv_header_without_the_text_column_warns(shared_data):
    head = b"".join((shared_data / "chnsenticorp_htl" / "ChnSentiCorp_htl_all.csv").read_bytes()
                    .splitlines(keepends=True)[:5])
    recs = read(head)
    assert recs[0].text == "label,review" and len(recs) == 5
    assert recs[0].notices == [("warning", (
        "the first line of <stdin> looks like a CSV header (label, review) without a column 'text', so each whole "
        "line, that one too, is read as one text; to read it as CSV pass --field NAME"))]
    recs = read(head, field="review")
    want = [row[1] for row in __import__("csv").reader(io.StringIO(head.decode()))][1:]
    assert [r.text for r in recs] == want and recs[0].notices[0][0] == "note"


def test_a_txt_file_that_looks_like_a_table_is_said(tmp_path):
    f = tmp_path / "reviews.txt"
    f.write_bytes(b"text\tlabel\ngood\t1\nbad\t0\n")
    recs = list(read_records(open(f, "rb"), "auto", name=str(f)))
    assert [r.text for r in recs] == ["text\tlabel", "good\t1", "bad\t0"]  # the name decides: text
    assert recs[0].notices == [("warning", f"{f} is read as plain text (by its name), but it looks like TSV, a "
                                           "header row and 1 TAB on every line; pass --input-format tsv to read it "
                                           "as a table")]


def test_an_explicit_format_is_never_second_guessed():
    recs = list(read_records(io.BytesIO(b"id,text\n1,great\n"), "text", name="<stdin>"))
    assert [(r.text, r.notices) for r in recs] == [("id,text", []), ("1,great", [])]


def test_a_json_array_on_stdin_is_read_as_one(cls_dir):
    first = invoke(["classify", "-m", cls_dir, "-f", "json", "a", "b"])
    assert first.stdout.startswith("[\n{")
    again = invoke(["classify", "-m", cls_dir, "-f", "jsonl"], input=first.stdout)
    assert again.exit_code == 0
    assert again.stderr == ("Warning: input field(s) label, labels, score, truncated renamed to input_<name>: the "
                            "result uses the same key\n")
    assert [r["text"] for r in jsonl(again)] == ["a", "b"]
    assert [r["input_label"] for r in jsonl(again)] == [r["label"] for r in json.loads(first.stdout)]
    # a text starting with "[" is still a text
    assert [r.text for r in read(b"[MASK] is here\n[x] too\n")] == ["[MASK] is here", "[x] too"]


# ---------------------------------------------------------------- prose stays prose

def _windows(lines, sizes=(1, 2, 3, 5, 50), step=37):
    for size in sizes:
        for start in range(0, max(len(lines) - size, 1), step):
            yield lines[start:start + size]


def _prose(shared_data):
    d = shared_data
    sst2 = [ln.split("\t")[0] for ln in (d / "sst2" / "train.tsv").read_text(encoding="utf-8").splitlines()[1:]]
    trec = (d / "trec" / "train_5500.label").read_text(encoding="latin-1").splitlines()
    books = [ln.lstrip("\ufeff") for p in sorted((d / "books").glob("pg*.txt"))
             for ln in p.read_text(encoding="utf-8").splitlines()]
    return {"sst2": sst2, "trec": trec, "books": books}


def test_real_prose_with_commas_is_read_as_text(shared_data):
    for name, lines in _prose(shared_data).items():
        assert sum("," in ln for ln in lines) > 300, name  # commas are common
        for win in _windows(lines):
            g = sniff.guess_format(win, False, ["text"], False, "<stdin>")
            assert g.fmt == "text", (name, win[:3])
            # the only notice on prose: a table of contents with a TAB on every line (Sherlock Holmes)
            assert not g.notices or all("\t" in ln for ln in win if ln.strip()), (name, win[:3], g.notices)
    sst2 = _prose(shared_data)["sst2"]
    assert sum(1 for win in _windows(sst2) if sniff.guess_format(win, False, ["text"], False, "x").notices) == 0


def test_prose_with_commas_through_the_cli(cls_dir, shared_data):
    lines = [ln for ln in _prose(shared_data)["sst2"] if "," in ln][:20]
    res = invoke(["classify", "-m", cls_dir, "-f", "jsonl"], input="\n".join(lines) + "\n")
    assert res.exit_code == 0 and res.stderr == ""
    assert [r["text"] for r in jsonl(res)] == lines


def test_header_like_first_lines():
    assert sniff.header_like(["Quality", "#1 ID", "#2 ID", "#1 String", "#2 String"])  # MRPC
    assert sniff.header_like(["index", "sentence1", "sentence2", "label"])  # RTE
    assert sniff.header_like(["Review Text", "Rating"])
    assert not sniff.header_like(["Chapter 1", "Mr. Sherlock Holmes"])
    assert not sniff.header_like(["Hello", "Hello"])  # names are distinct
    assert not sniff.header_like(["Wow... Loved this place.", "1"])
    assert not sniff.header_like(["it 's a charming and often affecting journey . "])


# ---------------------------------------------------------------- binary data

def _zip() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("reviews.txt", "great\n")
    return buf.getvalue()


@pytest.mark.parametrize("name, data, message", [
    ("prog", b"\x7fELF\x02\x01\x01\x00" + bytes(200),
     "looks like a binary file (an ELF executable), not text; bertcli reads UTF-8 text, JSONL, JSON, CSV or TSV"),
    ("reviews.zip", _zip(), "looks like a binary file (a ZIP archive), not text; unzip it first"),
    ("reviews.txt.gz", gzip.compress(b"great\nawful\n"),
     "looks like a binary file (gzip-compressed data), not text; decompress it first, e.g. zcat {path} | "
     "bertcli ..."),
    ("utf16.txt", "great\nawful\n".encode("utf-16"),
     "looks like UTF-16 text, not UTF-8; convert it to UTF-8 first: iconv -f UTF-16 -t UTF-8 {path}"),
    ("utf16le.txt", "great\nawful\n".encode("utf-16-le"),
     "looks like UTF-16LE text, not UTF-8; convert it to UTF-8 first: iconv -f UTF-16LE -t UTF-8 {path}"),
    ("zeros", bytes(3000),
     "looks like a binary file (many NUL bytes), not text; bertcli reads UTF-8 text, JSONL, JSON, CSV or TSV"),
    ("blob.txt", b"ab\x00\xff\xfe cd efgh ijkl mnop qrst\n",
     "looks like a binary file (NUL bytes, and not UTF-8), not text; bertcli reads UTF-8 text, JSONL, JSON, CSV or TSV"),
], ids=["elf", "zip", "gzip", "utf-16", "utf-16le", "zeros", "nul-not-utf8"])
def test_binary_input_is_refused(cls_dir, tmp_path, name, data, message):
    path = tmp_path / name
    path.write_bytes(data)
    res = invoke(["classify", "-m", cls_dir, "-i", path, "-f", "jsonl"])
    assert (res.exit_code, res.stdout) == (1, "")
    assert res.stderr == f"Error: {path}: {message.format(path=path)}\n"
    res = invoke(["classify", "-m", cls_dir, "-f", "jsonl"], input=data)
    assert (res.exit_code, res.stdout) == (1, "")
    assert res.stderr == f"Error: <stdin>: {message.format(path='FILE')}\n"


def test_a_nul_inside_utf8_text_is_a_character_not_binary():
    # as the bad-input corpus has it (control.txt): the record is read, the NUL kept
    recs = read(b"a text with a \x00 inside\nok\n")
    assert [r.text for r in recs] == ["a text with a \x00 inside", "ok"]


# ---------------------------------------------------------------- reading ahead, but not too far

def _read_head_of(writes: list[bytes], wait: float = 5.0):
    """read_head on a real pipe whose writer sends ``writes`` and then stays open."""
    r, w = os.pipe()
    out = {}
    stream = os.fdopen(r, "rb")
    t = threading.Thread(target=lambda: out.setdefault("head", sniff.read_head(stream)), daemon=True)
    for chunk in writes:
        os.write(w, chunk)
    t.start()
    t.join(wait)
    os.close(w)
    t.join(wait)
    stream.close()
    return out.get("head")


def test_the_head_of_a_pipe_is_what_is_there_not_more():
    # a line-at-a-time producer: the first line comes back without waiting for a second
    assert _read_head_of([b"hello there\n"]) == (b"hello there\n", False)
    # a possible header waits for one more line (or the end), not more
    assert _read_head_of([b"id,text\n", b"1,great\n"]) == (b"id,text\n1,great\n", False)


# ---------------------------------------------------------------- blank lines in JSONL

def test_blank_jsonl_lines_are_not_records_and_line_numbers_stay():
    data = b'{"text": "a"}\n\n   \n\t\n{"text": "b"}\r\n\r\n{"text": "c"}\n'
    recs = list(read_records(io.BytesIO(data), "jsonl"))
    assert [(r.index, r.line, r.text, r.error) for r in recs] == [(0, 1, "a", None), (1, 5, "b", None),
                                                                   (2, 7, "c", None)]
    assert [r.text for r in read(data)] == ["a", "b", "c"]  # sniffed as JSONL too
    jq = shutil.which("jq")
    if jq:  # the reference: jq reads JSON Lines the same way
        ref = subprocess.run([jq, "-r", ".text"], input=data, capture_output=True, check=True).stdout
        assert ref.decode().split() == [r.text for r in recs]


def test_a_blank_line_does_not_stop_the_run_but_a_bad_one_does(cls_dir, tmp_path):
    f = tmp_path / "in.jsonl"
    f.write_bytes(b'{"text": "a"}\n\n{"text": "b"}\n\n{"text": bad\n{"text": "c"}\n')
    res = invoke(["classify", "-m", cls_dir, "-i", f, "-f", "jsonl"])
    assert res.exit_code == 1
    assert [r["text"] for r in jsonl(res)] == ["a", "b"]
    assert res.stderr == f"Error: {f}, line 5: malformed JSON: Expecting value at column 10\n"
    res = invoke(["classify", "-m", cls_dir, "-i", f, "-f", "jsonl", "--on-error", "skip"])
    assert res.exit_code == 0 and [r["text"] for r in jsonl(res)] == ["a", "b", "c"]
    assert res.stderr.splitlines()[0] == json.dumps({"error": "malformed JSON: Expecting value at column 10",
                                                     "line": 5, "source": str(f)})


def test_resume_counts_records_not_blank_lines(cls_dir, tmp_path):
    src = tmp_path / "in.jsonl"
    src.write_bytes(b'{"text": "a"}\n\n{"text": "b"}\n\n\n{"text": "c"}\n')
    full = invoke(["classify", "-m", cls_dir, "-i", src, "-f", "jsonl"]).stdout
    part = tmp_path / "out.jsonl"
    part.write_text(full.splitlines(keepends=True)[0], encoding="utf-8")
    res = invoke(["classify", "-m", cls_dir, "-i", src, "--resume", part])
    assert res.exit_code == 0, res.stderr
    assert part.read_text(encoding="utf-8") == full
