"""`bertcli train` and `bertcli evaluate` through Click's runner, on a tiny model.

Cross-checks: evaluate's accuracy equals the accuracy of `bertcli classify` predictions
on the same file; the metrics rows on stdout are those written to metrics.json.
"""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from bertcli.cli.main import cli

TEXTS = [("a wonderful moving film", "pos"), ("the food was terrible", "neg"), ("I loved this movie", "pos"),
         ("even worse service", "neg"), ("wonderful and moving", "pos"), ("terrible , worse", "neg")] * 4


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    d = tmp_path_factory.mktemp("data")
    with open(d / "train.jsonl", "w") as f:
        for t, y in TEXTS:
            f.write(json.dumps({"text": t, "label": y}) + "\n")
    with open(d / "dev.tsv", "w") as f:
        f.write("sentence\tlabel\n")
        for t, y in TEXTS[:6]:
            f.write(f"{t}\t{y}\n")
    return d


@pytest.fixture(scope="module")
def trained(encoder_dir, data, tmp_path_factory):
    out = tmp_path_factory.mktemp("run") / "model"
    res = CliRunner().invoke(cli, ["train", "classify", "-m", str(encoder_dir), "--train", str(data / "train.jsonl"),
                                   "--eval", str(data / "dev.tsv"), "-o", str(out), "--epochs", "2",
                                   "-b", "8", "--lr", "1e-3", "--seed", "1", "-f", "jsonl"])
    assert res.exit_code == 0, res.output
    return out, res


def test_train_writes_metrics_rows_and_a_loadable_folder(trained):
    out, res = trained
    rows = [json.loads(line) for line in res.stdout.splitlines()]
    assert [r["epoch"] for r in rows] == [1.0, 2.0]
    assert all(0.0 <= r["accuracy"] <= 1.0 and "macro_f1" in r for r in rows)
    saved = json.loads((out / "metrics.json").read_text())
    assert saved  # the file the CLI's rows came from
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["id2label"] == {"0": "neg", "1": "pos"}
    assert "Saved model to" in res.stderr and "Traceback" not in res.stderr
    assert not (out / "pytorch_model.bin").exists() and (out / "model.safetensors").exists()


def test_evaluate_accuracy_equals_classify_predictions(trained, data):
    out, _ = trained
    r = CliRunner()
    ev = r.invoke(cli, ["evaluate", "-m", str(out), "--data", str(data / "dev.tsv"), "-f", "json"])
    assert ev.exit_code == 0, ev.output
    metrics = json.loads(ev.stdout)
    cl = r.invoke(cli, ["classify", "-m", str(out), "--input", str(data / "dev.tsv"), "--field", "sentence",
                        "-f", "jsonl"])
    assert cl.exit_code == 0, cl.output
    recs = [json.loads(line) for line in cl.stdout.splitlines()]
    acc = sum(rec["label"] == rec["input_label"] for rec in recs) / len(recs)
    assert metrics["n"] == 6
    assert metrics["accuracy"] == pytest.approx(acc)
    cm = metrics["confusion_matrix"]
    assert sum(map(sum, cm["matrix"])) == 6


def test_train_refuses_non_empty_output_and_bad_data(trained, encoder_dir, data, tmp_path):
    out, _ = trained
    r = CliRunner()
    res = r.invoke(cli, ["train", "classify", "-m", str(encoder_dir), "--train", str(data / "train.jsonl"),
                         "-o", str(out), "--max-steps", "1"])
    assert res.exit_code == 1
    assert res.stderr.startswith("Error: ") and "--overwrite" in res.stderr and "Traceback" not in res.stderr
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "ok", "label": "a"}\n{"text": "broken"\n')
    res = r.invoke(cli, ["train", "classify", "-m", str(encoder_dir), "--train", str(bad), "-o",
                         str(tmp_path / "o"), "--max-steps", "1"])
    assert res.exit_code == 1
    assert "bad.jsonl" in res.stderr and "line 2" in res.stderr and "Traceback" not in res.stderr
    res = r.invoke(cli, ["train", "classify", "-m", str(encoder_dir), "--train", str(data / "train.jsonl"),
                         "-o", str(tmp_path / "o2"), "--merge"])
    assert res.exit_code == 2 and "--merge needs --lora" in res.stderr


@pytest.mark.parametrize("args, option", [
    (["mlm", "--mlm-probability", "1.5"], "--mlm-probability"),
    (["mlm", "--mlm-probability", "0"], "--mlm-probability"),
    (["classify", "--lora", "4", "--lora-alpha", "-1"], "--lora-alpha"),
    (["classify", "--lora", "4", "--lora-dropout", "2"], "--lora-dropout"),
])
def test_out_of_range_training_options_are_usage_errors(args, option, tmp_path):
    from click.testing import CliRunner

    from bertcli.cli.main import cli

    res = CliRunner().invoke(cli, ["train", args[0], "--train", str(tmp_path / "x"), "-o", str(tmp_path / "o"), *args[1:]])
    assert res.exit_code == 2
    assert f"Invalid value for '{option}'" in res.stderr and "Traceback" not in res.stderr
    assert not (tmp_path / "o").exists()


def test_evaluate_json_is_rounded_and_folder_errors_are_the_loaders(trained, data, tmp_path):
    out, _ = trained
    r = CliRunner()
    full = json.loads(r.invoke(cli, ["evaluate", "-m", str(out), "--data", str(data / "dev.tsv"), "-f", "json",
                                     "--precision", "12"]).stdout)
    short = json.loads(r.invoke(cli, ["evaluate", "-m", str(out), "--data", str(data / "dev.tsv"), "-f", "json",
                                      "--precision", "3"]).stdout)
    assert short["loss"] == round(full["loss"], 3) and short["accuracy"] == round(full["accuracy"], 3)
    for k, m in full["per_label"].items():
        assert short["per_label"][k]["f1"] == round(m["f1"], 3)
    # A missing or pickle-only folder gets the same one-line error as every other command.
    res = r.invoke(cli, ["evaluate", "-m", str(tmp_path / "nope"), "--data", str(data / "dev.tsv")])
    assert res.exit_code == 1
    assert res.stderr.startswith(f"Error: model folder '{tmp_path / 'nope'}' does not exist")
    pick = tmp_path / "pickled"
    pick.mkdir()
    (pick / "config.json").write_text((out / "config.json").read_text())
    (pick / "pytorch_model.bin").write_bytes(b"not opened")
    res = r.invoke(cli, ["evaluate", "-m", str(pick), "--data", str(data / "dev.tsv")])
    assert res.exit_code == 1 and "pickle" in res.stderr and len(res.stderr.strip().splitlines()) == 1
