"""Data readers for training: classification, NER, raw text; label alignment."""

from __future__ import annotations

import json

import pytest

from bertcli.errors import DataError
from bertcli.train.data import (detect_scheme, iob1_to_iob2, label_order, read_classification, read_documents,
                                read_lines, read_ner, split_sentences, strip_gutenberg, validate_tags)
from bertcli.train.features import align_labels, continuation_tag, encode_classification, encode_ner


def write(tmp_path, name, content, mode="w"):
    p = tmp_path / name
    if isinstance(content, bytes):
        p.write_bytes(content)
    else:
        p.write_text(content, encoding="utf-8")
    return p


# ---------------------------------------------------------------- lines / encodings

def test_read_lines_bom_crlf_and_latin1_fallback(tmp_path):
    p = write(tmp_path, "a.txt", b"\xef\xbb\xbfone\r\ntwo\rthree\nsister\xf0city\n")
    lines, issues = read_lines(p)
    assert lines == ["one", "two", "three", "sister\u00f0city"]
    assert [i.line for i in issues] == [4]
    assert "latin-1" in issues[0].message


def test_read_lines_strict_encoding_names_line(tmp_path):
    p = write(tmp_path, "a.txt", b"ok\nbad \xff byte\n")
    with pytest.raises(DataError, match=r"a.txt, line 2: cannot decode byte 4 as utf-8"):
        read_lines(p, "utf-8")


def test_label_order_numeric_and_string():
    assert label_order(["10", "2", "1"]) == ["1", "2", "10"]
    assert label_order(["pos", "neg", "10"]) == ["10", "neg", "pos"]


# ---------------------------------------------------------------- classification

def test_tsv_header_no_quoting_and_pair_autodetect(tmp_path):
    p = write(tmp_path, "d.tsv", '\ufeffQuality\t#1 ID\t#2 ID\t#1 String\t#2 String\n'
                                 '1\t1\t2\tHe said " hi .\tShe said " yo .\n0\t3\t4\tA b\tC d\n')
    d = read_classification(p)
    assert (d.data_format, d.text_field, d.text_pair_field, d.label_field) == ("tsv", "#1 String", "#2 String",
                                                                               "Quality")
    assert d.examples[0].text == 'He said " hi .' and d.examples[0].text_pair == 'She said " yo .'
    assert [e.label for e in d.examples] == ["1", "0"]
    assert [e.line for e in d.examples] == [2, 3]
    assert d.labels() == ["0", "1"]


def test_tsv_without_header_uses_column_indices(tmp_path):
    p = write(tmp_path, "u.txt", 'A "quoted, odd" sentence.  \t0\nGreat.\t1\n')
    d = read_classification(p)
    assert d.data_format == "tsv" and d.text_field == 0 and d.label_field == 1
    assert [(e.text, e.label) for e in d.examples] == [('A "quoted, odd" sentence.', "0"), ("Great.", "1")]


def test_csv_quoting_multiline_and_named_fields(tmp_path):
    p = write(tmp_path, "c.csv", 'id,review,stars\n1,"good, ""very"" good",5\n2,"two\nlines",1\n3,,1\n4,fine,3\n')
    d = read_classification(p, text_field="review", label_field="stars")
    assert [(e.text, e.label, e.line) for e in d.examples] == [('good, "very" good', "5", 2), ("two\nlines", "1", 3),
                                                               ("fine", "3", 6)]
    assert [str(w) for w in d.warnings] == [f"{p}, line 5: empty text in column 'review'; row skipped"]
    assert d.labels() == ["1", "3", "5"]


def test_csv_missing_field_lists_columns(tmp_path):
    p = write(tmp_path, "c.csv", "text,label\nhi,1\n")
    with pytest.raises(DataError, match=r"no column 'sentiment' for the label \(found: text, label\)"):
        read_classification(p, label_field="sentiment")


def test_tsv_wrong_column_count_names_line(tmp_path):
    p = write(tmp_path, "d.tsv", "sentence\tlabel\nok\t1\nbad\tone\ttoo many\n")
    with pytest.raises(DataError, match=r"d.tsv, line 3: row has 3 columns, expected 2"):
        read_classification(p)


def test_jsonl_labels_int_str_and_errors(tmp_path):
    p = write(tmp_path, "d.jsonl", '{"text": "a", "label": 1}\n\n{"text": "b", "label": "x"}\n')
    d = read_classification(p)
    assert [(e.text, e.label, e.line) for e in d.examples] == [("a", "1", 1), ("b", "x", 3)]
    bad = write(tmp_path, "bad.jsonl", '{"text": "a", "label": 1}\n{"text": "b", "label": 1\n')
    with pytest.raises(DataError, match=r"bad.jsonl, line 2: malformed JSON"):
        read_classification(bad)
    miss = write(tmp_path, "miss.jsonl", '{"text": "a", "label": 1}\n{"text": "b"}\n')
    with pytest.raises(DataError, match=r"miss.jsonl, line 2: missing label field 'label'"):
        read_classification(miss)


def test_multi_label_jsonl_and_separator(tmp_path):
    p = write(tmp_path, "m.jsonl", '{"text": "a", "labels": ["tech", "sports"]}\n{"text": "b", "labels": []}\n')
    with pytest.raises(DataError, match=r"line 1: label 'labels' is a list.*--multi-label"):
        read_classification(p)
    d = read_classification(p, multi_label=True)
    assert [e.label for e in d.examples] == [["sports", "tech"], []]
    t = write(tmp_path, "m.tsv", 'text\tlabels\nx\ttech|politics\ny\t["sports"]\n')
    d = read_classification(t, multi_label=True, label_sep="|")
    assert [e.label for e in d.examples] == [["politics", "tech"], ["sports"]]
    assert d.labels() == ["politics", "sports", "tech"]


def test_label_text_format_detected(tmp_path):
    p = write(tmp_path, "q.label", b"DESC:manner How did serfdom develop ?\nHUM:ind Who is sister\xf0city , ok ?\n")
    d = read_classification(p)
    assert d.data_format == "label-text"
    assert [(e.label, e.text) for e in d.examples] == [("DESC:manner", "How did serfdom develop ?"),
                                                       ("HUM:ind", "Who is sister\u00f0city , ok ?")]
    assert d.warnings[0].line == 2


# ---------------------------------------------------------------- NER

CONLL = """-DOCSTART- -X- -X- O

EU NNP B-NP B-ORG
rejects VBZ B-VP O
German JJ B-NP B-MISC
call NN I-NP O

Peter NNP B-NP B-PER
Blackburn NNP I-NP I-PER
"""


def test_conll_reader_docstart_blank_lines_and_lines(tmp_path):
    d = read_ner(write(tmp_path, "c.txt", CONLL))
    assert [s.tokens for s in d.sentences] == [["EU", "rejects", "German", "call"], ["Peter", "Blackburn"]]
    assert [s.tags for s in d.sentences] == [["B-ORG", "O", "B-MISC", "O"], ["B-PER", "I-PER"]]
    assert [s.lines for s in d.sentences] == [[3, 4, 5, 6], [8, 9]]
    assert d.scheme == "IOB2" and d.warnings == []
    assert d.labels() == ["O", "B-MISC", "B-ORG", "B-PER", "I-PER"]


def test_conll_bad_lines_named(tmp_path):
    with pytest.raises(DataError, match=r"c.txt, line 2: expected a token and a tag"):
        read_ner(write(tmp_path, "c.txt", "EU B-ORG\nlonely\n"))
    with pytest.raises(DataError, match=r"c.txt, line 2: tag 'PER' is not O or PREFIX-TYPE"):
        read_ner(write(tmp_path, "c.txt", "EU B-ORG\nPeter PER\n"))
    with pytest.raises(DataError, match=r"c.txt, line 2: line has 3 columns, earlier lines have 2"):
        read_ner(write(tmp_path, "c.txt", "EU B-ORG\nPeter NNP B-PER\n"))


def test_iob2_invalid_sequence_reported_and_fixed(tmp_path):
    p = write(tmp_path, "c.txt", "a O\nb I-PER\nc I-PER\n\nd B-LOC\ne I-ORG\n\nf B-PER\n")
    d = read_ner(p)
    assert d.scheme == "IOB2"
    assert [s.tags for s in d.sentences] == [["O", "B-PER", "I-PER"], ["B-LOC", "B-ORG"], ["B-PER"]]
    assert [(w.line, w.message.split(";")[0]) for w in d.warnings] == [(2, "I-PER follows O"),
                                                                       (6, "I-ORG follows B-LOC")]
    with pytest.raises(DataError, match=r"c.txt, line 2: I-PER follows O.*\(2 invalid tag sequence\(s\) in all\)"):
        read_ner(p, on_invalid="error")


def test_iob1_detected_and_converted(tmp_path):
    # IOB1: entities start with I-; B- only between two touching entities of one type.
    p = write(tmp_path, "c.txt", "U.N. I-ORG\nofficial O\nEkeus I-PER\nheads O\n\nx I-LOC\ny B-LOC\nz O\n")
    d = read_ner(p)
    assert (d.source_scheme, d.scheme) == ("IOB1", "IOB2")
    assert [s.tags for s in d.sentences] == [["B-ORG", "O", "B-PER", "O"], ["B-LOC", "B-LOC", "O"]]
    assert d.warnings == []
    kept = read_ner(p, convert_iob1=False)
    assert kept.scheme == "IOB1" and kept.sentences[0].tags[0] == "I-ORG"


def test_bioes_and_bilou(tmp_path):
    d = read_ner(write(tmp_path, "c.txt", "New B-LOC\nYork E-LOC\nis O\nBob U-PER\n"))
    assert d.scheme == "BIOES" and d.sentences[0].tags == ["B-LOC", "E-LOC", "O", "S-PER"]
    assert d.warnings == []
    bad = read_ner(write(tmp_path, "d.txt", "New B-LOC\nis O\nYork E-LOC\n"))
    assert [w.line for w in bad.warnings] == [2, 3]
    assert bad.sentences[0].tags == ["B-LOC", "O", "E-LOC"]  # BIOES problems are reported, tags kept


def test_scheme_helpers():
    assert detect_scheme([["B-X", "I-X", "O"]]) == "IOB2"
    assert detect_scheme([["I-X", "I-X", "B-X"]]) == "IOB1"
    assert detect_scheme([["S-X"]]) == "BIOES"
    assert iob1_to_iob2(["I-A", "I-A", "B-A", "O", "I-B", "I-A"]) == ["B-A", "I-A", "B-A", "O", "B-B", "B-A"]
    fixed, problems = validate_tags(["B-A", "I-B"], "IOB2")
    assert fixed == ["B-A", "B-B"] and problems[0][0] == 1


def test_char_position_tokens(tmp_path):
    p = write(tmp_path, "w.txt", "\u62110\tO\n\u59731\tB-PER.NOM\n\ufffd\ufffd0\tO\n011\tO\n")
    d = read_ner(p)
    assert d.token_format == "char-position"
    assert d.sentences[0].tokens == ["\u6211", "\u5973", "\ufffd\ufffd", "0"]
    plain = read_ner(p, token_format="plain")
    assert plain.sentences[0].tokens[0] == "\u62110"


def test_ner_jsonl_tokens_tags(tmp_path):
    p = write(tmp_path, "n.jsonl", json.dumps({"tokens": ["Bob", "runs"], "ner_tags": [1, 0]}) + "\n")
    with pytest.raises(DataError, match="tags are integers"):
        read_ner(p)
    d = read_ner(p, tag_names=["O", "B-PER"])
    assert d.sentences[0].tags == ["B-PER", "O"]
    bad = write(tmp_path, "b.jsonl", json.dumps({"tokens": ["a", "b"], "tags": ["O"]}) + "\n")
    with pytest.raises(DataError, match=r"b.jsonl, line 1: 2 tokens but 1 tags"):
        read_ner(bad)


# ---------------------------------------------------------------- raw text

def test_split_sentences_rules():
    assert split_sentences("Mr. Smith went to Washington. He arrived at 5 p.m. on Monday! Did he?  Yes.") == [
        "Mr. Smith went to Washington.", "He arrived at 5 p.m. on Monday!", "Did he?", "Yes."]
    assert split_sentences("\u2018Oh dear!\u2019 said J. R. Tolkien. Then\nhe left.") == [
        "\u2018Oh dear!\u2019 said J. R. Tolkien.", "Then he left."]
    assert split_sentences("\u6211\u662f\u3002\u4f60\u597d\uff01") == ["\u6211\u662f\u3002", "\u4f60\u597d\uff01"]


def test_gutenberg_strip_and_documents(tmp_path):
    pg = ("\ufeffThe Project Gutenberg eBook\r\nheader text.\r\n*** START OF THE PROJECT GUTENBERG EBOOK X ***\r\n"
          "First para line one\r\nline two. Second sentence.\r\n\r\nNew paragraph.\r\n"
          "*** END OF THE PROJECT GUTENBERG EBOOK X ***\r\nLicense.\r\n")
    folder = tmp_path / "books"
    folder.mkdir()
    (folder / "a.txt").write_text(pg, encoding="utf-8", newline="")
    (folder / "b.txt").write_text("Doc b one. Doc b two.\n", encoding="utf-8")
    docs, issues = read_documents(folder)
    assert [d.sentences for d in docs] == [["First para line one line two.", "Second sentence.", "New paragraph."],
                                           ["Doc b one.", "Doc b two."]]
    single = write(tmp_path, "corpus.txt", "A one. A two.\n\nB one.\n\n\nC one.\n")
    docs, _ = read_documents(single)
    assert [(d.source.rsplit(":", 1)[1], d.sentences) for d in docs] == [
        ("1", ["A one.", "A two."]), ("3", ["B one."]), ("6", ["C one."])]
    assert strip_gutenberg(["a", "b"]) == ["a", "b"]


# ---------------------------------------------------------------- alignment

def test_align_labels_first_piece_and_continuations():
    l2i = {"O": 0, "B-PER": 1, "I-PER": 2, "B-LOC": 3, "I-LOC": 4}
    # [CLS] Ang ##ela Merkel visited Par ##is [SEP]
    word_ids = [None, 0, 0, 1, 2, 3, 3, None]
    tags = ["B-PER", "I-PER", "O", "B-LOC"]
    assert align_labels(word_ids, tags, l2i) == [-100, 1, -100, 2, 0, 3, -100, -100]
    assert align_labels(word_ids, tags, l2i, label_all_tokens=True) == [-100, 1, 2, 2, 0, 3, 4, -100]
    assert continuation_tag("S-LOC") is None and continuation_tag("O") == "O"


def test_encode_ner_real_wordpieces_never_b_on_continuation(tmp_path, encoder_dir):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(encoder_dir))
    p = write(tmp_path, "c.txt", "Merkelshire B-LOC\nObamacare B-MISC\nvisited O\nParisian B-MISC\nHawaiians I-MISC\n")
    d = read_ner(p)
    tags = d.labels() + ["I-LOC"]
    l2i = {t: i for i, t in enumerate(tags)}
    i2l = {i: t for t, i in l2i.items()}
    for all_tokens in (False, True):
        feats, _ = encode_ner(tok, d, l2i, 64, all_tokens)
        f = feats[0]
        pieces = tok.convert_ids_to_tokens(f["input_ids"])
        assert pieces[:7] == ["[CLS]", "Merkel", "##s", "##h", "##i", "##r", "##e"]
        firsts = [i for i, w in enumerate(f["word_ids"]) if w >= 0 and (i == 0 or f["word_ids"][i - 1] != w)]
        assert [i2l[f["labels"][i]] for i in firsts] == ["B-LOC", "B-MISC", "O", "B-MISC", "I-MISC"]
        conts = [i for i, w in enumerate(f["word_ids"]) if w >= 0 and i not in firsts]
        assert len(conts) >= 8  # several words really split into several pieces
        cont_labels = [f["labels"][i] for i in conts]
        if all_tokens:
            assert all(i2l[x].startswith("I-") for x in cont_labels)
            assert i2l[f["labels"][2]] == "I-LOC"
        else:
            assert set(cont_labels) == {-100}


def test_encode_ner_word_without_pieces_becomes_unk(tmp_path, encoder_dir):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(encoder_dir))
    d = read_ner(write(tmp_path, "c.txt", "Paris B-LOC\n\u200b O\nBerlin B-LOC\n"), token_format="plain")
    feats, issues = encode_ner(tok, d, {"O": 0, "B-LOC": 1}, 64)
    assert feats[0]["word_ids"] == [-1, 0, 1, 2, -1]
    assert feats[0]["labels"] == [-100, 1, 0, 1, -100]
    assert "read as [UNK]" in str(issues[-1])


def test_encode_classification_pairs_and_multilabel(tmp_path, encoder_dir):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(encoder_dir))
    d = read_classification(write(tmp_path, "p.tsv", "sentence1\tsentence2\tlabel\nParis is\tBerlin is\tb\n"))
    f = encode_classification(tok, d, {"a": 0, "b": 1}, 32)[0]
    assert tok.convert_ids_to_tokens(f["input_ids"]) == ["[CLS]", "Paris", "is", "[SEP]", "Berlin", "is", "[SEP]"]
    assert f["token_type_ids"] == [0, 0, 0, 0, 1, 1, 1] and f["labels"] == 1
    m = read_classification(write(tmp_path, "m.jsonl", '{"text": "x", "labels": ["c", "a"]}\n'), multi_label=True)
    assert encode_classification(tok, m, {"a": 0, "b": 1, "c": 2}, 32, multi_label=True)[0]["labels"] == [1.0, 0.0,
                                                                                                         1.0]


# ---------------------------------------------------------------- real data (shared)

def test_real_conll2003(shared_data):
    d = read_ner(shared_data / "conll2003" / "train.txt")
    assert len(d.sentences) == 14041 and sum(len(s.tokens) for s in d.sentences) == 203621
    assert d.scheme == "IOB2" and d.warnings == []
    assert d.labels() == ["O", "B-LOC", "I-LOC", "B-MISC", "I-MISC", "B-ORG", "I-ORG", "B-PER", "I-PER"]
    counts = {}
    for s in d.sentences:
        for t in s.tags:
            if t.startswith("B-"):
                counts[t[2:]] = counts.get(t[2:], 0) + 1
    assert counts == {"PER": 6600, "ORG": 6321, "LOC": 7140, "MISC": 3438}
    dev = read_ner(shared_data / "conll2003" / "dev.txt")
    assert (len(dev.sentences), sum(len(s.tokens) for s in dev.sentences)) == (3250, 51362)


def test_real_weibo_ner(shared_data):
    d = read_ner(shared_data / "weibo_ner" / "weiboNER_2nd_conll.train")
    assert d.token_format == "char-position" and d.scheme == "IOB2"
    assert (len(d.sentences), sum(len(s.tokens) for s in d.sentences)) == (1350, 73778)
    # The 10 annotation slips listed in weibo_ner/SOURCE.md, reported by line.
    assert [w.line for w in d.warnings] == [1266, 22000, 24537, 28617, 35046, 35119, 49249, 62980, 62990, 69376]


@pytest.mark.parametrize("rel,n,pair,labels", [
    ("sst2/dev.tsv", 872, False, ["0", "1"]),
    ("mrpc/train.tsv", 3668, True, ["0", "1"]),
    ("rte/dev.tsv", 277, True, ["entailment", "not_entailment"]),
    ("trec/train_5500.label", 5452, False, None),
    ("chnsenticorp_htl/ChnSentiCorp_htl_all.csv", 7765, False, ["0", "1"]),
    ("uci_sentiment/imdb_labelled.txt", 1000, False, ["0", "1"]),
])
def test_real_classification_sets(shared_data, rel, n, pair, labels):
    d = read_classification(shared_data / rel)
    assert len(d.examples) == n
    assert (d.text_pair_field is not None) == pair
    if labels:
        assert d.labels() == labels
    else:
        assert len(d.labels()) == 50  # TREC fine labels
    assert all(e.text and e.text == e.text.strip() for e in d.examples)


def test_real_books(shared_data):
    docs, issues = read_documents(shared_data / "books", max_files=2)
    assert len(docs) == 2 and issues == []
    assert docs[0].sentences[0] == "ALICE\u2019S ADVENTURES IN WONDERLAND"
    assert not any("Gutenberg" in s for d in docs for s in d.sentences[:3] + d.sentences[-3:])
    assert all("\r" not in s and "\ufeff" not in s for d in docs for s in d.sentences)


def test_label_map_renames_labels_as_read(tmp_path):
    from bertcli.train.data import read_classification

    f = tmp_path / "d.tsv"
    f.write_text("sentence\tlabel\ngood film\t1\nbad film\t0\nodd film\t2\n")
    data = read_classification(f, label_map={"0": "negative", "1": "positive"})
    assert [e.label for e in data.examples] == ["positive", "negative", "2"]
    assert data.labels() == ["2", "negative", "positive"]


def test_lora_target_patterns():
    import re

    from bertcli.train.adapters import _LORA_TARGETS

    names = ["bert.encoder.layer.0.attention.self.query", "bert.encoder.layer.0.attention.output.dense",
             "bert.encoder.layer.5.intermediate.dense", "bert.encoder.layer.5.output.dense",
             "bert.pooler.dense", "cls.predictions.transform.dense", "classifier"]
    hit = {k: [n for n in names if re.fullmatch(p, n)] for k, p in _LORA_TARGETS.items()}
    assert hit["attention"] == names[:2]
    assert hit["all-linear"] == names[:4]


def test_conll_documents_splits_articles_and_sentences(tmp_path):
    from bertcli.train.data import conll_documents

    f = tmp_path / "x.conll"
    f.write_text("-DOCSTART- -X- -X- O\n\nEU NNP B-NP B-ORG\nrejects VBZ B-VP O\n\nPeter NNP B-NP B-PER\n\n"
                 "-DOCSTART- -X- -X- O\n\nBonn NNP B-NP B-LOC\n", encoding="utf-8")
    assert conll_documents(f) == [[["EU", "rejects"], ["Peter"]], [["Bonn"]]]
    g = tmp_path / "y.conll"
    g.write_text("a O\nb O\n\nc O\n", encoding="utf-8")  # no -DOCSTART-: one document
    assert conll_documents(g) == [[["a", "b"], ["c"]]]
