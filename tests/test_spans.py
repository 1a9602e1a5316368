"""Character-span NER annotations (doccano, spaCy/Prodigy, Label Studio) read as words and
BIO tags; invalid spans stop ``train ner`` before any training.

Expected words, tags and messages are worked out by hand from the texts below; the word
split is BERT's BasicTokenizer rule (whitespace; each punctuation character and CJK
ideograph alone).
"""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from bertcli.cli.main import cli
from bertcli.errors import DataError
from bertcli.train.data import SpanError, read_ner, spans_to_tags, split_words

MERKEL = "Angela Merkel visited Paris."  # words at 0-6, 7-13, 14-21, 22-27, 27-28


def write(tmp_path, name, content):
    p = tmp_path / name
    p.write_text(content, encoding="utf-8")
    return p


def jsonl(*objs):
    return "".join(json.dumps(o, ensure_ascii=False) + "\n" for o in objs)


def json_array(objs):
    """A JSON array with element k (0-based) on line k + 2."""
    return "[\n" + ",\n".join(json.dumps(o, ensure_ascii=False) for o in objs) + "\n]\n"


def words_tags(data):
    return [list(zip(s.tokens, s.tags)) for s in data.sentences]


def invoke(args, input=None):
    res = CliRunner().invoke(cli, [str(a) for a in args], input=input,
                             env={"BERTCLI_MODEL": None, "BERTCLI_BACKEND": None}, prog_name="bertcli")
    assert res.exception is None or isinstance(res.exception, SystemExit), res.exc_info
    assert "Traceback" not in res.stderr
    return res


# ---------------------------------------------------------------- words and tags

@pytest.mark.parametrize("text, words", [
    ("Paris, France.", ["Paris", ",", "France", "."]),
    ("U.S. $5 don't", ["U", ".", "S", ".", "$", "5", "don", "'", "t"]),
    ("  two\u00a0 spaces\t", ["two", "spaces"]),
    ("東京は日本です。", ["東", "京", "は", "日", "本", "です", "。"]),  # kana are not split, as in BERT
    ("Café Zürich 😀!", ["Café", "Zürich", "😀", "!"]),
    ("", []),
])
def test_split_words_is_berts_basic_rule(text, words):
    offsets = split_words(text)
    assert [text[s:e] for s, e in offsets] == words


def test_split_words_matches_the_wordpiece_pretokenizer(ner_dir):
    # The words a WordPiece checkpoint's tokenizer sees (what `ner` groups into entities)
    from tokenizers import Tokenizer

    pre = Tokenizer.from_file(str(ner_dir / "tokenizer.json")).pre_tokenizer
    for text in ["Angela Merkel (CDU) visited Paris, France.", "U.S.-based «Reuters» said: 3rd! $5 £6 ™"]:
        assert split_words(text) == [off for _, off in pre.pre_tokenize_str(text)]


def test_spans_to_tags_iob2_and_bioes():
    spans = [(22, 27, "LOC"), (0, 13, "PER")]  # any order
    words, tags = spans_to_tags(MERKEL, spans)
    assert words == ["Angela", "Merkel", "visited", "Paris", "."]
    assert tags == ["B-PER", "I-PER", "O", "B-LOC", "O"]
    assert spans_to_tags(MERKEL, spans, "BIOES")[1] == ["B-PER", "E-PER", "O", "S-LOC", "O"]
    # whitespace at a span's ends cuts no word: the same tags
    assert spans_to_tags(MERKEL, [(21, 27, "LOC"), (0, 14, "PER")])[1] == tags
    # touching spans of one type stay two entities
    assert spans_to_tags("New York Paris", [(0, 8, "LOC"), (9, 14, "LOC")])[1] == ["B-LOC", "I-LOC", "B-LOC"]


@pytest.mark.parametrize("spans, message", [
    ([(23, 27, "LOC")], "span [23, 27, \"LOC\"] ('aris') starts inside the word 'Paris' (characters 22-27)"),
    ([(22, 26, "LOC")], "span [22, 26, \"LOC\"] ('Pari') ends inside the word 'Paris' (characters 22-27)"),
    ([(6, 7, "X")], "span [6, 7, \"X\"] (' ') covers no word"),
    ([(0, 29, "X")], "span [0, 29, \"X\"] is out of range (the text has 28 characters)"),
    ([(-1, 3, "X")], "span [-1, 3, \"X\"] is out of range (the text has 28 characters)"),
    ([(5, 5, "X")], "span [5, 5, \"X\"] is empty or reversed (start >= end)"),
    ([(0, 13, "PER"), (7, 21, "PER")],
     "span [7, 21, \"PER\"] ('Merkel visited') overlaps span [0, 13, \"PER\"] ('Angela Merkel')"),
    ([(0, 6, "PER"), (0, 6, "LOC")], "span [0, 6, \"LOC\"] ('Angela') overlaps span [0, 6, \"PER\"] ('Angela')"),
])
def test_invalid_spans_are_named(spans, message):
    with pytest.raises(SpanError) as e:
        spans_to_tags(MERKEL, spans)
    assert str(e.value) == message


# ---------------------------------------------------------------- the file layouts

def test_doccano_label_and_entities_variants(tmp_path):
    f = write(tmp_path, "doccano.jsonl", jsonl(
        {"id": 1, "text": "EU rejects German call to boycott British lamb.",
         "label": [[0, 2, "ORG"], [11, 17, "MISC"], [34, 41, "MISC"]]},
        {"id": 2, "text": "Peter Blackburn", "entities": [[0, 15, "PER"]]},
        {"id": 3, "text": "BRUSSELS 1996-08-22",
         "entities": [{"id": 7, "label": "LOC", "start_offset": 0, "end_offset": 8}], "relations": []}))
    d = read_ner(f)
    assert (d.data_format, d.scheme, d.source_scheme) == ("spans", "IOB2", "IOB2")
    assert words_tags(d) == [
        [("EU", "B-ORG"), ("rejects", "O"), ("German", "B-MISC"), ("call", "O"), ("to", "O"), ("boycott", "O"),
         ("British", "B-MISC"), ("lamb", "O"), (".", "O")],
        [("Peter", "B-PER"), ("Blackburn", "I-PER")],
        [("BRUSSELS", "B-LOC"), ("1996", "O"), ("-", "O"), ("08", "O"), ("-", "O"), ("22", "O")]]
    assert [s.line for s in d.sentences] == [1, 2, 3]
    assert d.labels() == ["O", "B-LOC", "B-MISC", "B-ORG", "B-PER", "I-PER"]
    assert d.warnings == []


def test_spacy_prodigy_spans_and_rejected_answers(tmp_path):
    f = write(tmp_path, "prodigy.jsonl", jsonl(
        {"text": MERKEL, "spans": [{"start": 0, "end": 13, "label": "PER", "token_start": 0, "token_end": 1},
                                   {"start": 22, "end": 27, "label": "LOC"}], "answer": "accept"},
        {"text": "Paris again.", "spans": [{"start": 0, "end": 5, "label": "LOC"}], "answer": "reject"},
        {"text": "No entities here.", "spans": []}))
    d = read_ner(f)
    assert words_tags(d) == [
        [("Angela", "B-PER"), ("Merkel", "I-PER"), ("visited", "O"), ("Paris", "B-LOC"), (".", "O")],
        [("No", "O"), ("entities", "O"), ("here", "O"), (".", "O")]]
    assert [str(w) for w in d.warnings] == [f"{f}, line 2: Prodigy answer 'reject'; record left out"]


def test_a_json_array_of_span_records_and_label_studio_json_min(tmp_path):
    # JSON-MIN: Label Studio's flat export, "label": [{start, end, text, labels}]
    f = write(tmp_path, "min.json", json_array([
        {"id": 1, "text": MERKEL, "label": [{"start": 22, "end": 27, "text": "Paris", "labels": ["LOC"]}]},
        {"id": 2, "text": "Obama", "label": [{"start": 0, "end": 5, "text": "Obama", "labels": ["PER"]}]}]))
    d = read_ner(f)
    assert d.data_format == "spans"
    assert [s.tags for s in d.sentences] == [["O", "O", "O", "B-LOC", "O"], ["B-PER"]]
    assert [s.line for s in d.sentences] == [2, 3]  # the line each element starts on


LS_TASKS = [
    {"id": 11, "data": {"text": "😀 Obama met Merkel in Berlin."},
     "annotations": [
         # Label Studio < 1.0.1 counted offsets in UTF-16 code units: the emoji is two
         {"id": 1, "was_cancelled": False, "result": [
             {"from_name": "label", "to_name": "text", "type": "labels",
              "value": {"start": 3, "end": 8, "text": "Obama", "labels": ["PER"]}},
             {"from_name": "label", "to_name": "text", "type": "labels",
              "value": {"start": 23, "end": 29, "text": "Berlin", "labels": ["LOC"]}},
             {"from_name": "mood", "to_name": "text", "type": "choices", "value": {"choices": ["neutral"]}},
             {"type": "relation", "from_id": "a", "to_id": "b"}]},
         {"id": 2, "was_cancelled": True, "result": []}]},
    {"id": 12, "data": {"text": "Not labelled yet."}, "annotations": []},
    {"id": 13, "data": {"text": "Berlin is big."},
     "annotations": [{"id": 3, "result": [{"type": "labels", "value": {"start": 0, "end": 6, "labels": ["LOC"]}}]},
                     {"id": 4, "result": []}]},
]


def test_label_studio_export(tmp_path):
    f = write(tmp_path, "export.json", json_array(LS_TASKS))
    d = read_ner(f)
    assert (d.data_format, d.scheme) == ("labelstudio", "IOB2")
    assert words_tags(d) == [
        [("😀", "O"), ("Obama", "B-PER"), ("met", "O"), ("Merkel", "O"), ("in", "O"), ("Berlin", "B-LOC"), (".", "O")],
        # two annotators: two examples (label-studio-converter does the same)
        [("Berlin", "B-LOC"), ("is", "O"), ("big", "O"), (".", "O")],
        [("Berlin", "O"), ("is", "O"), ("big", "O"), (".", "O")]]
    assert [str(w) for w in d.warnings] == [
        f'{f}, line 2: offsets counted in UTF-16 code units (JavaScript) read as characters: '
        f'[3, 8, "PER"] -> [2, 7, "PER"], [23, 29, "LOC"] -> [22, 28, "LOC"]',
        f"{f}, line 3: task 12 has no annotation (not cancelled); left out"]


def test_label_studio_text_field_and_explicit_format(tmp_path):
    f = write(tmp_path, "ls.txt", json.dumps([{"data": {"content": "Paris"}, "annotations": [
        {"result": [{"type": "labels", "value": {"start": 0, "end": 5, "text": "Paris", "labels": ["LOC"]}}]}]}]))
    with pytest.raises(DataError, match=r"line 1: missing field 'data.text' \(the object has content\)"):
        read_ner(f)
    assert read_ner(f, data_format="labelstudio", text_field="content").sentences[0].tags == ["B-LOC"]


def test_label_studio_spans_that_cannot_be_tagged(tmp_path):
    tasks = [{"data": {"text": MERKEL}, "annotations": [{"result": [
        {"type": "labels", "value": {"start": 0, "end": 6, "text": "Angela", "labels": ["PER", "ORG"]}}]}]},
        {"data": {"text": MERKEL}, "annotations": [{"result": [
            {"type": "labels", "value": {"start": 0, "end": 6, "text": "Merkel", "labels": ["PER"]}}]}]},
        {"data": {"text": MERKEL}, "annotations": [{"result": [
            {"type": "labels", "value": {"start": 22, "end": 27, "text": "Paris", "labels": ["LOC"]}}]}]}]
    f = write(tmp_path, "ls.json", json_array(tasks))
    with pytest.raises(DataError) as e:
        read_ner(f)
    assert str(e.value).startswith(f"{f}, line 2: span 1 has 2 labels (PER, ORG); a word gets one tag "
                                   "(2 records with invalid spans in all)")
    d = read_ner(f, on_invalid="skip")
    assert [s.tags for s in d.sentences] == [["O", "O", "O", "B-LOC", "O"]]
    assert [str(w) for w in d.warnings][1] == (
        f"{f}, line 3: span [0, 6, \"PER\"] is 'Angela' in the text but 'Merkel' in the annotation; record left out")


# ---------------------------------------------------------------- invalid spans and malformed records

BAD = [{"text": MERKEL, "spans": [{"start": 0, "end": 13, "label": "PER"}]},
       {"text": MERKEL, "spans": [{"start": 23, "end": 27, "label": "LOC"}]},
       {"text": MERKEL, "spans": [{"start": 0, "end": 13, "label": "PER"}, {"start": 7, "end": 21, "label": "PER"}]},
       {"text": "short", "entities": [[0, 9, "PER"]]},
       {"text": "dup dup", "entities": [[0, 3, "PER"], [0, 3, "PER"]]}]


@pytest.mark.parametrize("on_invalid", ["fix", "error"])
def test_invalid_spans_stop_the_read_naming_file_line_and_span(tmp_path, on_invalid):
    f = write(tmp_path, "bad.jsonl", jsonl(*BAD))
    with pytest.raises(DataError) as e:
        read_ner(f, on_invalid=on_invalid)
    assert e.value.message == (f"{f}, line 2: span [23, 27, \"LOC\"] ('aris') starts inside the word 'Paris' "
                               "(characters 22-27) (3 records with invalid spans in all)")
    assert "--on-invalid skip" in e.value.hint


def test_skip_leaves_records_with_invalid_spans_out(tmp_path):
    f = write(tmp_path, "bad.jsonl", jsonl(*BAD))
    d = read_ner(f, on_invalid="skip")
    assert [(s.line, s.tags) for s in d.sentences] == [(1, ["B-PER", "I-PER", "O", "O", "O"]), (5, ["B-PER", "O"])]
    assert [str(w) for w in d.warnings] == [
        f"{f}, line 2: span [23, 27, \"LOC\"] ('aris') starts inside the word 'Paris' (characters 22-27); "
        "record left out",
        f"{f}, line 3: span [7, 21, \"PER\"] ('Merkel visited') overlaps span [0, 13, \"PER\"] ('Angela Merkel'); "
        "record left out",
        f"{f}, line 4: span [0, 9, \"PER\"] is out of range (the text has 5 characters); record left out",
        f"{f}, line 5: 1 duplicate span(s) read once"]


@pytest.mark.parametrize("record, message", [
    ({"text": "a b", "spans": [[0, 1]]}, "line 1: span 1 [0, 1] is not [start, end, label]"),
    ({"text": "a b", "spans": [{"start": 0, "label": "X"}]},
     "line 1: span 1 has no start, end and label (its keys: start, label)"),
    ({"text": "a b", "spans": [[0, 1.5, "X"]]}, "line 1: span 1: end 1.5 is not an integer offset"),
    ({"text": "a b", "spans": [[0, 1, ""]]}, "line 1: span 1: label \"\" is not a non-empty string"),
    ({"text": "a b", "spans": "0-1 X"}, "line 1: field 'spans' is not a list of spans"),
    ({"content": "a b", "spans": []}, "line 1: missing field 'text' (the object has content, spans)"),
    ({"text": 3, "spans": []}, "line 1: field 'text' is not a string"),
])
def test_malformed_records_are_errors_even_with_skip(tmp_path, record, message):
    f = write(tmp_path, "m.jsonl", jsonl(record))
    with pytest.raises(DataError) as e:
        read_ner(f, data_format="spans", on_invalid="skip")
    assert e.value.message == f"{f}, {message}"


def test_a_broken_json_array_names_its_line(tmp_path):
    f = write(tmp_path, "a.json", '[\n  {"text": "a", "spans": []},\n  {"text": "b" "spans": []}\n]\n')
    with pytest.raises(DataError, match=r"a.json, line 3: malformed JSON array: Expecting ',' delimiter"):
        read_ner(f)


def test_auto_detection_keeps_tokens_tags_jsonl_and_conll(tmp_path):
    toks = write(tmp_path, "t.jsonl", jsonl({"tokens": ["Paris"], "tags": ["B-LOC"], "text": "Paris"}))
    assert read_ner(toks).data_format == "jsonl"
    conll = write(tmp_path, "c.txt", "Paris B-LOC\n")
    assert read_ner(conll).data_format == "conll"


def test_skip_also_leaves_out_invalid_tag_sequences(tmp_path):
    f = write(tmp_path, "c.txt", "Paris I-LOC\n\nBerlin B-LOC\n\nRome S-LOC\n")
    d = read_ner(f, scheme="IOB2", on_invalid="skip")
    assert [s.tokens for s in d.sentences] == [["Berlin"]]
    assert [str(w) for w in d.warnings] == [
        f"{f}, line 1: I-LOC follows the sentence start; an IOB2 entity starts with B- (read as B-LOC); "
        "sentence left out",
        f"{f}, line 5: tag S-LOC is not an IOB2 tag; sentence left out"]


# ---------------------------------------------------------------- CLI: errors before any training

def test_train_ner_stops_on_an_invalid_span_before_training(encoder_dir, tmp_path):
    f = write(tmp_path, "bad.jsonl", jsonl(*BAD))
    out = tmp_path / "run"
    res = invoke(["train", "ner", "-m", encoder_dir, "--train", f, "-o", out, "--max-steps", "1"])
    assert res.exit_code == 1 and res.stdout == ""
    assert res.stderr == (f"Error: {f}, line 2: span [23, 27, \"LOC\"] ('aris') starts inside the word 'Paris' "
                          "(characters 22-27) (3 records with invalid spans in all); a span must cover whole words "
                          "(split at whitespace and at each punctuation character, as BERT's tokenizer does); "
                          "correct it, or pass --on-invalid skip to leave such records out\n")
    assert not out.exists()


def test_evaluate_stops_on_an_invalid_span_or_skips_its_record(ner_dir, tmp_path):
    f = write(tmp_path, "bad.jsonl", jsonl(*BAD))
    res = invoke(["evaluate", "-m", ner_dir, "--data", f, "-f", "json"])
    assert res.exit_code == 1 and res.stdout == ""
    assert res.stderr.startswith(f"Error: {f}, line 2: span [23, 27, \"LOC\"] ('aris') starts inside the word ")
    res = invoke(["evaluate", "-m", ner_dir, "--data", f, "-f", "json", "--on-invalid", "skip"])
    assert res.exit_code == 0
    m = json.loads(res.stdout)
    assert m["n"] == 2 and m["per_type"]["PER"]["support"] == 2  # lines 1 and 5: one PER each
    assert res.stderr.splitlines() == [f"Warning: {w}" for w in m["warnings"]]
    assert res.stderr.splitlines()[0] == (f"Warning: {f}, line 2: span [23, 27, \"LOC\"] ('aris') starts inside the "
                                          "word 'Paris' (characters 22-27); record left out")


def test_train_ner_tags_names_tags_the_training_data_lacks(encoder_dir, tmp_path):
    """A newcomer's small training set had B-LOC only, its --eval I-LOC too: refused, naming --tags;
    with --tags the model gets that tag set, in that order."""
    train = write(tmp_path, "tr.txt", "Paris B-LOC\nis O\nnice O\n\nBerlin B-LOC\ntoo O\n")
    dev = write(tmp_path, "dv.txt", "New B-LOC\nYork I-LOC\nis O\n")
    out = tmp_path / "run"
    res = invoke(["train", "ner", "-m", encoder_dir, "--train", train, "--eval", dev, "-o", out, "--max-steps", "1"])
    assert res.exit_code == 1 and "tag 'I-LOC' is not among the training tags" in res.stderr
    assert "--tags" in res.stderr and not out.exists()
    res = invoke(["train", "ner", "-m", encoder_dir, "--train", train, "--eval", dev, "-o", out, "--max-steps", "1",
                  "--tags", "O,B-LOC,I-LOC", "-f", "jsonl"])
    assert res.exit_code == 0, res.stderr
    cfg = json.loads((out / "config.json").read_text(encoding="utf-8"))
    assert cfg["id2label"] == {"0": "O", "1": "B-LOC", "2": "I-LOC"}
