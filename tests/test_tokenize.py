"""``bertcli tokenize`` and :mod:`bertcli.tasks.tokenize`.

References: the tokenizer's own encodings, through transformers' ``AutoTokenizer`` (its
``input_ids``, ``tokens()``, ``offset_mapping``, ``word_ids()``, ``token_type_ids``,
``special_tokens_mask``, ``sequence_ids()``), on a Unicode-rich corpus; and for every
non-special piece, ``text[start:end]`` read back through the tokenizer's own normalizer
(WordPiece) or byte-level alphabet (RoBERTa's BPE) gives the piece.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import hub_layouts as H
from bertcli.cli.main import cli
from bertcli.errors import ModelError
from bertcli.tasks import tokenize as T
from tiny import build_tokenizer

DEFAULT = Path(__file__).resolve().parents[1] / "bertcli" / "defaults" / T.DEFAULT_TOKENIZER

#: accents precomposed and combining, CJK (WordPiece splits every ideograph), Hangul (NFD
#: turns a syllable into jamo pieces sharing its one character), emoji ZWJ sequences, flags
#: and skin tones (astral characters: Python indexes them as one), right-to-left scripts,
#: Indic and Thai combining marks, Greek final sigma, Turkish dotted I (lower-casing makes
#: two characters of one), ligatures, full-width forms, invisible characters (NBSP, zero
#: width space, BOM, soft hyphen, RTL mark), control characters, runs of spaces, an empty
#: text, and special tokens typed into the text.
UNICODE = [
    "Unaffable émigrés",
    "Cafe\u0301 naïve coöperate",
    "東京は日本の首都です。北京 上海",
    "한국어 문장입니다",
    "Family 👨\u200d👩\u200d👧 flag 🇫🇷 thumbs 👍🏽 and 😀!",
    "مرحبا بالعالم",
    "שלום עולם",
    "नमस्ते दुनिया",
    "สวัสดีครับ",
    "ΟΔΥΣΣΕΥΣ σοφός ς",
    "İstanbul ılık İİ",
    "Straße ﬁnal ﬀ ǅungla",
    "ＡＢＣ１２３ fullwidth",
    "no\u00a0break\u200bzero\ufeffbom\u00adsoft",
    "tab\there\x01ctl\x7fdel",
    "\u212b Ångström",
    "x² 𝔘𝔫𝔦𝔠𝔬𝔡𝔢",
    "rtl\u200fmark",
    "   leading and   trailing   ",
    "",
    "[MASK] is special [SEP] too",
    "e\u0301\u0301\u0301",
    "Schwarzenegger flew from Kalamazoo to Reykjavik.",
]


def _real_lines(shared: Path) -> list[str]:
    """Real lines with non-ASCII text: Chinese hotel reviews, Weibo NER characters, SST-2."""
    lines = []
    f = shared / "chnsenticorp_htl" / "ChnSentiCorp_htl_all.csv"
    if f.is_file():
        with open(f, encoding="utf-8") as fh:
            next(fh)
            lines += [ln.split(",", 1)[1].strip().strip('"')[:200] for _, ln in zip(range(30), fh)]
    f = shared / "weibo_ner" / "weiboNER_2nd_conll.dev"
    if f.is_file():
        chars, sent = [], []
        for ln in f.read_text(encoding="utf-8").splitlines():
            if ln.strip():
                chars.append(ln.split("\t")[0][:1])
            elif chars:
                sent.append("".join(chars))
                chars = []
        lines += sent[:30]
    f = shared / "sst2" / "dev.tsv"
    if f.is_file():
        lines += [ln.split("\t")[0] for ln in f.read_text(encoding="utf-8").splitlines()[1:31]]
    return lines


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    """name -> tokenizer folder: the shipped default's, tiny cased/uncased WordPiece, and real
    hub layouts (bert-base-cased WordPiece, RoBERTa byte-level BPE, XLM-R SentencePiece through
    transformers' class, ALBERT spiece.model)."""
    root = tmp_path_factory.mktemp("tok")
    out = {"default": DEFAULT}
    for name, lower in (("tiny-cased", False), ("tiny-uncased", True)):
        build_tokenizer(root / name, lowercase=lower)
        out[name] = root / name
    for name in ("bert-base-cased", "roberta-base", "xlmr-ner", "albert-base-v2"):
        out[name] = H.build(name, root / name)
    return out


def _reference(folder: Path, texts, pairs=None):
    """The same fields from transformers' own tokenizer of ``folder``."""
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
    enc = tok(texts, pairs, return_offsets_mapping=True, return_token_type_ids=True,
              return_special_tokens_mask=True)
    rows = []
    for i in range(len(texts)):
        rows.append({"tokens": enc.tokens(i), "input_ids": enc["input_ids"][i],
                     "offset_mapping": [tuple(o) for o in enc["offset_mapping"][i]],
                     "word_ids": enc.word_ids(i), "token_type_ids": enc["token_type_ids"][i],
                     "special_tokens_mask": enc["special_tokens_mask"][i], "sequence_ids": enc.sequence_ids(i)})
    return rows


def _assert_same(got: dict, ref: dict, pairs: bool):
    toks = got["tokens"]
    assert [t["token"] for t in toks] == ref["tokens"]
    assert [t["id"] for t in toks] == ref["input_ids"]
    assert [t["word_id"] for t in toks] == ref["word_ids"]
    assert [t["token_type_id"] for t in toks] == ref["token_type_ids"]
    assert [int(t["special"]) for t in toks] == ref["special_tokens_mask"]
    for t, off, sp in zip(toks, ref["offset_mapping"], ref["special_tokens_mask"]):
        assert (t["start"], t["end"]) == ((None, None) if sp else off)
    if pairs:
        assert [t["sequence_id"] for t in toks] == ref["sequence_ids"]
    else:
        assert all("sequence_id" not in t for t in toks)
    assert got["n_tokens"] == len(ref["input_ids"])


@pytest.mark.parametrize("name", ["default", "tiny-cased", "tiny-uncased", "bert-base-cased", "roberta-base",
                                  "xlmr-ner", "albert-base-v2"])
def test_fields_equal_the_tokenizers_own(folders, name, shared_data):
    texts = UNICODE + _real_lines(shared_data)
    tok = T.load_tokenizer(folders[name])
    got = T.tokenize(tok, texts)
    for g, r in zip(got, _reference(folders[name], texts)):
        _assert_same(g, r, pairs=False)
    # pairs: offsets index each text of the pair (sequence_id says which)
    a, b = texts[:-1], texts[1:]
    for g, r in zip(T.tokenize(tok, a, b), _reference(folders[name], a, b)):
        _assert_same(g, r, pairs=True)


def _bytelevel_decoder():
    """RoBERTa/GPT-2's byte-to-character table, inverted (``bytes_to_unicode``)."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {chr(c): b for b, c in zip(bs, cs)}


def _span_groups(tokens):
    """Runs of consecutive non-special tokens over the same or overlapping characters (a Hangul
    syllable becomes three jamo pieces, an emoji four byte-level pieces, all over one character;
    a byte-level merge that takes the first byte of "é" with the "r" before it gives ``rÃ`` over
    "ré" and ``©`` over "é", the tokenizers library's offsets)."""
    groups = []
    for t in tokens:
        if t["special"]:
            continue
        if groups and (t["start"], t["end"]) == groups[-1][:2] or groups and t["start"] < groups[-1][1]:
            start, end, pieces = groups[-1]
            groups[-1] = (start, max(end, t["end"]), pieces + [t["token"]])
        else:
            groups.append((t["start"], t["end"], [t["token"]]))
    return groups


@pytest.mark.parametrize("name", ["default", "tiny-cased", "tiny-uncased", "bert-base-cased"])
def test_wordpiece_offsets_give_back_the_piece(folders, name, shared_data):
    """text[start:end], normalised as the tokenizer normalises (lower-casing, accents stripped,
    spaces around CJK), is the piece without its ``##``; a special token typed in the text is
    the text itself."""
    tok = T.load_tokenizer(folders[name])
    backend = tok.tokenizer._tokenizer
    norm = backend.normalizer
    added = {t.content for t in backend.get_added_tokens_decoder().values()}
    unk = tok.tokenizer.unk_token
    checked = 0
    for text, rec in zip(UNICODE + _real_lines(shared_data), T.tokenize(tok, UNICODE + _real_lines(shared_data))):
        for start, end, pieces in _span_groups(rec["tokens"]):
            span = text[start:end]
            assert 0 <= start < end <= len(text)
            if pieces == [unk]:
                continue
            if len(pieces) == 1 and pieces[0] in added:
                assert span == pieces[0]
            else:
                want = "".join(p[2:] if p.startswith("##") else p for p in pieces)
                assert norm.normalize_str(span).strip() == want, (text, start, end, pieces)
            checked += 1
    assert checked > 300


def test_bytelevel_offsets_give_back_the_piece(folders):
    """RoBERTa's byte-level BPE: the pieces over a span, read back as UTF-8 bytes, are
    text[start:end] (offsets leave out the space a ``Ġ`` piece carries)."""
    tok = T.load_tokenizer(folders["roberta-base"])
    dec = _bytelevel_decoder()
    checked = 0
    for text, rec in zip(UNICODE, T.tokenize(tok, UNICODE)):
        for start, end, pieces in _span_groups(rec["tokens"]):
            if any(p in ("<mask>", "<unk>") for p in pieces):
                continue
            raw = bytes(dec[c] for p in pieces for c in p).decode("utf-8")
            assert raw.strip(" ") == text[start:end].strip(" "), (text, pieces)
            checked += 1
    assert checked > 100


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.text(st.characters(blacklist_categories=("Cs",)), max_size=40))
def test_arbitrary_unicode_equals_the_tokenizers_own(folders, text):
    for name in ("default", "tiny-cased"):
        got = T.tokenize(T.load_tokenizer(folders[name]), [text])[0]
        _assert_same(got, _reference(folders[name], [text])[0], pairs=False)


def test_default_tokenizer_is_minilms(minilm_dir, shared_data):
    """No --model: the shipped defaults' tokenizer, which is all-MiniLM-L6-v2's (same ids on
    real lines), with its 512-token maximum."""
    lines = _real_lines(shared_data)
    tok = T.load_tokenizer()
    assert tok.max_length == 512
    ref = _reference(minilm_dir, lines)
    assert [r["input_ids"] for r in ref] == [[t["id"] for t in g["tokens"]] for g in T.tokenize(tok, lines)]


def test_exceeds_max_length(folders):
    tok = T.load_tokenizer(folders["tiny-cased"])
    assert tok.max_length == 128  # tokenizer_config.json's model_max_length (the folder has no config.json)
    short, long = T.tokenize(tok, ["a b c", " ".join(["a"] * 127)])
    assert (short["n_tokens"], short["exceeds_max_length"]) == (5, False)
    assert (long["n_tokens"], long["max_length"], long["exceeds_max_length"]) == (129, 128, True)
    at = T.tokenize(tok, [" ".join(["a"] * 126)])[0]
    assert (at["n_tokens"], at["exceeds_max_length"]) == (128, False)


def test_api_refuses_a_bare_string_and_uneven_pairs(folders):
    tok = T.load_tokenizer(folders["tiny-cased"])
    with pytest.raises(TypeError):
        T.tokenize(tok, "a text")
    with pytest.raises(ValueError, match="2 texts but 1 text_pairs"):
        T.tokenize(tok, ["a", "b"], ["c"])
    import bertcli
    assert bertcli.tokenize is T.tokenize and bertcli.load_tokenizer is T.load_tokenizer


def test_folder_errors(tmp_path):
    with pytest.raises(ModelError, match="does not exist"):
        T.load_tokenizer(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelError, match="has no tokenizer files"):
        T.load_tokenizer(tmp_path / "empty")
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "tokenizer.json").write_text("{not json", encoding="utf-8")
    with pytest.raises(ModelError, match="cannot load the tokenizer"):
        T.load_tokenizer(bad)


def test_tokenizer_only_folder_and_model_folder(tmp_path, cls_dir):
    """A folder with only tokenizer files works (its maximum from tokenizer_config.json); a
    model folder is read for its tokenizer only, its maximum capped by the position table."""
    d = tmp_path / "only"
    d.mkdir()
    (d / "tokenizer.json").write_bytes((cls_dir / "tokenizer.json").read_bytes())
    tok = T.load_tokenizer(d)
    assert tok.max_length is None
    assert T.tokenize(tok, ["Paris"])[0]["exceeds_max_length"] is False
    assert T.load_tokenizer(cls_dir).max_length == 128


def test_slow_only_tokenizer_is_refused(tmp_path):
    d = H.build("bertweet-sentiment", tmp_path / "bertweet")
    with pytest.raises(ModelError, match="has no fast version"):
        T.load_tokenizer(d)


# ---------------------------------------------------------------- CLI

def run(*args, input=None, env=None):
    return CliRunner().invoke(cli, list(args), input=input, env=env)


def test_cli_jsonl_from_arguments(folders):
    r = run("tokenize", "Unaffable émigrés", "Paris", "-m", str(folders["default"]), "-f", "jsonl")
    assert r.exit_code == 0, r.output
    assert r.stderr == ""
    recs = [json.loads(ln) for ln in r.stdout.splitlines()]
    assert [x["text"] for x in recs] == ["Unaffable émigrés", "Paris"]
    assert recs[0]["tokens"] == [
        {"token": "[CLS]", "id": 101, "start": None, "end": None, "word_id": None, "token_type_id": 0, "special": True},
        {"token": "una", "id": 14477, "start": 0, "end": 3, "word_id": 0, "token_type_id": 0, "special": False},
        {"token": "##ffa", "id": 20961, "start": 3, "end": 6, "word_id": 0, "token_type_id": 0, "special": False},
        {"token": "##ble", "id": 3468, "start": 6, "end": 9, "word_id": 0, "token_type_id": 0, "special": False},
        {"token": "emi", "id": 12495, "start": 10, "end": 13, "word_id": 1, "token_type_id": 0, "special": False},
        {"token": "##gre", "id": 17603, "start": 13, "end": 16, "word_id": 1, "token_type_id": 0, "special": False},
        {"token": "##s", "id": 2015, "start": 16, "end": 17, "word_id": 1, "token_type_id": 0, "special": False},
        {"token": "[SEP]", "id": 102, "start": None, "end": None, "word_id": None, "token_type_id": 0, "special": True}]
    assert (recs[0]["n_tokens"], recs[0]["max_length"], recs[0]["exceeds_max_length"]) == (8, 512, False)
    # the JSONL fast path writes exactly what json.dumps writes
    for ln in r.stdout.splitlines():
        assert json.dumps(json.loads(ln), ensure_ascii=False) == ln


def test_cli_pairs_from_arguments_and_tsv_lines(folders):
    r = run("tokenize", "--pairs", "He opened the fridge.", "It was empty.", "-f", "jsonl")
    assert r.exit_code == 0 and r.stderr == ""
    rec = json.loads(r.stdout)
    assert (rec["text"], rec["text_pair"]) == ("He opened the fridge.", "It was empty.")
    toks = rec["tokens"]
    assert [t["token"] for t in toks] == ["[CLS]", "he", "opened", "the", "fridge", ".", "[SEP]",
                                          "it", "was", "empty", ".", "[SEP]"]
    assert [t["token_type_id"] for t in toks] == [0] * 7 + [1] * 5
    assert [t["sequence_id"] for t in toks] == [None] + [0] * 5 + [None] + [1] * 4 + [None]
    assert (toks[7]["start"], toks[7]["end"]) == (0, 2)  # "It" in the second text
    r2 = run("tokenize", "--pairs", "-f", "jsonl", input="He opened the fridge.\tIt was empty.\n")
    assert r2.exit_code == 0
    assert json.loads(r2.stdout)["tokens"] == toks


def test_cli_reads_jsonl_with_field_and_keeps_the_fields(folders):
    data = '{"id": 7, "review": "Crust is not good.", "tokens": "kept"}\n'
    r = run("tokenize", "--field", "review", "-f", "jsonl", input=data)
    assert r.exit_code == 0, r.output
    rec = json.loads(r.stdout)
    assert list(rec)[:4] == ["id", "review", "input_tokens", "tokens"]
    assert rec["input_tokens"] == "kept" and rec["n_tokens"] == 7
    assert "renamed" in r.stderr


def test_cli_json_array_and_empty_input():
    r = run("tokenize", "-f", "json", input="a\nb\n")
    assert r.exit_code == 0
    assert [x["text"] for x in json.loads(r.stdout)] == ["a", "b"]
    r = run("tokenize", "-f", "json", input="")
    assert (r.exit_code, r.stdout) == (0, "[]\n")


def test_cli_table_shows_the_text_and_pieces():
    r = run("tokenize", "-f", "table", "Unaffable émigrés")
    assert r.exit_code == 0 and r.stderr == ""
    lines = r.stdout.splitlines()
    assert lines[0] == "#1  8 tokens (max 512)"
    assert lines[1] == "Unaffable émigrés"
    assert lines[2].split() == ["token", "[CLS]", "una", "##ffa", "##ble", "emi", "##gre", "##s", "[SEP]"]
    assert lines[3].split() == ["id", "101", "14477", "20961", "3468", "12495", "17603", "2015", "102"]
    assert lines[4].split() == ["word", "0", "0", "0", "1", "1", "1"]


def test_cli_table_marks_a_text_over_the_maximum(folders):
    r = run("tokenize", "-f", "table", "-m", str(folders["tiny-cased"]), " ".join(["a"] * 127))
    assert r.exit_code == 0
    assert r.stdout.splitlines()[0] == "#1  129 tokens (max 128)  1 over the maximum: other commands truncate it"


def test_cli_errors_are_one_line():
    r = run("tokenize", "--pairs", "a", "b", "c")
    assert r.exit_code == 2 and r.stdout == ""
    assert r.stderr == "Error: pairs need an even number of texts, got 3; give TEXT_A TEXT_B (or use --input with two fields)\n"
    r = run("tokenize", "-m", "/nonexistent/model", "x")
    assert r.exit_code == 1 and r.stdout == ""
    assert r.stderr.startswith("Error: model folder '/nonexistent/model' does not exist") and r.stderr.count("\n") == 1
    r = run("tokenize", "x", env={"BERTCLI_MODEL": "/nonexistent/model"})
    assert r.exit_code == 1 and "(from $BERTCLI_MODEL)" in r.stderr
    r = run("tokenize", "--field-b", "b", "x")
    assert r.exit_code == 2 and "--field-b" in r.stderr


def test_cli_bad_record_is_skipped_or_stops():
    data = b"good\n\xff\xfe bad\nalso good\n"
    r = CliRunner().invoke(cli, ["tokenize", "-f", "jsonl", "--on-error", "skip"], input=data)
    assert r.exit_code == 0
    assert [json.loads(x)["text"] for x in r.stdout.splitlines()] == ["good", "also good"]
    assert '"line": 2' in r.stderr
    r = CliRunner().invoke(cli, ["tokenize", "-f", "jsonl"], input=data)
    assert r.exit_code == 1
    assert [json.loads(x)["text"] for x in r.stdout.splitlines()] == ["good"]
    assert r.stderr.startswith("Error: <stdin>, line 2: invalid UTF-8")


def test_cli_output_file(tmp_path):
    out = tmp_path / "t.jsonl"
    r = run("tokenize", "hello", "-o", str(out))
    assert r.exit_code == 0 and r.stdout == ""
    assert json.loads(out.read_text(encoding="utf-8"))["n_tokens"] == 3


def test_tokenize_never_imports_torch_or_transformers():
    code = ("import sys; from bertcli.cli.main import main\n"
            "sys.argv = ['bertcli', 'tokenize', 'Unaffable émigrés']\n"
            "try:\n    main()\nexcept SystemExit:\n    pass\n"
            "bad = [m for m in ('torch', 'transformers', 'numpy') if m in sys.modules]\n"
            "assert not bad, bad\n")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout)["n_tokens"] == 8


def test_cli_hub_ids_from_the_cache(tmp_path):
    """-m ORG/NAME from the Hugging Face cache (never downloaded), --revision a commit prefix;
    the SST-2 repo has no tokenizer.json (vocab.txt: transformers' class builds the fast one)."""
    cache = tmp_path / "hub"
    desc = H.build_hub_cache(cache, tmp_path / "work")
    env = {"HF_HUB_CACHE": str(cache), "BERTCLI_MODEL": None}
    for hub_id, rev in (("dslim/bert-base-NER", None),
                        ("distilbert/distilbert-base-uncased-finetuned-sst-2-english", "old")):
        commit = desc[hub_id][rev or "main"]
        args = ["tokenize", "-f", "jsonl", "-m", hub_id, "Angela Merkel visited Paris."]
        r = CliRunner().invoke(cli, args + (["--revision", commit[:10]] if rev else []), env=env)
        assert r.exit_code == 0, r.output
        ref = _reference(desc[hub_id]["snapshots"][commit], ["Angela Merkel visited Paris."])[0]
        _assert_same(json.loads(r.stdout), ref, pairs=False)
    r = CliRunner().invoke(cli, ["tokenize", "-m", "nobody/nothing", "x"], env=env)
    assert r.exit_code == 1 and "is neither a local folder nor in the Hugging Face cache" in r.stderr
    r = CliRunner().invoke(cli, ["tokenize", "--revision", "abc", "x"], env=env)
    assert r.exit_code == 2 and r.stderr == ("Error: --revision abc needs a hub id (--model ORG/NAME); the shipped "
                                             "default has no revisions\n")
