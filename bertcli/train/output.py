"""Writing the trained model folder: weights (safetensors, or a LoRA adapter), tokenizer,
``training_args.json``, ``metrics.json`` and the model card."""

from __future__ import annotations

import json
import math
import os
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import BertcliError
from .checkpoints import ARTIFACTS, _atomic_json
from .options import TrainOptions, TrainResult

if TYPE_CHECKING:
    from .core import _Job


def _save(job: _Job, net, opts: TrainOptions, result: TrainResult, dev, dt, world: int) -> None:
    """Write the model folder (see :mod:`bertcli.train.core` for its files)."""
    out = job.output
    out.mkdir(parents=True, exist_ok=True)
    for p in out.glob("*.safetensors"):
        p.unlink()  # a resumed run must not leave a stale weights file next to the new one
    is_peft = hasattr(net, "peft_config")
    if is_peft and opts.merge:
        net = net.merge_and_unload()
        is_peft = False
    if is_peft:
        net.save_pretrained(str(out))
        inner = net.get_base_model()
        # config.json names the task architecture (it still says BertModel when the
        # base was a bare encoder), so the folder reads as a classifier/tagger.
        inner.config.architectures = [type(inner).__name__]
        inner.config.save_pretrained(str(out))
        acfg_path = out / "adapter_config.json"
        acfg = json.loads(acfg_path.read_text(encoding="utf-8"))
        # The packaged encoder is named by its alias so the adapter works on any machine
        # that has the package; any other base is recorded as an absolute path.
        acfg["base_model_name_or_path"] = _base_name(job.base, absolute=True)
        _atomic_json(acfg_path, acfg)
    else:
        net.save_pretrained(str(out), safe_serialization=True)
    job.tokenizer.save_pretrained(str(out))
    args = {"task": job.task, "base_model": _base_name(job.base), "options": asdict(opts), "data": job.data_info,
            "device": str(dev), "dtype": str(dt).replace("torch.", ""), "world_size": world,
            "labels": job.labels, "adapter": bool(is_peft)}
    _atomic_json(out / "training_args.json", args)
    _atomic_json(out / "metrics.json", {"task": job.task, "metric_for_best_model": job.metric,
                                        "best_step": result.best_step, "best": result.metrics,
                                        "epochs": result.history, "evaluations": result.evaluations,
                                        "global_step": result.global_step, "stopped_early": result.stopped_early})
    (out / "README.md").write_text(_model_card(job, opts, result, is_peft), encoding="utf-8")
    _umask_modes(out)


def _base_name(base: Path, absolute: bool = False) -> str:
    """How a written folder names its base model: the installed default encoder by its
    package name (the folder is then portable, and no builder's site-packages path leaks
    into cards), any other base as given (``absolute``: resolved)."""
    from .. import defaults

    try:
        packaged = defaults.default_encoder_dir().resolve()
    except BertcliError:
        packaged = None
    if base.resolve() == packaged:
        return defaults.ENCODER_PACKAGE
    return str(base.resolve()) if absolute else str(base)


def _umask_modes(out: Path) -> None:
    """Give the files a run wrote the mode a plain new file gets (0666 minus the umask):
    some writers create them as private temporary files (0600) and rename them."""
    mask = os.umask(0)
    os.umask(mask)
    for p in out.iterdir():
        if p.is_file() and not p.is_symlink() and (p.name in ARTIFACTS or p.name.endswith(".safetensors")):
            os.chmod(p, 0o666 & ~mask)


def _fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:.4f}" if math.isfinite(v) else str(v)
    return str(v)


def _model_card(job: _Job, opts: TrainOptions, result: TrainResult, is_peft: bool) -> str:
    lines = [f"# {job.output.name}", "",
             f"A `{job.task}` model trained with bertcli (transformers `Trainer`).", "",
             "## Base model", "", f"- `{_base_name(job.base)}`" + (" (LoRA adapter; the base is loaded first)" if is_peft else ""),
             "", "## Data", ""]
    for k, v in job.data_info.items():
        lines.append(f"- {k}: {v}")
    if job.labels:
        shown = ", ".join(job.labels[:30]) + (", ..." if len(job.labels) > 30 else "")
        lines += ["", f"Labels ({len(job.labels)}): {shown}"]
    lines += ["", "## Training", "",
              f"- epochs {opts.epochs}, max_steps {opts.max_steps}, learning rate {opts.learning_rate}, "
              f"batch size {opts.batch_size} x {opts.grad_accum} accumulation, warmup {opts.warmup}, "
              f"weight decay {opts.weight_decay}, max_length {opts.max_length}, seed {opts.seed}",
              f"- steps done: {result.global_step}" + (" (stopped early)" if result.stopped_early else "")]
    if opts.lora:
        lines.append(f"- LoRA rank {opts.lora}" + (f" in the top {opts.lora_layers} layers" if opts.lora_layers else "")
                     + (" (merged into the weights)" if opts.merge else ""))
    if opts.head_lr:
        lines.append(f"- head and pooler learning rate {opts.head_lr}")
    if opts.freeze_encoder:
        lines.append("- encoder frozen (head only)")
    if result.metrics:
        lines += ["", f"## Evaluation (best by `{job.metric}`, step {result.best_step})", "",
                  "| metric | value |", "|---|---|"]
        for k, v in result.metrics.items():
            if isinstance(v, (int, float)):
                lines.append(f"| {k} | {_fmt(v)} |")
    if result.history:
        lines += ["", "## Per epoch", "", "| epoch | step | train loss | eval |", "|---|---|---|---|"]
        for h in result.history:
            ev = h.get(f"eval_{job.metric}")
            lines.append(f"| {_fmt(h['epoch'])} | {h['step']} | {_fmt(h.get('train_loss'))} | "
                         f"{_fmt(ev) if ev is not None else ''} |")
    if opts.command:
        lines += ["", "## Command", "", "```", opts.command, "```"]
    return "\n".join(lines) + "\n"
