"""scripts/gpu-check (issue #17, item 6): its CPU-only run, so that the prepared GPU check cannot rot.

``scripts/gpu-check --device cpu --quick`` runs every part on this machine (parity with the
transformers pipeline on the merged shipped defaults, the OOM split-and-retry with a simulated
OOM, bfloat16 training steps, speed at batch 64) in ~45 s on 2 cores; the tests read its JSON
and markdown. The comparison functions are also checked on hand-made outputs, so that a
parity figure of 100 % cannot come from a comparison that sees nothing.
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "gpu-check"
TASKS = ("fill-mask", "nsp", "classify", "sentiment", "ner")


def _module():
    loader = importlib.machinery.SourceFileLoader("gpu_check", str(SCRIPT))
    spec = importlib.util.spec_from_loader("gpu_check", loader)
    mod = importlib.util.module_from_spec(spec)
    loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def gc():
    return _module()


def _run(args, timeout=300):
    env = dict(os.environ, TOKENIZERS_PARALLELISM="false", HF_HUB_OFFLINE="1")
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, env=env,
                          timeout=timeout)


@pytest.fixture(scope="module")
def quick(minilm_dir, tmp_path_factory):
    """One ``--device cpu --quick`` run: (JSON, markdown, stdout)."""
    out = tmp_path_factory.mktemp("gpu-check")
    p = _run(["--device", "cpu", "--quick", "--out", str(out)])
    assert p.returncode == 0, p.stderr[-3000:]
    res = json.loads((out / "gpu-check.json").read_text(encoding="utf-8"))
    return res, (out / "gpu-check.md").read_text(encoding="utf-8"), p.stdout


# ---------------------------------------------------------------- the quick CPU run

def test_environment_is_reported(quick):
    import torch
    import transformers

    res, md, _ = quick
    env = res["env"]
    assert env["device"] == "cpu" and env["name"]
    assert env["torch"] == torch.__version__ and env["transformers"] == transformers.__version__
    assert env["cuda"] is None
    assert res["quick"] is True and res["budget_s"] == 480
    assert 0 < res["elapsed_s"] < res["budget_s"] and res["skipped"] == [] and res["complete"] is True
    assert f"torch {torch.__version__}" in md


def test_parity_float32_equals_the_pipeline_on_every_task(quick):
    res, md, out = quick
    rows = {(r["task"], r["dtype"]): r for r in res["parity"]}
    assert set(rows) == {(t, d) for t in TASKS for d in ("float32", "bfloat16")}
    for task in TASKS:
        r = rows[(task, "float32")]
        assert "error" not in r, r
        assert r["lines"] == 6 and r["agree"] == 6 and r["agreement"] == 1.0, r
        # scores were compared, not an empty zip (ner: one per matched entity)
        assert r["compared_scores"] >= (r.get("entities_matched", 0) or 1 if task == "ner" else 6) > 0, r
        assert 0.0 <= r["max_score_diff"] <= 1e-4 and r["mean_score_diff"] <= r["max_score_diff"], r
        assert (r["min_agreement"], r["score_tol"]) == (1.0, 1e-4) and r["ok"] is True
        assert f"| {task} | float32 | 6 | 100.0 %" in md
        assert any(ln.startswith("ok") and f"parity {task:9} float32" in ln for ln in out.splitlines())
    assert rows[("fill-mask", "float32")]["top5_same"] == 6
    ner = rows[("ner", "float32")]
    assert ner["entities_ref"] > 0 and ner["entities_matched"] == ner["entities_ref"] == ner["entities_ours"]
    assert rows[("sentiment", "float32")]["bertcli_model"].startswith("shipped adapter")


def test_parity_bfloat16_rows_hold_real_figures(quick):
    res, _, _ = quick
    for r in (r for r in res["parity"] if r["dtype"] == "bfloat16"):
        assert "error" not in r, r
        assert r["lines"] == 6 and 0.5 <= r["agreement"] <= 1.0, r
        # bf16 differs from float32 (a difference of 0 would mean the dtype was not applied)
        assert 1e-5 < r["max_score_diff"] < 0.1, r
        assert (r["min_agreement"], r["score_tol"]) == (0.99, 0.05)


def test_oom_split_and_retry_gives_the_unsplit_results(quick):
    res, md, _ = quick
    r = res["oom"]
    assert "error" not in r or r["error"] is None, r
    assert r["mode"].startswith("simulated") and r["batch_size"] == 8 and r["texts"] == 8
    # the whole batch failed once, then its halves ran
    assert r["forward_calls"] == [8, 4, 4] and r["ooms"] == 1
    assert r["equal_labels"] is True and r["max_score_diff"] <= 1e-5 and r["ok"] is True
    # memory of the failed attempt still alive when the retry starts: its simulated activation
    # (8 texts x 48+ tokens x 384 float32) while bertcli.batching retries inside its except
    # clause (the traceback keeps the failed frames), none once it retries after it
    assert r["simulated_oom_mib"] > 0.5 and r["held_at_retry_mib"] in (0.0, r["simulated_oom_mib"])
    assert "| simulated" in md and "| 8, 4, 4 | 1 |" in md


def test_bf16_training_loss_decreases(quick):
    res, md, _ = quick
    r = res["train"]
    assert "error" not in r, r
    assert r["dtype"] == "bfloat16" and r["steps"] == 8 and len(r["losses"]) == 8
    assert all(math.isfinite(x) and x > 0 for x in r["losses"])
    assert r["last_loss"] < r["first_loss"] and r["last_quarter_mean"] < r["first_quarter_mean"]
    assert r["decreased"] is True and r["ok"] is True
    assert r["steps_per_s"] > 0 and r["peak_mib"] is None  # CPU: no CUDA peak
    assert "| 8 | 8 | 16 (" in md


def test_speed_rows_have_positive_rates(quick):
    res, md, out = quick
    rows = {(r["task"], r["dtype"]): r for r in res["speed"]}
    assert set(rows) == {("classify", "float32"), ("ner", "float32")}
    for (task, _), r in rows.items():
        assert "error" not in r, r
        assert r["lines"] == 16 and r["batch_size"] == 64
        assert r["bertcli_lines_s"] > 0 and r["pipeline_lines_s"] > 0
        assert r["ratio"] == pytest.approx(r["bertcli_lines_s"] / r["pipeline_lines_s"])
        assert r["bertcli_lines_s"] == pytest.approx(16 / r["bertcli_seconds"][0])
        assert f"| {task} | float32 | 16 |" in md
    assert "Speed vs the pipeline at batch 64" in md


def test_every_check_passes_and_the_section_says_so(quick):
    res, md, out = quick
    failed = [r for r in res["parity"] + res["speed"] + [res["oom"], res["train"]] if not r["ok"]]
    assert res["failed"] == len(failed)
    # float32, OOM, training and speed must pass; a bf16 parity row may fail on another CPU
    assert all(r.get("dtype") == "bfloat16" and r in res["parity"] for r in failed), failed
    if not failed:
        assert res["ok"] is True and f"all {res['ran']} checks pass" in md and "FAIL" not in out
    assert md.startswith("### GPU check: ") and sum(ln.startswith("|---|") for ln in md.splitlines()) == 4


# ---------------------------------------------------------------- cheap runs and pieces

def test_help_lists_the_options():
    p = _run(["--help"], timeout=60)
    assert p.returncode == 0
    for opt in ("--device", "--out", "--quick", "--budget-s", "--strict"):
        assert opt in p.stdout


def test_budget_skips_rows_and_says_so(tmp_path):
    p = _run(["--device", "cpu", "--quick", "--budget-s", "0", "--parts", "oom,train", "--strict", "--out",
              str(tmp_path)], timeout=120)
    assert p.returncode == 1, p.stderr[-2000:]  # --strict: nothing passed, so exit status 1
    res = json.loads((tmp_path / "gpu-check.json").read_text())
    assert res["oom"] is None and res["train"] is None and res["parity"] == [] and res["speed"] == []
    assert [s.split(" (")[0] for s in res["skipped"]] == ["oom", "train"]
    assert res["ok"] is False and res["complete"] is False and res["ran"] == 0
    assert "nothing ran, 2 skipped" in p.stdout and "Skipped: oom (needs" in (tmp_path / "gpu-check.md").read_text()


def test_missing_cuda_is_refused_with_status_2(tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    p = _run(["--out", str(tmp_path)], timeout=120)
    assert p.returncode == 2 and "not available" in p.stderr and "--device cpu" in p.stderr


def test_builtin_lines_when_the_shared_data_is_absent(gc, tmp_path, monkeypatch):
    monkeypatch.setattr(gc.bench, "SHARED", tmp_path / "nothing")
    sents = [s for s, _ in gc.BUILTIN]
    lines, src = gc.general_lines(100)
    assert len(lines) == len(set(lines)) == 100 and src.startswith("built-in")
    assert lines[:30] == sents  # the sentences, then distinct pairs of them
    assert all(any(ln == f"{a} {b}" for a in sents for b in sents if a != b) for ln in lines[30:])
    assert len(gc.builtin_lines(1000)) == 1000 and len(set(gc.builtin_lines(900))) == 900
    rows, src = gc.sst2_train_lines(40)
    assert rows == [gc.BUILTIN[i % 30] for i in range(40)] and {y for _, y in rows} == {0, 1}
    assert gc.conll_sentences(10) == []
    lines, _ = gc.ner_lines(8)
    assert lines == [s for s, _ in gc.BUILTIN[:8]]
    assert gc.cycled(["a", "b"], 5) == ["a", "b", "a", "b", "a"]


def test_shared_lines_when_present(gc, shared_data):
    lines, src = gc.general_lines(12)
    assert len(lines) == 12 and src.startswith("real") and not set(lines) & {s for s, _ in gc.BUILTIN}
    conll = gc.conll_sentences(5)
    assert len(conll) == 5 and all(len(s.split()) >= 5 for s in conll)
    rows, src = gc.sst2_train_lines(20)
    assert src == "sst2 train" and len(rows) == 20 and {y for _, y in rows} <= {0, 1}


def test_compare_classify_counts_flips_and_score_differences(gc):
    ours = [{"label": "positive", "labels": [{"label": "positive", "score": 0.9}, {"label": "negative", "score": 0.1}]},
            {"label": "negative", "labels": [{"label": "negative", "score": 0.6}, {"label": "positive", "score": 0.4}]}]
    ref = [[{"label": "positive", "score": 0.91}, {"label": "negative", "score": 0.09}],
           [{"label": "positive", "score": 0.55}, {"label": "negative", "score": 0.45}]]
    r = gc.compare_classify(ours, ref)
    assert (r["lines"], r["agree"], r["agreement"], r["compared_scores"]) == (2, 1, 0.5, 4)
    assert r["max_score_diff"] == pytest.approx(0.15) and r["mean_score_diff"] == pytest.approx(0.08)


def test_compare_fill_mask_ties_only_in_half_precision(gc):
    def preds(*pairs):
        return [{"token": t, "score": s} for t, s in pairs]

    ours = [{"predictions": [preds((1, 0.0222), (2, 0.0215))]}, {"predictions": [preds((5, 0.5), (6, 0.1))]}]
    ref = [preds((2, 0.0216), (1, 0.0216)), preds((6, 0.4), (5, 0.3))]
    strict = gc.compare_fill_mask(ours, ref, 0.0)
    assert (strict["agree"], strict["strict_agree"], strict["top5_same"]) == (0, 0, 0)
    assert strict["max_score_diff"] == pytest.approx(0.3)
    tied = gc.compare_fill_mask(ours, ref, gc.TIE_REL["bfloat16"])
    assert (tied["agree"], tied["strict_agree"]) == (1, 0)  # the exact tie agrees, the real flip does not


def test_compare_nsp_and_ner(gc):
    r = gc.compare_nsp([{"is_next": True, "score": 0.7}, {"is_next": False, "score": 0.49}], [0.71, 0.52])
    assert (r["agree"], r["max_score_diff"]) == (1, pytest.approx(0.03))
    text = "Angela Merkel met Emmanuel Macron in Paris."
    ours = [{"entities": [{"entity_group": "PER", "start": 0, "end": 13, "score": 0.99},
                          {"entity_group": "LOC", "start": 35, "end": 40, "score": 0.9}]}]
    ref = [[{"entity_group": "PER", "start": 0, "end": 13, "score": 0.98},
            {"entity_group": "PER", "start": 18, "end": 33, "score": 0.97},
            {"entity_group": "LOC", "start": 35, "end": 40, "score": 0.95}]]
    r = gc.compare_ner(ours, ref, [text])
    assert (r["entities_matched"], r["entities_ours"], r["entities_ref"], r["lines_identical"]) == (2, 2, 3, 0)
    assert r["agreement"] == pytest.approx(2 * 2 / 5) and r["max_score_diff"] == pytest.approx(0.05)
    # the pipeline's span inside a grapheme cluster is widened as bertcli reports it
    text = "Cafe\u0301 Mu\u0308ller"
    r = gc.compare_ner([{"entities": [{"entity_group": "ORG", "start": 0, "end": 5, "score": 0.5}]}],
                       [[{"entity_group": "ORG", "start": 0, "end": 4, "score": 0.5}]], [text])
    assert r["agreement"] == 1.0 and r["lines_identical"] == 1


def test_budget_counts_from_its_start(gc):
    b = gc.Budget(100.0, t0=0.0)
    assert b.elapsed() > 0 and b.left() < 100.0
    b = gc.Budget(1000.0)
    assert b.allows(10) and not b.allows(2000)
