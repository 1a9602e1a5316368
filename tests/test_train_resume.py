"""Interrupt / resume: a resumed run ends where an uninterrupted one does; half-written
checkpoints are never picked."""

from __future__ import annotations

import json

import numpy as np
import pytest
from safetensors.torch import load_file

from bertcli.train import TrainError, train_classify
from bertcli.train.checkpoints import COMPLETE_MARKER, last_complete_checkpoint
from test_train_run import opts, write_sentiment
from tiny import build_model


class Interrupt(Exception):
    pass


@pytest.fixture(scope="module")
def dropout_encoder(tmp_path_factory):
    # Dropout on, so the restored RNG state matters for the result.
    return build_model(tmp_path_factory.mktemp("enc_dropout"), "encoder", hidden_dropout_prob=0.1,
                       attention_probs_dropout_prob=0.1)


# 8 steps per epoch: step 12 is mid-epoch 2, step 16 the last step of epoch 2 (its
# checkpoint is saved before the Trainer's epoch end, which the resumed run must close).
@pytest.mark.parametrize("stop", [12, 16])
def test_resume_reaches_same_result(dropout_encoder, tmp_path, stop):
    train, dev = write_sentiment(tmp_path / "data")
    o = dict(epochs=3, eval_steps=4, save_total_limit=3)
    full = train_classify(dropout_encoder, train, tmp_path / "full", dev, options=opts(**o))

    def stop_at(event):
        if event["event"] == "checkpoint" and event["step"] == stop:
            raise Interrupt()

    out = tmp_path / "cut"
    with pytest.raises(Interrupt):
        train_classify(dropout_encoder, train, out, dev, options=opts(**o), progress=stop_at)
    ck = out / "checkpoints"
    assert (ck / f"checkpoint-{stop}" / COMPLETE_MARKER).is_file()
    assert not (out / "model.safetensors").exists()
    # A run killed while writing its next checkpoint leaves a folder without the marker
    # (here with a truncated weights file too).
    half = ck / f"checkpoint-{stop + 4}"
    half.mkdir()
    (half / "config.json").write_text("{")
    data = (ck / f"checkpoint-{stop}" / "model.safetensors").read_bytes()
    (half / "model.safetensors").write_bytes(data[: len(data) // 3])
    assert last_complete_checkpoint(ck, clean=False)[0] == ck / f"checkpoint-{stop}"

    with pytest.raises(TrainError, match="not empty"):
        train_classify(dropout_encoder, train, out, dev, options=opts(**o))
    with pytest.raises(TrainError, match=r"cannot resume: learning_rate, seed differ"):
        train_classify(dropout_encoder, train, out, dev, options=opts(resume=True, learning_rate=0.1, seed=3, **o))
    events = []
    resumed = train_classify(dropout_encoder, train, out, dev, options=opts(resume=True, **o),
                             progress=events.append)
    begin = next(e for e in events if e["event"] == "train_begin")
    assert begin["resumed_from"] == str(ck / f"checkpoint-{stop}") and begin["global_step"] == stop
    assert any(f"incomplete checkpoint '{half}'" in e.get("message", "") for e in events)
    assert resumed.global_step == full.global_step == 24
    assert [e["step"] for e in resumed.evaluations] == [4, 8, 12, 16, 20, 24]
    for a, b in zip(resumed.evaluations, full.evaluations):
        assert a["step"] == b["step"]
        assert a["loss"] == pytest.approx(b["loss"], abs=1e-6)
        assert a["accuracy"] == b["accuracy"]
    # Per-epoch training losses too: the interrupted epoch's sum continues from the checkpoint.
    assert [(h["epoch"], h["step"]) for h in resumed.history] == [(1.0, 8), (2.0, 16), (3.0, 24)]
    assert [(h["epoch"], h["step"]) for h in full.history] == [(1.0, 8), (2.0, 16), (3.0, 24)]
    for a, b in zip(resumed.history, full.history):
        assert a["train_loss"] == pytest.approx(b["train_loss"], abs=1e-6)
    assert resumed.best_step == full.best_step
    assert resumed.metrics["loss"] == pytest.approx(full.metrics["loss"], abs=1e-6)
    wa = load_file(str(tmp_path / "full" / "model.safetensors"))
    wb = load_file(str(out / "model.safetensors"))
    assert wa.keys() == wb.keys()
    for k in wa:
        np.testing.assert_allclose(wb[k].numpy(), wa[k].numpy(), atol=1e-6, err_msg=k)
    assert not ck.exists()
    assert json.loads((out / "metrics.json").read_text())["global_step"] == 24


def test_resume_without_checkpoint_starts_over(encoder_dir, tmp_path):
    train, _ = write_sentiment(tmp_path / "data", n_train=16)
    events = []
    res = train_classify(encoder_dir, train, tmp_path / "out", options=opts(epochs=1, resume=True),
                         progress=events.append)
    assert res.global_step == 2
    assert any("starting from the beginning" in e.get("message", "") for e in events)
    with pytest.raises(TrainError, match="nothing to resume"):
        train_classify(encoder_dir, train, tmp_path / "out", options=opts(epochs=1, resume=True))
