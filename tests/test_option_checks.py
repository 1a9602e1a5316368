"""Option and API checks found by a newcomer's session (2026-11-30): each one used to be
accepted silently and give a wrong or lossy result."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from bertcli.cli.main import cli
from bertcli.loading import load_model


def invoke(args, input=None):
    res = CliRunner().invoke(cli, [str(a) for a in args], input=input,
                             env={"BERTCLI_MODEL": None, "BERTCLI_BACKEND": None}, prog_name="bertcli")
    assert res.exception is None or isinstance(res.exception, SystemExit), res.exc_info
    assert "Traceback" not in res.stderr
    return res


def jsonl(res):
    return [json.loads(x) for x in res.stdout.splitlines()]


# ---------------------------------------------------------------- --field-b implies --pairs

def test_field_b_reads_pairs_without_the_pairs_flag(cls_dir, tmp_path):
    f = tmp_path / "rte.tsv"
    f.write_text("sentence1\tsentence2\nA man is playing.\tSomeone plays.\nIt rains.\tThe sun is out.\n")
    common = ["classify", "-m", cls_dir, "-i", f, "--field-a", "sentence1", "-f", "jsonl"]
    implied = invoke([*common, "--field-b", "sentence2"])
    explicit = invoke([*common, "--field-b", "sentence2", "--pairs"])
    single = invoke(common)
    assert implied.exit_code == explicit.exit_code == single.exit_code == 0
    assert implied.stdout == explicit.stdout
    # and the pair really reaches the model: scores differ from the first sentence alone
    assert [r["score"] for r in jsonl(implied)] != [r["score"] for r in jsonl(single)]


def test_field_b_with_text_arguments_is_a_usage_error(cls_dir):
    res = invoke(["classify", "A man plays.", "--field-b", "sentence2", "-m", cls_dir])
    assert res.exit_code == 2 and res.stdout == ""
    assert res.stderr.splitlines()[-1] == ("Error: --field-b names the second text of records read from --input "
                                           "or stdin; with arguments use --text-pair")


# ---------------------------------------------------------------- renamed input fields

def test_a_renamed_input_field_never_overwrites_another(cls_dir):
    rec = {"text": "nice", "label": "A", "input_label": "B"}
    res = invoke(["classify", "-m", cls_dir, "-f", "jsonl"], input=json.dumps(rec) + "\n")
    assert res.exit_code == 0, res.output
    out = jsonl(res)[0]
    assert (out["input_label"], out["input_input_label"]) == ("B", "A")
    assert out["label"] in ("NEGATIVE", "POSITIVE")  # the tiny fixture's id2label


def test_chaining_two_commands_keeps_the_gold_label(cls_dir):
    first = invoke(["classify", "-m", cls_dir, "-f", "jsonl"], input='{"text": "fine", "label": "gold"}\n')
    second = invoke(["classify", "-m", cls_dir, "-f", "jsonl"], input=first.stdout)
    out = jsonl(second)[0]
    # a field once renamed keeps its name; the next collision moves one level further
    assert out["input_label"] == "gold"
    assert out["input_input_label"] == jsonl(first)[0]["label"]
    assert out["input_score"] == jsonl(first)[0]["score"]


# ---------------------------------------------------------------- --device, --labels, --label-map, --targets

@pytest.mark.parametrize("device", ["gpu", "cuda:x", "tpu"])
def test_malformed_device_is_a_usage_error(cls_dir, device):
    res = invoke(["classify", "x", "-m", cls_dir, "--device", device])
    assert res.exit_code == 2 and res.stdout == ""
    assert res.stderr.splitlines()[-1] == (f"Error: Invalid value for '--device': '{device}' is not a device: "
                                           "use auto, cpu, cuda, cuda:N or mps")


def test_device_names_are_case_insensitive(cls_dir):
    a = invoke(["classify", "x", "-m", cls_dir, "--device", "CPU", "-f", "jsonl"])
    b = invoke(["classify", "x", "-m", cls_dir, "--device", "cpu", "-f", "jsonl"])
    assert a.exit_code == 0 and a.stdout == b.stdout


@pytest.mark.parametrize("value, message", [
    ("x,", "'x,' has an empty name"),
    ("x,x", "'x,x' names x more than once"),
])
def test_bad_label_lists_are_usage_errors(cls_dir, value, message):
    res = invoke(["classify", "x", "-m", cls_dir, "--labels", value])
    assert res.exit_code == 2 and res.stdout == ""
    assert res.stderr.splitlines()[-1] == f"Error: Invalid value for --labels: {message}"


def test_label_map_mapping_one_label_twice_is_a_usage_error(tmp_path):
    f = tmp_path / "t.tsv"
    f.write_text("sentence\tlabel\ngood\t1\nbad\t0\n")
    res = invoke(["train", "classify", "--train", f, "-o", tmp_path / "out", "--label-map", "0=neg,0=pos"])
    assert res.exit_code == 2
    assert res.stderr.splitlines()[-1] == "Error: Invalid value for --label-map: '0' is mapped more than once"
    assert not (tmp_path / "out").exists()


def test_empty_targets_is_an_error_not_no_targets(mlm_dir):
    res = invoke(["fill-mask", "a [MASK] b", "-m", mlm_dir, "--targets", ""])
    assert (res.exit_code, res.stdout, res.stderr) == (2, "", "Error: --targets is empty\n")


def test_evaluate_hint_names_an_option_evaluate_has(cls_dir, tmp_path):
    f = tmp_path / "dev.tsv"
    f.write_text("sentence\tlabel\ngood\tpositive-ish\n")
    res = invoke(["evaluate", "-m", cls_dir, "--data", f])
    assert res.exit_code == 1
    assert res.stderr.rstrip().endswith("rename the data's labels with --label-map")


# ---------------------------------------------------------------- Python API

@pytest.mark.parametrize("task, call", [
    ("classify", lambda api, lm: api.classify(lm, "one text")),
    ("classify", lambda api, lm: api.classify(lm, ["a"], text_pairs="b")),
    ("fill-mask", lambda api, lm: api.fill_mask(lm, "a [MASK] b")),
    ("ner", lambda api, lm: api.ner(lm, "Paris")),
    ("nsp", lambda api, lm: api.nsp(lm, "A", ["B"])),
])
def test_api_refuses_a_bare_string(request, task, call):
    import bertcli

    fixture = {"classify": "cls_dir", "fill-mask": "mlm_dir", "ner": "ner_dir", "nsp": "pretraining_dir"}[task]
    lm = load_model(request.getfixturevalue(fixture), task, "cpu")
    with pytest.raises(TypeError, match=r"must be a list of strings, not a single str; wrap one text as \[text\]"):
        call(bertcli, lm)


def test_api_list_of_one_text_equals_the_cli(cls_dir):
    import bertcli

    lm = load_model(cls_dir, "classify", "cpu")
    api = bertcli.classify(lm, ["one text"])
    cli_out = jsonl(invoke(["classify", "one text", "-m", cls_dir, "-f", "jsonl", "--precision", "12"]))
    assert len(api) == 1 and api[0]["label"] == cli_out[0]["label"]
    assert api[0]["score"] == pytest.approx(cli_out[0]["score"], abs=1e-9)


# ---------------------------------------------------------------- pickle conversion hint

@pytest.mark.parametrize("fixture, arch", [("encoder_dir", "BertModel"), ("ner_dir", "BertForTokenClassification")])
def test_pickle_hint_converts_with_the_folders_own_class(request, tmp_path, fixture, arch):
    import shutil

    from bertcli.errors import ModelError
    from bertcli.loading import weight_files

    d = tmp_path / "m"
    shutil.copytree(request.getfixturevalue(fixture), d)
    for f in d.glob("*.safetensors"):
        f.unlink()
    (d / "pytorch_model.bin").write_bytes(b"not read")
    with pytest.raises(ModelError) as e:
        weight_files(d)
    assert f"t.{arch}.from_pretrained('{d}').save_pretrained('{d}', safe_serialization=True)" in e.value.hint


# ---------------------------------------------------------------- silent gaps now said

def test_model_from_the_environment_is_named_in_the_error(tmp_path):
    res = CliRunner().invoke(cli, ["classify", "x"], env={"BERTCLI_MODEL": str(tmp_path / "nope")},
                             prog_name="bertcli")
    assert res.exit_code == 1
    assert res.stderr == (f"Error: model folder '{tmp_path / 'nope'}' does not exist (from $BERTCLI_MODEL); "
                          "pass --model DIR with a local Hugging Face model folder\n")


def test_sentiment_warns_when_labels_have_no_sentiment(cls_dir):
    res = invoke(["sentiment", "good", "-m", cls_dir, "--labels", "sports,news", "-f", "jsonl"])
    assert res.exit_code == 0
    assert jsonl(res)[0]["sentiment"] is None
    assert res.stderr == ("Warning: the model's label(s) sports, news have no sentiment meaning, so 'sentiment' is "
                          "null for them; use classify, or --labels to name them (e.g. --labels negative,positive)\n")
    ok = invoke(["sentiment", "good", "-m", cls_dir, "--labels", "negative,positive", "-f", "jsonl"])
    assert ok.stderr == "" and jsonl(ok)[0]["sentiment"] in ("negative", "positive")


def test_evaluate_says_why_nsp_accuracy_is_missing(pretraining_dir, tmp_path):
    from bertcli.train import evaluate

    one = tmp_path / "one.txt"
    one.write_text("It was late. She went home. The door was shut.\n" * 20)
    m = evaluate(pretraining_dir, one, device="cpu")
    assert "nsp_accuracy" not in m and m["n_masked"] > 0
    assert m["warnings"] == [f"nsp_accuracy not computed: next-sentence pairs need at least two documents "
                             f"(files of a folder, or blank-line separated) and '{one}' has 1"]


def test_train_classify_refuses_conll_data_in_auto_mode(tmp_path):
    from bertcli.errors import DataError
    from bertcli.train.data import read_classification

    conll = tmp_path / "ner.txt"
    conll.write_text("EU NNP B-NP B-ORG\nrejects VBZ B-VP O\nGerman JJ B-NP B-MISC\n\nPeter B-PER\nBlackburn I-PER\n")
    with pytest.raises(DataError) as e:
        read_classification(conll)
    assert str(e.value) == (f"{conll}: looks like CoNLL token/tag lines (a token and its BIO tag per line), not "
                            "label-text classification data (train a tagger with `bertcli train ner`, or pass "
                            "--data-format label-text)")
    # the explicit format still reads it; real label-text is unaffected
    assert len(read_classification(conll, data_format="label-text").examples) == 5
    lt = tmp_path / "lt.txt"
    lt.write_text("pos a great film\nneg an awful plot\n")
    data = read_classification(lt)
    assert [(x.text, x.label) for x in data.examples] == [("a great film", "pos"), ("an awful plot", "neg")]


# ---------------------------------------------------------------- second newcomer pass

def test_resume_refuses_a_file_written_by_another_command(cls_dir, ner_dir, tmp_path):
    src = tmp_path / "in.txt"
    src.write_text("Paris is nice.\nBerlin too.\nAnd Rome.\n")
    out = tmp_path / "out.jsonl"
    assert invoke(["classify", "-m", cls_dir, "-i", src, "-o", out, "-q"]).exit_code == 0
    out.write_text(out.read_text().splitlines()[0] + "\n")
    before = out.read_bytes()
    res = invoke(["ner", "-m", ner_dir, "-i", src, "--resume", out, "-q"])
    assert res.exit_code == 1 and res.stdout == ""
    assert res.stderr == (f"Error: cannot resume '{out}': its records have no 'entities', so another command wrote "
                          "them, not 'ner'; resume with the command that wrote the file\n")
    assert out.read_bytes() == before
    assert invoke(["classify", "-m", cls_dir, "-i", src, "--resume", out, "-q"]).exit_code == 0
    assert len(out.read_text().splitlines()) == 3


def test_freeze_encoder_with_lora_is_a_usage_error(tmp_path):
    f = tmp_path / "t.txt"
    f.write_text("Some text. More text.\n")
    res = invoke(["train", "mlm", "--train", f, "-o", tmp_path / "o", "--lora", "4", "--freeze-encoder"])
    assert res.exit_code == 2
    assert res.stderr.splitlines()[-1] == ("Error: --freeze-encoder and --lora exclude each other: LoRA already "
                                           "keeps the encoder weights fixed")


def test_api_ner_uses_the_models_own_aggregation_like_the_cli(ner_dir, tmp_path):
    import shutil

    import bertcli

    d = tmp_path / "m"
    shutil.copytree(ner_dir, d)
    cfg = json.loads((d / "config.json").read_text())
    cfg["task_specific_params"] = {"ner": {"aggregation_strategy": "first"}}
    (d / "config.json").write_text(json.dumps(cfg))
    text = "Angela Merkel visited Paris and Emmanuel Macron Berlin"
    lm = load_model(d, "ner", "cpu")
    api = bertcli.ner(lm, [text])[0]["entities"]
    assert api == bertcli.ner(lm, [text], aggregation="first")[0]["entities"]
    assert api != bertcli.ner(lm, [text], aggregation="simple")[0]["entities"]  # "Emmanuel" is split there
    cli_out = jsonl(invoke(["ner", text, "-m", d, "-f", "jsonl", "--precision", "12"]))[0]["entities"]
    assert [(e["entity_group"], e["start"], e["end"]) for e in api] == [
        (e["entity_group"], e["start"], e["end"]) for e in cli_out]
    assert [e["score"] for e in api] == pytest.approx([e["score"] for e in cli_out], abs=1e-9)


def test_api_checks_pairs_labels_and_task_names(cls_dir, pretraining_dir):
    import bertcli
    from bertcli.errors import UsageError

    lm = load_model(cls_dir, "classify", "cpu")
    with pytest.raises(UsageError, match="^2 texts but 1 second texts: pairs need one of each$"):
        bertcli.classify(lm, ["x", "y"], text_pairs=["z"])
    with pytest.raises(UsageError, match="^--labels must give distinct, non-empty names, got x, x$"):
        bertcli.classify(lm, ["x"], labels=["x", "x"])
    with pytest.raises(UsageError, match="^2 texts but 1 second texts"):
        bertcli.nsp(load_model(pretraining_dir, "nsp", "cpu"), ["a", "b"], ["c"])
    with pytest.raises(ValueError, match="^unknown task 'sentimental': use one of fill-mask, nsp, classify, ner, "
                                         r"encoder \(or sentiment\)$"):
        load_model(cls_dir, "sentimental")
    # "sentiment" is a classify model
    assert bertcli.classify(load_model(cls_dir, "sentiment", "cpu"), ["x"]) == bertcli.classify(lm, ["x"])


def test_ner_jsonl_without_tokens_names_the_missing_field(ner_dir, tmp_path):
    f = tmp_path / "cl.jsonl"
    f.write_text('{"text": "good", "label": "pos"}\n')
    res = invoke(["evaluate", "-m", ner_dir, "--data", f])
    assert res.exit_code == 1
    assert res.stderr == (f"Error: {f}, line 1: missing field 'tokens' (the object has text, label); "
                          "NER JSONL needs a list of tokens and a list of tags per line\n")
