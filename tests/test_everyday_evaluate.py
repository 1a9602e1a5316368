"""``evaluate`` in everyday use (issue #13, item 1): an option of another task's data is a
usage error naming the option and its task, judged before any data is read or model
loaded; NER without seqeval stops before the inference, not after it."""

from __future__ import annotations

import json
import sys

import pytest
from click.testing import CliRunner

from bertcli.cli.main import cli
from bertcli.errors import BertcliError, UsageError
from bertcli.train.evaluation import reader_options


def invoke(args, env=None):
    res = CliRunner().invoke(cli, [str(a) for a in args], prog_name="bertcli",
                             env={"BERTCLI_MODEL": None, "BERTCLI_BACKEND": None, **(env or {})})
    assert res.exception is None or isinstance(res.exception, SystemExit), res.exc_info
    assert "Traceback" not in res.stderr
    return res


OWNER = {"--text-field": "classify and NER", "--text-pair-field": "classify", "--label-field": "classify",
         "--label-map": "classify", "--tag-column": "NER", "--data-format": "classify and NER", "--seed": "MLM"}
VALUE = {"--label-map": "a=b", "--tag-column": "1", "--data-format": "jsonl", "--seed": "3"}
MODEL = {"classify": ("cls_dir", "a classify"), "ner": ("ner_dir", "an NER"), "mlm": ("mlm_dir", "an MLM")}

# The 11 combinations that crashed with "TypeError: read_...() got an unexpected keyword
# argument" (12 with --text-field on an NER model, which the span formats made an NER
# option: see test_text_field_is_an_ner_option_now), and --seed, which only MLM uses.
CASES = [("classify", "--tag-column"), ("classify", "--seed"),
         ("ner", "--text-pair-field"), ("ner", "--label-field"), ("ner", "--label-map"), ("ner", "--seed"),
         ("mlm", "--text-field"), ("mlm", "--text-pair-field"), ("mlm", "--label-field"), ("mlm", "--label-map"),
         ("mlm", "--tag-column"), ("mlm", "--data-format")]


@pytest.mark.parametrize("task, option", CASES)
def test_an_option_of_another_task_is_a_usage_error_before_any_work(request, tmp_path, task, option):
    fixture, article = MODEL[task]
    model = request.getfixturevalue(fixture)
    missing = tmp_path / "not-read.txt"  # never opened: the command line is judged first
    res = invoke(["evaluate", "-m", model, "--data", missing, option, VALUE.get(option, "x")])
    owner = OWNER[option]
    if option == "--text-field" and "text_field" not in reader_options("ner"):
        owner = "classify"  # a read_ner from before the span formats
    assert (res.exit_code, res.stdout) == (2, "")
    assert res.stderr == (f"Error: {option} is for {owner} evaluation, but '{model}' is {article} model; "
                          f"drop {option}\n")


def test_the_task_named_by_task_is_the_one_judged(ner_dir, tmp_path):
    res = invoke(["evaluate", "-m", ner_dir, "--task", "classify", "--data", tmp_path / "x", "--tag-column", "2"])
    assert (res.exit_code, res.stdout) == (2, "")
    assert res.stderr == "Error: --tag-column is for NER evaluation, but --task is classify; drop --tag-column\n"


def test_text_field_is_an_ner_option_now(ner_dir, tmp_path):
    # read_ner takes text_field (span formats): not refused, the reader gets it
    if "text_field" not in reader_options("ner"):
        pytest.skip("this read_ner has no text_field")
    data = tmp_path / "dev.txt"
    data.write_text("Paris B-LOC\nis O\n\nAngela B-PER\nMerkel I-PER\n", encoding="utf-8")
    plain = invoke(["evaluate", "-m", ner_dir, "--data", data, "-f", "json"])
    named = invoke(["evaluate", "-m", ner_dir, "--data", data, "--text-field", "text", "-f", "json"])
    assert plain.exit_code == named.exit_code == 0
    assert json.loads(named.stdout)["f1"] == json.loads(plain.stdout)["f1"]


@pytest.mark.parametrize("task, value", [("classify", "conll"), ("ner", "csv")])
def test_data_format_values_are_judged_per_task(request, tmp_path, task, value):
    from bertcli.train.data import CLASSIFY_FORMATS, NER_FORMATS

    fixture, article = MODEL[task]
    res = invoke(["evaluate", "-m", request.getfixturevalue(fixture), "--data", tmp_path / "x",
                  "--data-format", value])
    formats = CLASSIFY_FORMATS if task == "classify" else NER_FORMATS
    assert (res.exit_code, res.stdout) == (2, "")
    assert res.stderr == f"Error: --data-format '{value}' is not {article} data format; use one of {', '.join(formats)}\n"


def test_options_of_the_right_task_still_work(cls_dir, ner_dir, tmp_path):
    tsv = tmp_path / "dev.tsv"
    tsv.write_text("review\tstars\ngood film\t1\nbad\t0\n", encoding="utf-8")
    res = invoke(["evaluate", "-m", cls_dir, "--data", tsv, "--text-field", "review", "--label-field", "stars",
                  "--label-map", "0=NEGATIVE,1=POSITIVE", "--data-format", "tsv", "-f", "json"])
    assert res.exit_code == 0, res.stderr
    from bertcli.train import evaluate

    api = evaluate(cls_dir, tsv, device="cpu", text_field="review", label_field="stars",
                   label_map={"0": "NEGATIVE", "1": "POSITIVE"})
    assert json.loads(res.stdout)["accuracy"] == pytest.approx(api["accuracy"], abs=1e-6) and api["n"] == 2
    conll = tmp_path / "dev.txt"
    conll.write_text("Paris NNP B-LOC\nis VBZ O\n", encoding="utf-8")
    res = invoke(["evaluate", "-m", ner_dir, "--data", conll, "--tag-column", "2", "--data-format", "conll",
                  "-f", "json"])
    assert res.exit_code == 0, res.stderr
    assert json.loads(res.stdout)["n"] == 1


def test_the_api_refuses_a_reader_keyword_of_another_task(cls_dir, tmp_path):
    from bertcli.train import evaluate

    with pytest.raises(UsageError) as e:
        evaluate(cls_dir, tmp_path / "x", tag_column=1)
    assert e.value.message == "tag_column= is not an option of classify evaluation (it is one of ner)"
    assert e.value.hint.startswith("classify evaluation takes text_field, text_pair_field, label_field, data_format")


@pytest.fixture
def no_seqeval(monkeypatch):
    # None in sys.modules: `import seqeval` fails and find_spec says it is not installed
    monkeypatch.setitem(sys.modules, "seqeval", None)

    def loaded(*a, **k):
        raise AssertionError("the model was loaded before the missing extra was noticed")

    import bertcli.loading

    monkeypatch.setattr(bertcli.loading, "load_model", loaded)


def test_ner_without_seqeval_stops_before_any_inference(ner_dir, tmp_path, no_seqeval):
    data = tmp_path / "dev.txt"
    data.write_text("Paris B-LOC\n", encoding="utf-8")
    res = invoke(["evaluate", "-m", ner_dir, "--data", data])
    assert (res.exit_code, res.stdout) == (1, "")
    assert res.stderr == ("Error: evaluating an NER model needs seqeval (entity-level P/R/F1, conlleval "
                          "semantics); pip install 'bertcli[train]'\n")
    from bertcli.train import evaluate

    with pytest.raises(BertcliError, match="needs seqeval"):
        evaluate(ner_dir, data)


def test_train_ner_with_eval_checks_for_seqeval_first(tmp_path, no_seqeval):
    res = invoke(["train", "ner", "--train", tmp_path / "t.txt", "--eval", tmp_path / "d.txt", "-o", tmp_path / "o"])
    assert (res.exit_code, res.stdout) == (1, "")
    assert res.stderr == "Error: training needs seqeval; pip install 'bertcli[train]'\n"
    assert not (tmp_path / "o").exists()


# ---------------------------------------------------------------- the table's title

def test_evaluate_title_is_one_line_that_fits_the_terminal(cls_dir, tmp_path):
    deep = tmp_path / "experiments" / "2026-12-07" / "sentiment" / "held-out"
    deep.mkdir(parents=True)
    data = deep / "dev.tsv"
    data.write_text("sentence\tlabel\ngood film\tPOSITIVE\nbad\tNEGATIVE\n", encoding="utf-8")
    res = invoke(["evaluate", "-m", cls_dir, "--data", data, "-f", "table"], env={"COLUMNS": "50"})
    assert res.exit_code == 0, res.stderr
    lines = res.stdout.splitlines()
    title = lines[0].strip()
    assert lines[1].startswith("┏")  # the title took one line, the table starts on the next
    assert len(lines[0]) <= 50 and title.startswith("classify · ") and title.endswith("/held-out/dev.tsv")
    wide = invoke(["evaluate", "-m", cls_dir, "--data", data, "-f", "table"], env={"COLUMNS": "400"})
    assert wide.stdout.splitlines()[0].strip() == f"classify · {cls_dir} · {data}"


def test_fit_keeps_the_ends_of_paths():
    from bertcli.cli.evaluate import _fit

    assert _fit(["ner", "runs/conll", "data/test.txt"], 80) == "ner · runs/conll · data/test.txt"
    assert _fit(["ner", "runs/conll", "/a/very/long/folder/test.txt"], 30) == "ner · runs/conll · …/test.txt"
    assert _fit(["classify", "/x" * 40, "/y" * 40], 40) == "classify · …/x/x/x/x/x/x · …/y/y/y/y/y/y"  # 40 characters


CONLL = """-DOCSTART- -X- -X- O

Angela NNP B-NP B-PER
Merkel NNP I-NP I-PER
visited VBD B-VP O
Paris NNP B-NP B-LOC
. . O O

The DT B-NP O
talks NNS I-NP O
in IN B-PP O
Berlin NNP B-NP B-LOC
ended VBD B-VP O
. . O O
"""


def test_without_model_the_task_s_shipped_default_is_evaluated(minilm_dir, tmp_path):
    """A newcomer's question: evaluate the shipped default without finding its folder. The same
    metrics as naming the default's folder; no --task either is a usage error saying what to pass."""
    pytest.importorskip("seqeval")
    from bertcli import defaults

    data = tmp_path / "test.txt"
    data.write_text(CONLL, encoding="utf-8")
    res = invoke(["evaluate", "--task", "ner", "--data", data, "-f", "json"])
    assert res.exit_code == 0, res.stderr
    got = json.loads(res.stdout)
    ref = json.loads(invoke(["evaluate", "-m", defaults.default_model_dir("ner"), "--data", data, "-f", "json"]).stdout)
    assert got == ref and got["model"] == str(defaults.default_model_dir("ner")) and got["f1"] == 1.0
    res = invoke(["evaluate", "--data", data])
    assert res.exit_code == 2 and "--task" in res.stderr and len(res.stderr.strip().splitlines()) == 1
