"""The same training call runs unchanged under torchrun (2 CPU processes, gloo)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from test_train_run import write_sentiment

ROOT = Path(__file__).resolve().parents[1]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_torchrun_two_cpu_processes(encoder_dir, tmp_path):
    train, dev = write_sentiment(tmp_path / "data")
    out = tmp_path / "out"
    script = tmp_path / "run.py"
    script.write_text(textwrap.dedent(f"""
        import json, os
        from bertcli.train import TrainOptions, train_classify
        events = []
        res = train_classify({str(encoder_dir)!r}, {str(train)!r}, {str(out)!r}, {str(dev)!r},
                             options=TrainOptions(epochs=2, batch_size=8, learning_rate=1e-3, device="cpu",
                                                  logging_steps=2, seed=0),
                             progress=events.append)
        with open(os.path.join({str(tmp_path)!r}, f"rank{{os.environ['RANK']}}.json"), "w") as f:
            json.dump({{"events": [e["event"] for e in events], "step": res.global_step,
                        "metrics": res.metrics}}, f)
    """))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), str(ROOT / "tests")]), OMP_NUM_THREADS="1",
               TOKENIZERS_PARALLELISM="false", HF_HUB_OFFLINE="1")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr", "127.0.0.1",
           "--master_port", str(_free_port()), str(script)]
    p = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stderr[-3000:]
    r0 = json.loads((tmp_path / "rank0.json").read_text())
    r1 = json.loads((tmp_path / "rank1.json").read_text())
    # 64 examples / (8 per process x 2 processes) = 4 steps per epoch
    assert r0["step"] == r1["step"] == 8
    assert r0["events"][0] == "train_begin" and "saved" in r0["events"]
    assert r1["events"] == []  # progress is reported by the main process only
    assert r0["metrics"]["accuracy"] == r1["metrics"]["accuracy"]
    args = json.loads((out / "training_args.json").read_text())
    assert args["world_size"] == 2
    assert not (out / "checkpoints").exists()
    from bertcli.loading import load_model

    lm = load_model(out, "classify", device="cpu")
    assert lm.id2label == {0: "neg", 1: "pos"}
