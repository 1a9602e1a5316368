"""Training faults: a run killed with SIGKILL mid-epoch resumes to the uninterrupted result;
half-written checkpoints are never picked; bad data lines and bad options stop the run before
any training step; files are written with the umask's modes.

The kill test runs ``bertcli train classify`` as a real subprocess (the only way to be
killed without any cleanup), on a tiny model and 64 generated examples.
"""

from __future__ import annotations

import json
import math
import os
import select
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner
from safetensors.torch import load_file

from bertcli.cli.main import cli
from bertcli.errors import DataError
from bertcli.train import TrainError, TrainOptions, read_documents, train_classify
from bertcli.train.checkpoints import COMPLETE_MARKER
from test_train_run import write_sentiment
from tiny import build_model

STEPS_PER_EPOCH = 16  # 64 examples, batch size 4
ENV = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", TOKENIZERS_PARALLELISM="false",
           PYTHONUNBUFFERED="1", HF_HUB_OFFLINE="1")
ENV.pop("BERTCLI_MODEL", None)


@pytest.fixture(scope="module")
def dropout_encoder(tmp_path_factory):
    # Dropout on, so that the restored RNG states matter for the result.
    return build_model(tmp_path_factory.mktemp("enc_dropout"), "encoder", hidden_dropout_prob=0.1,
                       attention_probs_dropout_prob=0.1)


def train_cmd(model, train, dev, out, *extra):
    return [sys.executable, "-m", "bertcli", "train", "classify", "-m", str(model), "--train", str(train),
            "--eval", str(dev), "-o", str(out), "--epochs", "3", "-b", "4", "--eval-steps", "4", "--lr", "1e-3",
            "--seed", "7", "--device", "cpu", "--logging-steps", "1000", "-f", "jsonl", *extra]


def assert_same(a, b, where="metrics.json"):
    """Equal JSON values, floats to 1e-6."""
    if isinstance(a, float) or isinstance(b, float):
        assert isinstance(a, (int, float)) and isinstance(b, (int, float)), where
        assert math.isclose(a, b, rel_tol=0, abs_tol=1e-6), f"{where}: {a} != {b}"
    elif isinstance(a, dict):
        assert isinstance(b, dict) and a.keys() == b.keys(), f"{where}: {sorted(a)} != {sorted(b)}"
        for k in a:
            assert_same(a[k], b[k], f"{where}.{k}")
    elif isinstance(a, list):
        assert isinstance(b, list) and len(a) == len(b), f"{where}: {len(a)} items != {len(b)}"
        for i, (x, y) in enumerate(zip(a, b)):
            assert_same(x, y, f"{where}[{i}]")
    else:
        assert a == b, f"{where}: {a!r} != {b!r}"


def complete_steps(ckpt_dir: Path) -> list[int]:
    return sorted(int(p.name[11:]) for p in ckpt_dir.glob("checkpoint-*") if (p / COMPLETE_MARKER).is_file())


def run_until_eval_step(cmd, step: int, stderr_path: Path, timeout: float = 600) -> list[dict]:
    """Start ``cmd``, read its metrics rows, SIGKILL it as soon as the row of ``step`` appears."""
    with open(stderr_path, "w") as err:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=err, env=ENV, text=True)
    rows, deadline = [], time.monotonic() + timeout
    try:
        while True:
            ready, _, _ = select.select([proc.stdout], [], [], max(0.0, deadline - time.monotonic()))
            assert ready, "no metrics row in time"
            line = proc.stdout.readline()
            assert line, f"the run ended before step {step} (rc {proc.wait()}): {stderr_path.read_text()[-2000:]}"
            rows.append(json.loads(line))
            if rows[-1]["step"] == step:
                proc.send_signal(signal.SIGKILL)
                break
    finally:
        if proc.poll() is None:
            proc.kill()  # SIGKILL (again, or after a failed assertion)
        proc.wait()
        proc.stdout.close()
    assert proc.returncode == -signal.SIGKILL
    return rows


@pytest.mark.slow  # three subprocess runs: 25-40 s on 2 busy cores
def test_sigkill_mid_epoch_then_resume_equals_uninterrupted_run(dropout_encoder, tmp_path):
    train, dev = write_sentiment(tmp_path / "data", n_train=64, n_dev=16)
    full, cut = tmp_path / "full", tmp_path / "cut"

    ref = subprocess.run(train_cmd(dropout_encoder, train, dev, full), env=ENV, capture_output=True, text=True,
                         timeout=600)
    assert ref.returncode == 0, ref.stderr[-3000:]
    ref_rows = [json.loads(line) for line in ref.stdout.splitlines()]
    assert [r["step"] for r in ref_rows] == list(range(4, 3 * STEPS_PER_EPOCH + 1, 4))

    # Killed (SIGKILL: no handler, no cleanup) as soon as the evaluation of step 24 is
    # printed: mid-epoch 2 (steps 17-32), checkpoint-20 complete, checkpoint-24 being
    # written or done (a descheduled test process could let the run go a bit further).
    rows = run_until_eval_step(train_cmd(dropout_encoder, train, dev, cut), 24, tmp_path / "cut.err")
    assert_same(rows, ref_rows[:len(rows)], "rows before the kill")
    ck = cut / "checkpoints"
    assert not (cut / "metrics.json").exists() and not (cut / "model.safetensors").exists()
    last = complete_steps(ck)[-1]
    assert 20 <= last < 3 * STEPS_PER_EPOCH

    # Checkpoints half-written at the moment of a kill: newer than the last complete one,
    # without the marker, with truncated files. They must never be picked.
    half = ck / "checkpoint-100"
    shutil.copytree(ck / f"checkpoint-{last}", half)
    (half / COMPLETE_MARKER).unlink()
    for name in ("model.safetensors", "optimizer.pt", "trainer_state.json"):
        data = (half / name).read_bytes()
        (half / name).write_bytes(data[: len(data) // 2])
    (ck / "checkpoint-104").mkdir()
    (ck / "checkpoint-104" / "trainer_state.json").write_text('{"global_step": 104, "log_hi')

    res = subprocess.run(train_cmd(dropout_encoder, train, dev, cut, "--resume"), env=ENV, capture_output=True,
                         text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    for n in (100, 104):
        assert (f"Warning: incomplete checkpoint '{ck / f'checkpoint-{n}'}' (no {COMPLETE_MARKER}) ignored and "
                "removed") in res.stderr.splitlines()
    resumed_rows = [json.loads(line) for line in res.stdout.splitlines()]
    assert resumed_rows[0]["step"] == last + 4  # continued from the last complete checkpoint
    assert_same(resumed_rows, ref_rows[last // 4:], "rows after the resume")
    assert not ck.exists()

    a = json.loads((full / "metrics.json").read_text())
    b = json.loads((cut / "metrics.json").read_text())
    assert a["global_step"] == 3 * STEPS_PER_EPOCH and len(a["epochs"]) == 3
    assert_same(b, a)  # every evaluation, the per-epoch train losses, the best step and metrics
    wa, wb = load_file(str(full / "model.safetensors")), load_file(str(cut / "model.safetensors"))
    assert wa.keys() == wb.keys() and len(wa) > 20
    for k in wa:
        assert wa[k].shape == wb[k].shape, k
        assert float((wa[k] - wb[k]).abs().max()) <= 1e-6, k


# ---------------------------------------------------------------- bad data, before any step

def _bad_data(d: Path):
    good = "".join(f"{'wonderful film' if i % 2 else 'terrible food'}\t{'pos' if i % 2 else 'neg'}\n" for i in range(16))
    (d / "train.tsv").write_text("sentence\tlabel\n" + good)
    (d / "no_label.tsv").write_text("sentence\tlabel\n" + good + "a row without its label\nok film\tpos\n")
    (d / "dev_unknown.tsv").write_text("sentence\tlabel\ngood film\tpos\nso-so film\tneutral\n")
    (d / "bad.jsonl").write_text('{"text": "a", "label": "x"}\n{"text": "b", "label": "y"}\n{"text": "c", "label": \n')
    (d / "no_label.jsonl").write_text('{"text": "a", "label": "x"}\n{"text": "b"}\n{"text": "c", "label": "y"}\n')
    (d / "ner.txt").write_text("Paris B-LOC\nis O\n\nBerlin\nwas O\n")
    (d / "ner_ok.txt").write_text("Paris B-LOC\nis O\n\nBerlin B-LOC\nwas O\n")
    (d / "ner_dev.txt").write_text("Paris B-LOC\n\nBerlin B-GPE\n")
    return {
        "tsv_row_without_label": (["classify", "--train", d / "no_label.tsv"],
                                  f"{d}/no_label.tsv, line 18: row has 1 columns, expected 2; TSV files are read "
                                  "without quoting; check for a stray TAB"),
        "unknown_label_in_eval": (["classify", "--train", d / "train.tsv", "--eval", d / "dev_unknown.tsv"],
                                  f"{d}/dev_unknown.tsv, line 3: label 'neutral' is not among the training labels "
                                  "(neg, pos); every evaluation label must occur in the training data (or in --labels)"),
        "malformed_jsonl": (["classify", "--train", d / "bad.jsonl"],
                            f"{d}/bad.jsonl, line 3: malformed JSON: Expecting value at column 24"),
        "jsonl_without_label": (["classify", "--train", d / "no_label.jsonl"],
                                f"{d}/no_label.jsonl, line 2: missing label field 'label'"),
        "conll_line_without_tag": (["ner", "--train", d / "ner.txt"],
                                   f"{d}/ner.txt, line 4: expected a token and a tag (at least 2 columns), got 1; "
                                   "CoNLL lines are TOKEN ... TAG; sentences are separated by blank lines"),
        "unknown_tag_in_eval": (["ner", "--train", d / "ner_ok.txt", "--eval", d / "ner_dev.txt"],
                                f"{d}/ner_dev.txt, line 3: tag 'B-GPE' is not among the training tags ..."),
    }


BAD_DATA = ["tsv_row_without_label", "unknown_label_in_eval", "malformed_jsonl", "jsonl_without_label",
            "conll_line_without_tag", "unknown_tag_in_eval"]


@pytest.mark.parametrize("case", BAD_DATA)
def test_bad_data_line_is_reported_before_training(case, encoder_dir, tmp_path):
    d = tmp_path / "data"
    d.mkdir()
    args, expected = _bad_data(d)[case]
    out = tmp_path / "out"
    # (--eval-steps without --eval is a usage error of its own: tests/test_everyday_options.py)
    evals = ["--eval-steps", "1"] if "--eval" in args else []
    res = CliRunner().invoke(cli, ["train", *map(str, args), "-m", str(encoder_dir), "-o", str(out), "--epochs", "1",
                                   *evals, "-f", "jsonl"])
    assert res.exception is None or isinstance(res.exception, SystemExit), res.exc_info
    assert res.exit_code == 1
    assert res.stdout == ""  # no metrics row: no evaluation ran
    assert "step " not in res.stderr and "Traceback" not in res.stderr  # no training step either
    line = res.stderr.rstrip("\n")
    assert res.stderr.count("\n") == 1
    if expected.endswith("..."):
        assert line.startswith("Error: " + expected[:-3]), line
    else:
        assert line == "Error: " + expected
    assert not (out / "checkpoints").exists() and not (out.exists() and any(out.iterdir()))


def test_bad_eval_label_stops_the_api_before_train_begin(encoder_dir, tmp_path):
    d = tmp_path / "data"
    d.mkdir()
    _bad_data(d)
    events = []
    with pytest.raises(DataError, match=r"dev_unknown.tsv, line 3: label 'neutral'"):
        train_classify(encoder_dir, d / "train.tsv", tmp_path / "out", d / "dev_unknown.tsv",
                       options=TrainOptions(epochs=1, device="cpu"), progress=events.append)
    assert events == []  # not even train_begin
    assert not (tmp_path / "out" / "checkpoints").exists()


# ---------------------------------------------------------------- options checked before any work

@pytest.mark.parametrize("task, extra, metric, known", [
    ("classify", [], "unknown", "accuracy, macro_f1, loss"),
    ("classify", ["--multi-label"], "accuracy", "subset_accuracy, micro_f1, macro_f1, loss"),
    ("ner", [], "macro_f1", "f1, precision, recall, accuracy, loss"),
    ("mlm", [], "nsp_accuracy", "mlm_loss, perplexity, top1_accuracy, top5_accuracy, loss"),
])
def test_unknown_metric_is_a_usage_error_before_any_work(task, extra, metric, known, tmp_path):
    out = tmp_path / "out"
    # The data and model do not even exist: the option is judged first.
    res = CliRunner().invoke(cli, ["train", task, "--train", str(tmp_path / "none.txt"), "-m", str(tmp_path / "nomodel"),
                                   "-o", str(out), "--metric", metric, *extra])
    assert res.exit_code == 2 and res.stdout == ""
    assert res.stderr.splitlines()[-1] == (
        f"Error: Invalid value for '--metric': unknown metric '{metric}' for {task}"
        f"{' (multi-label)' if extra else ''}; choose one of {known}")
    assert not out.exists()


def test_unknown_metric_in_the_api_fails_before_training(encoder_dir, tmp_path):
    train, dev = write_sentiment(tmp_path / "data", n_train=16, n_dev=8)
    events = []
    with pytest.raises(TrainError, match=r"unknown metric 'f1' for classify \(choose one of accuracy, macro_f1, loss\)"):
        train_classify(encoder_dir, train, tmp_path / "out", dev,
                       options=TrainOptions(epochs=1, device="cpu", metric="f1"), progress=events.append)
    assert events == [] and not (tmp_path / "out" / "checkpoints").exists()


def test_eval_prefixed_metric_and_file_modes_follow_the_umask(encoder_dir, tmp_path):
    train, dev = write_sentiment(tmp_path / "data", n_train=16, n_dev=8)
    out = tmp_path / "out"
    old = os.umask(0o022)
    try:
        res = CliRunner().invoke(cli, ["train", "classify", "-m", str(encoder_dir), "--train", str(train), "--eval",
                                       str(dev), "-o", str(out), "--max-steps", "2", "-b", "8", "--metric",
                                       "eval_macro_f1", "--device", "cpu", "-f", "jsonl"])
    finally:
        os.umask(old)
    assert res.exit_code == 0, res.output
    assert json.loads((out / "metrics.json").read_text())["metric_for_best_model"] == "macro_f1"
    modes = {p.name: oct(p.stat().st_mode & 0o777) for p in out.iterdir() if p.is_file()}
    assert "model.safetensors" in modes and "config.json" in modes
    assert set(modes.values()) == {"0o644"}, modes


# ---------------------------------------------------------------- mlm: documents

def test_mlm_nsp_on_one_document_hints_documents_blank_line(encoder_dir, tmp_path):
    one = tmp_path / "book.txt"
    one.write_text("".join(f"Sentence number {i} is here. And another one follows.\n" for i in range(30)))
    out = tmp_path / "out"
    res = CliRunner().invoke(cli, ["train", "mlm", "-m", str(encoder_dir), "--train", str(one), "-o", str(out),
                                   "--nsp", "--max-steps", "1"])
    assert res.exit_code == 1 and res.stdout == ""
    assert res.stderr == (f"Error: {one}: next-sentence pairs need at least two documents, found 1; put a blank "
                          "line between documents and pass --documents blank-line, or pass a folder with one file "
                          "per document\n")
    assert not (out / "checkpoints").exists()
    # Following the hint gives documents.
    one.write_text("First document. It has two sentences.\n\nSecond document here. Also two.\n")
    docs, _ = read_documents(one, documents="blank-line")
    assert [len(doc.sentences) for doc in docs] == [2, 2]
