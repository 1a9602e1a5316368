"""Options that used to be ignored without a word (issue #13, item 2): each is now a usage
error (exit 2, judged before any work) or a one-line warning."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from bertcli.cli.main import cli


def invoke(args, input=None):
    res = CliRunner().invoke(cli, [str(a) for a in args], input=input, prog_name="bertcli",
                             env={"BERTCLI_MODEL": None, "BERTCLI_BACKEND": None})
    assert res.exception is None or isinstance(res.exception, SystemExit), res.exc_info
    assert "Traceback" not in res.stderr
    return res


def jsonl(res):
    return [json.loads(x) for x in res.stdout.splitlines()]


# ---------------------------------------------------------------- --field with texts as arguments

@pytest.mark.parametrize("cmd, fixture, text, option", [
    ("classify", "cls_dir", "good", "--field"),
    ("sentiment", "cls_dir", "good", "--field"),
    ("ner", "ner_dir", "Paris", "--field"),
    ("fill-mask", "mlm_dir", "a [MASK] b", "--field"),
    ("nsp", "pretraining_dir", "A", "--field-a"),
    ("nsp", "pretraining_dir", "A", "--field-b"),
])
def test_a_field_name_with_texts_as_arguments_is_a_usage_error(request, cmd, fixture, text, option):
    model = request.getfixturevalue(fixture)
    texts = [text, "B"] if cmd == "nsp" else [text]
    res = invoke([cmd, *texts, "-m", model, option, "review"])
    shown = "--field-a" if option == "--field" and cmd == "nsp" else option
    assert (res.exit_code, res.stdout) == (2, "")
    assert res.stderr == (f"Error: {shown} 'review' names a field of records read from --input or stdin; texts "
                          f"given as arguments have none; drop {shown}\n")


def test_the_default_field_name_with_arguments_is_fine(cls_dir):
    res = invoke(["classify", "good", "-m", cls_dir, "--field", "text", "-f", "jsonl"])
    assert res.exit_code == 0 and jsonl(res)[0]["text"] == "good"


# ---------------------------------------------------------------- --text-pair on a single-text model

@pytest.fixture(scope="module")
def trained(encoder_dir, tmp_path_factory):
    """Two classifiers trained by `bertcli train classify` (one step each): on single
    texts, and on pairs; their training_args.json say which."""
    d = tmp_path_factory.mktemp("pairs")
    rows = [("a wonderful film", "it moved me", "pos"), ("the food was terrible", "cold and late", "neg")] * 4
    single, pairs = d / "single.jsonl", d / "pairs.jsonl"
    single.write_text("".join(json.dumps({"text": a, "label": y}) + "\n" for a, _, y in rows), encoding="utf-8")
    pairs.write_text("".join(json.dumps({"sentence1": a, "sentence2": b, "label": y}) + "\n" for a, b, y in rows),
                     encoding="utf-8")
    out = {}
    for name, data, extra in (("single", single, ["--epochs", "2"]),
                              ("pairs", pairs, ["--text-field", "sentence1", "--text-pair-field", "sentence2"])):
        out[name] = d / name
        res = invoke(["train", "classify", "-m", encoder_dir, "--train", data, "-o", out[name], "--max-steps", "1",
                      "-f", "jsonl", *extra])
        assert res.exit_code == 0, res.stderr
        out[name + "-stderr"] = res.stderr
    return out


SINGLE_WARNING = ("Warning: the model was trained on single texts (its training_args.json has no text_pair_field), "
                  "so the second texts of {opt} change its scores in a way it never learned; drop {opt}\n")


def test_text_pair_on_a_single_text_model_warns(trained, tmp_path):
    m = trained["single"]
    alone = invoke(["classify", "a wonderful film", "-m", m, "-f", "jsonl"])
    paired = invoke(["classify", "a wonderful film", "--text-pair", "it moved me", "-m", m, "-f", "jsonl"])
    assert alone.stderr == "" and paired.exit_code == 0
    assert paired.stderr == SINGLE_WARNING.format(opt="--text-pair")
    assert jsonl(paired)[0]["score"] != jsonl(alone)[0]["score"]  # what the warning is about
    f = tmp_path / "pairs.jsonl"
    f.write_text('{"text": "a wonderful film", "text_pair": "it moved me"}\n', encoding="utf-8")
    res = invoke(["sentiment", "-m", m, "-i", f, "--pairs", "-f", "jsonl", "--labels", "negative,positive"])
    assert res.stderr == SINGLE_WARNING.format(opt="--pairs")
    res = invoke(["classify", "-m", m, "-i", f, "--field-b", "text_pair", "-f", "jsonl", "-q"])
    assert res.stderr == "" and res.exit_code == 0  # -q: no warnings


def test_single_texts_on_a_pair_model_warn(trained):
    m = trained["pairs"]
    res = invoke(["classify", "a wonderful film", "-m", m, "-f", "jsonl"])
    assert res.exit_code == 0
    assert res.stderr == ("Warning: the model was trained on text pairs (second text: 'sentence2', in its "
                          "training_args.json), but each text comes alone here; give the second with --text-pair "
                          "(arguments) or --pairs (--input/stdin)\n")
    assert invoke(["classify", "a", "--text-pair", "b", "-m", m, "-f", "jsonl"]).stderr == ""


def test_a_model_without_training_args_is_not_judged(cls_dir):
    # a checkpoint from elsewhere does not say what it was trained on
    res = invoke(["classify", "a", "--text-pair", "b", "-m", cls_dir, "-f", "jsonl"])
    assert res.exit_code == 0 and res.stderr == ""


def test_the_default_sentiment_model_was_trained_on_single_sentences(minilm_dir):
    res = invoke(["sentiment", "great food", "--text-pair", "the waiter", "-f", "jsonl"])
    assert res.exit_code == 0
    assert res.stderr == SINGLE_WARNING.format(opt="--text-pair")


def test_max_steps_over_epochs_is_said(trained):
    assert trained["single-stderr"].splitlines()[0] == (
        "Warning: --max-steps 1 overrides --epochs 2: training stops after 1 step")
    args = json.loads((trained["single"] / "training_args.json").read_text(encoding="utf-8"))
    assert args["options"]["max_steps"] == 1 and args["data"]["text_pair_field"] is None
    assert "overrides" not in trained["pairs-stderr"]  # --epochs not typed: nothing to say


# ---------------------------------------------------------------- train: contradictions and dead values

@pytest.mark.parametrize("task, args, message", [
    ("classify", ["--resume", "--overwrite"],
     "Error: --resume continues the run in --output and --overwrite replaces it; give one of them"),
    ("classify", ["--max-steps", "-5"], "Error: Invalid value for '--max-steps': -5 is not in the range x>=1."),
    ("classify", ["--max-steps", "0"], "Error: Invalid value for '--max-steps': 0 is not in the range x>=1."),
    ("mlm", ["--eval-fraction", "2"], "Error: Invalid value for '--eval-fraction': 2.0 is not in the range 0<=x<1."),
    ("mlm", ["--eval-fraction", "-0.1"],
     "Error: Invalid value for '--eval-fraction': -0.1 is not in the range 0<=x<1."),
    ("mlm", ["--eval-fraction", "0.1", "--eval", "dev.txt"],
     "Error: --eval-fraction holds out part of --train when there is no --eval; with --eval FILE it would do "
     "nothing; drop one of them"),
    ("classify", ["--lora-alpha", "16"], "Error: --lora-alpha shapes LoRA adapters; add --lora R, or drop it"),
    ("ner", ["--lora-targets", "all-linear"], "Error: --lora-targets shapes LoRA adapters; add --lora R, or drop it"),
    ("classify", ["--eval-steps", "10"], "Error: --eval-steps needs evaluation data, and there is none; "
                                         "pass --eval FILE"),
    ("ner", ["--patience", "2"], "Error: --patience needs evaluation data, and there is none; pass --eval FILE"),
    ("classify", ["--metric", "macro_f1"], "Error: --metric needs evaluation data, and there is none; "
                                           "pass --eval FILE"),
    ("classify", ["--metric", "f1"], "Error: Invalid value for '--metric': unknown metric 'f1' for classify; "
                                     "choose one of accuracy, macro_f1, loss"),
    ("mlm", ["--eval-fraction", "0", "--max-eval-samples", "5"],
     "Error: --max-eval-samples needs evaluation data, and there is none; pass --eval FILE (or --eval-fraction "
     "above 0)"),
])
def test_train_options_that_would_do_nothing_are_usage_errors(tmp_path, task, args, message):
    out = tmp_path / "out"
    # neither data nor model exists: the command line is judged before any work
    res = invoke(["train", task, "--train", tmp_path / "none.txt", "-m", tmp_path / "no-model", "-o", out, *args])
    assert (res.exit_code, res.stdout) == (2, "")
    assert res.stderr.splitlines()[-1] == message
    assert not out.exists()


def test_held_out_evaluation_still_takes_eval_options(tmp_path):
    # mlm without --eval holds out --eval-fraction (default 0.05): evaluation options apply
    res = invoke(["train", "mlm", "--train", tmp_path / "none.txt", "-m", tmp_path / "no-model", "-o", tmp_path / "o",
                  "--eval-steps", "5", "--metric", "mlm_loss"])
    assert res.exit_code == 1 and "--eval-steps" not in res.stderr  # got as far as the missing model/data
