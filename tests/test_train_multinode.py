"""``torchrun --nnodes 2 ... -m bertcli train``: the CLI trains across two "nodes" (two
torchrun launchers on this machine meeting at a c10d rendezvous, one CPU process each),
and a run resumed that way from its last complete checkpoint ends with the very weights of
the uninterrupted one. test_train_dist.py runs the Python API under one launcher."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from test_train_run import write_sentiment

ROOT = Path(__file__).resolve().parents[1]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def two_nodes(args: list[str], cwd: Path, run_id: str) -> list[subprocess.CompletedProcess]:
    """Start two ``torchrun --nnodes 2 --nproc-per-node 1`` launchers (c10d rendezvous)."""
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1", TOKENIZERS_PARALLELISM="false",
               HF_HUB_OFFLINE="1")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nnodes", "2", "--nproc-per-node", "1",
           "--rdzv-backend", "c10d", "--rdzv-endpoint", f"127.0.0.1:{_free_port()}", "--rdzv-id", run_id,
           "-m", "bertcli", *args]
    procs = [subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(2)]
    out = []
    for p in procs:
        so, se = p.communicate(timeout=600)
        out.append(subprocess.CompletedProcess(cmd, p.returncode, so, se))
    return out


@pytest.mark.slow
def test_cli_two_nodes_and_rank_safe_resume(encoder_dir, tmp_path):
    train, dev = write_sentiment(tmp_path / "data")
    args = ["train", "classify", "-m", str(encoder_dir), "--train", str(train), "--eval", str(dev),
            "--max-steps", "8", "--eval-steps", "4", "-b", "8", "--lr", "1e-3", "--device", "cpu", "--seed", "0",
            "--keep-checkpoints", "-f", "jsonl"]
    full = tmp_path / "full"
    runs = two_nodes([*args, "-o", str(full)], tmp_path, "full")
    for r in runs:
        assert r.returncode == 0, r.stderr[-3000:]
    # one launcher's process got rank 0: it alone prints metrics rows and the Done line
    outs = sorted(runs, key=lambda r: -len(r.stdout))
    assert [json.loads(ln)["step"] for ln in outs[0].stdout.splitlines()] == [4, 8]
    assert outs[1].stdout == "" and "Done:" not in outs[1].stderr and outs[0].stderr.count("Done: 8 steps") == 1
    assert json.loads((full / "training_args.json").read_text())["world_size"] == 2
    ck = full / "checkpoints"
    assert sorted(p.name for p in ck.iterdir()) == ["checkpoint-4", "checkpoint-8", "run_options.json"]
    assert {p.name for p in (ck / "checkpoint-4").glob("rng_state_*.pth")} == {"rng_state_0.pth", "rng_state_1.pth"}

    # an interrupted run: checkpoint-4 complete, checkpoint-6 half-written (no marker), no final model
    cut = tmp_path / "cut"
    (cut / "checkpoints").mkdir(parents=True)
    shutil.copytree(ck / "checkpoint-4", cut / "checkpoints" / "checkpoint-4")
    shutil.copy(ck / "run_options.json", cut / "checkpoints")
    shutil.copytree(ck / "checkpoint-4", cut / "checkpoints" / "checkpoint-6")
    (cut / "checkpoints" / "checkpoint-6" / "bertcli_complete.json").unlink()
    runs = two_nodes([*args, "-o", str(cut), "--resume"], tmp_path, "resume")
    for r in runs:
        assert r.returncode == 0, r.stderr[-3000:]
    err = "".join(r.stderr for r in runs)
    assert err.count("incomplete checkpoint") == 1 and "checkpoint-6" in err  # said (and removed) once, by rank 0
    assert sorted(p.name for p in (cut / "checkpoints").iterdir()) == ["checkpoint-4", "checkpoint-8",
                                                                       "run_options.json"]
    assert (cut / "model.safetensors").read_bytes() == (full / "model.safetensors").read_bytes()
    a, b = (json.loads((d / "metrics.json").read_text()) for d in (cut, full))
    assert a["evaluations"] == b["evaluations"] and a["best_step"] == b["best_step"] == 8
