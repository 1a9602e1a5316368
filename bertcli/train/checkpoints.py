"""The output folder and Trainer checkpoints: clearing a previous run's files, the
completion marker that makes a checkpoint loadable, and the options a resumed run must keep.

A checkpoint counts as complete only once ``bertcli_complete.json`` is in it; that file is
written last, atomically (temp file + ``os.replace``), after every process has finished
writing. ``resume`` picks the newest complete checkpoint and deletes any incomplete one, so
a checkpoint half-written by a killed run is never loaded.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING

from .options import TrainError, TrainOptions, _is_main

if TYPE_CHECKING:
    from .core import _Job

COMPLETE_MARKER = "bertcli_complete.json"
#: files a training run writes into its output folder (what ``overwrite`` replaces).
ARTIFACTS = ("config.json", "model.safetensors", "model.safetensors.index.json", "adapter_config.json",
             "adapter_model.safetensors", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
             "vocab.txt", "vocab.json", "merges.txt", "added_tokens.json", "training_args.json", "metrics.json",
             "README.md", "generation_config.json", "sentencepiece.bpe.model", "spiece.model")


def prepare_output(output: str | Path, overwrite: bool, resume: bool) -> Path:
    """Check (and with ``overwrite`` clear) the output folder before any work.

    Raises:
        TrainError: the path is a file; the folder is not empty and neither
            ``overwrite`` nor ``resume`` is set.
    """
    out = Path(output)
    if out.exists() and not out.is_dir():
        raise TrainError(f"output '{out}' is a file, not a folder")
    if resume or not _is_main():
        # Under torchrun the main process alone judges (and clears) the folder: another
        # rank may look only after the main one has started writing checkpoints into it.
        return out
    entries = sorted(p.name for p in out.iterdir()) if out.is_dir() else []
    if entries and not overwrite:
        raise TrainError(f"output folder '{out}' is not empty ({', '.join(entries[:4])}"
                         f"{', ...' if len(entries) > 4 else ''})",
                         "pass --overwrite to replace it, or --resume to continue an interrupted run")
    if entries:
        # Only what a run writes: a stale adapter_config.json would turn a new full
        # model into an "adapter"; anything else the user keeps there is left alone.
        for name in entries:
            p = out / name
            if name == "checkpoints" and p.is_dir():
                shutil.rmtree(p)
            elif name in ARTIFACTS or (name.startswith("model-") and name.endswith(".safetensors")):
                p.unlink()
    return out


def _atomic_json(path: Path, obj) -> None:
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.write_text(json.dumps(obj, indent=2, ensure_ascii=False, default=str) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def _checkpoints(ckpt_dir: Path) -> list[Path]:
    if not ckpt_dir.is_dir():
        return []
    out = []
    for p in ckpt_dir.iterdir():
        if p.is_dir() and p.name.startswith("checkpoint-") and p.name[11:].isdigit():
            out.append(p)
    return sorted(out, key=lambda p: int(p.name[11:]))


def last_complete_checkpoint(ckpt_dir: Path, clean: bool = True) -> tuple[Path | None, list[str]]:
    """The newest checkpoint that has the completion marker; with ``clean`` delete the
    incomplete ones (left by a run killed while saving). Returns ``(path, notes)``."""
    notes = []
    last = None
    for p in _checkpoints(ckpt_dir):
        if (p / COMPLETE_MARKER).is_file():
            last = p
        else:
            notes.append(f"incomplete checkpoint '{p}' (no {COMPLETE_MARKER}) ignored and removed")
            if clean and _is_main():
                shutil.rmtree(p, ignore_errors=True)
    return last, notes


#: options that may differ between an interrupted run and its resumption.
_RESUME_FREE = ("resume", "overwrite", "keep_checkpoints", "command", "device", "dtype", "logging_steps",
                "eval_batch_size")


def _check_run_options(ckpt_dir: Path, job: _Job, opts: TrainOptions, resuming: bool) -> None:
    """Record the run's options next to its checkpoints; a resumed run must use the same
    ones (else its steps would not continue the same schedule on the same data).

    Raises:
        TrainError: resuming with different options, labels, task or base model.
    """
    cur = {"task": job.task, "base_model": str(job.base), "labels": job.labels,
           "n_train": len(job.train_features), "n_eval": len(job.eval_features or []),
           "options": {k: v for k, v in asdict(opts).items() if k not in _RESUME_FREE}}
    path = ckpt_dir / "run_options.json"
    if resuming and path.is_file():
        old = json.loads(path.read_text(encoding="utf-8"))
        diff = [k for k in ("task", "base_model", "labels", "n_train", "n_eval") if old.get(k) != cur[k]]
        diff += [k for k in cur["options"] if old.get("options", {}).get(k) != cur["options"][k]]
        if diff:
            raise TrainError(f"cannot resume: {', '.join(diff)} differ from the interrupted run's "
                             f"(recorded in {path})", "resume with the same options and data, or use --overwrite")
    elif _is_main():
        ckpt_dir.mkdir(parents=True, exist_ok=True)
        _atomic_json(path, cur)
