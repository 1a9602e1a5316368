"""Fine-tuning (classify, NER) and pre-training (MLM, NSP) on top of transformers' ``Trainer``.

Each ``train_*`` function reads the data, builds the model, runs ``Trainer`` and writes
a self-contained model folder that :func:`bertcli.loading.load_model` loads. A CLI
wrapper only parses options into :class:`TrainOptions` and the reader keywords.

The output folder::

    config.json            architecture, id2label/label2id, problem_type
    model.safetensors      weights (never pickle); a LoRA run without merge writes
                           adapter_config.json + adapter_model.safetensors instead
    tokenizer files
    training_args.json     the options, data summary, base model, device, world size
    metrics.json           per-epoch train loss and eval metrics, every evaluation, best
    README.md              model card (base, data, metrics, command line)
    checkpoints/           only while training (or with keep_checkpoints)

Checkpoints are Trainer's own (weights, optimizer, scheduler, RNG states, trainer state
with the data position). A checkpoint counts as complete only once
``bertcli_complete.json`` is in it; that file is written last, atomically (temp file +
``os.replace``), after every process has finished writing. ``resume=True`` picks the
newest complete checkpoint and deletes any incomplete one, so a checkpoint half-written
by a killed run is never loaded.

Progress goes through an optional ``progress(event: dict)`` callback, called on the
main process only; events have an ``"event"`` key: ``train_begin``, ``step`` (after every
optimizer step: step, max_steps), ``log`` (step,
max_steps, epoch, loss, learning_rate, samples_per_second, and for pre-training the
loss parts of :data:`LOSS_PARTS`), ``eval`` (step, epoch, metrics), ``epoch_end``
(epoch, train_loss), ``checkpoint`` (path), ``warning`` (message), ``train_end``,
``saved`` (path). This module never prints and imports neither click nor rich.

The pieces live in modules named for what they hold: :mod:`.options` (TrainOptions,
TrainResult, metric names), :mod:`.checkpoints` (output folder, completion marker, resume
checks), :mod:`.trainer` (the Trainer subclass, sampler and progress callback),
:mod:`.losses` (BERT pre-training's loss), :mod:`.adapters` (LoRA, frozen encoder) and
:mod:`.output` (the model folder and card). This module prepares a job and runs it
(:func:`_fit`); the names other modules import from here are re-exported.
"""

from __future__ import annotations

import json
import os
import random
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import DataError, ModelError
from .adapters import _apply_freeze_or_lora, _has_bert_pretraining_heads
from .checkpoints import (ARTIFACTS, COMPLETE_MARKER, _check_run_options, _checkpoints, last_complete_checkpoint,
                          prepare_output)
from .losses import LOSS_PARTS
from .options import (ProgressFn, TrainError, TrainOptions, TrainResult, _emit, _greater_is_better, _is_main,
                      check_metric, metric_names)
from .output import _save
from .trainer import _make_reporter, _make_trainer_class

__all__ = ["ARTIFACTS", "COMPLETE_MARKER", "LOSS_PARTS", "ProgressFn", "TrainError", "TrainOptions", "TrainResult",
           "check_metric", "last_complete_checkpoint", "metric_names", "prepare_output"]


def _subsample(items: list, n: int | None, seed: int) -> list:
    if not n or n >= len(items):
        return items
    idx = sorted(random.Random(seed).sample(range(len(items)), n))
    return [items[i] for i in idx]


def _base_dir(model) -> Path:
    from .. import defaults
    from ..loading import check_folder, resolve_model_dir

    # a folder, or a hub id from the local Hugging Face cache
    path = defaults.default_encoder_dir() if model is None or str(model) == "" else resolve_model_dir(model, "encoder")
    check_folder(path)
    if (path / "adapter_config.json").is_file():
        raise ModelError(f"'{path}' is a LoRA adapter folder; train on top of a full model",
                         "evaluate it as is, or save a merged copy first (train with --merge)")
    return path


def _load_net(cls_name: str, base: Path, **config_kw):
    from ..loading import _first_line, quiet_transformers

    quiet_transformers()
    import transformers

    cls = getattr(transformers, cls_name)
    try:
        return cls.from_pretrained(str(base), local_files_only=True, use_safetensors=True, trust_remote_code=False,
                                   **config_kw)
    except ValueError as e:
        msg = _first_line(e)
        if "Unrecognized configuration class" in msg:
            raise ModelError(f"'{base}' has no {cls_name} architecture in transformers") from None
        raise ModelError(f"cannot load '{base}': {msg}") from None


def _check_labels(data, known: list[str], what: str) -> None:
    known_set = set(known)
    # evaluate (the model's labels) has --label-map to rename data labels; train has --labels too.
    fix = ("rename the data's labels with --label-map" if what == "model's"
           else "every evaluation label must occur in the training data (or in --labels)")
    for ex in getattr(data, "examples", None) or []:
        labs = ex.label if isinstance(ex.label, list) else ([ex.label] if ex.label is not None else [])
        for lab in labs:
            if lab not in known_set:
                raise DataError(f"{data.source}, line {ex.line}: label '{lab}' is not among the {what} labels "
                                f"({', '.join(known[:10])}{', ...' if len(known) > 10 else ''})", fix)
    for s in getattr(data, "sentences", None) or []:
        for tag, line in zip(s.tags, s.lines):
            if tag not in known_set:
                raise DataError(f"{data.source}, line {line}: tag '{tag}' is not among the {what} tags "
                                f"({', '.join(known[:12])}{', ...' if len(known) > 12 else ''})",
                                "every evaluation tag must occur in the training data (or in --tags)")


@dataclass
class _Job:
    """Everything :func:`_fit` needs, prepared by a task function."""

    task: str
    base: Path
    output: Path
    net: object
    tokenizer: object
    train_features: list
    eval_features: list | None
    collator: object
    compute_metrics: Callable | None
    preprocess_logits: Callable | None
    label_names: list[str]
    metric: str
    labels: list[str]
    data_info: dict
    warnings: list[str]
    lora_modules_to_save: list[str] = field(default_factory=list)


def _fit(job: _Job, opts: TrainOptions, progress: ProgressFn | None) -> TrainResult:
    import torch
    from transformers import EarlyStoppingCallback, TrainingArguments

    from ..device import resolve

    dev, dt = resolve(opts.device, opts.dtype)
    if dt == torch.int8:
        raise TrainError("--dtype int8 is for inference only", "train in float32 or bfloat16")
    world = int(os.environ.get("WORLD_SIZE", "1"))
    has_eval = bool(job.eval_features)
    if opts.patience and not has_eval:
        raise TrainError("early stopping (patience) needs evaluation data", "pass --eval FILE")
    check_metric(job.metric, job.task, bool(job.data_info.get("multi_label")), bool(job.data_info.get("nsp")))
    _apply_freeze_or_lora(job, opts)
    ckpt_dir = job.output / "checkpoints"
    resume_from = None
    notes: list[str] = []
    run = {"history": [], "evaluations": [], "n_train": len(job.train_features),
           "n_eval": len(job.eval_features or [])}
    # Before touching any checkpoint: a resume with other options is refused as is.
    _check_run_options(ckpt_dir, job, opts, bool(opts.resume and _checkpoints(ckpt_dir)))
    if opts.resume:
        resume_from, notes = last_complete_checkpoint(ckpt_dir)
        for n in notes:
            _emit(progress, {"event": "warning", "message": n})
        if resume_from is None:
            if (job.output / "metrics.json").is_file():
                raise TrainError(f"nothing to resume in '{job.output}': the run there has finished",
                                 "pass --overwrite to train again")
            _emit(progress, {"event": "warning", "message": f"no complete checkpoint in '{ckpt_dir}'; "
                                                           "starting from the beginning"})
        else:
            saved = json.loads((resume_from / COMPLETE_MARKER).read_text(encoding="utf-8"))
            run["history"] = saved.get("history", [])
            run["evaluations"] = saved.get("evaluations", [])
            run["epoch_loss"] = saved.get("epoch_loss")
            run["resumed_from"] = str(resume_from)
    if dev.type == "cuda" and dev.index is not None and world == 1:
        torch.cuda.set_device(dev.index)  # the Trainer uses the current CUDA device
    strategy = "steps" if opts.eval_steps else "epoch"
    args = TrainingArguments(
        output_dir=str(ckpt_dir),
        num_train_epochs=opts.epochs, max_steps=opts.max_steps if opts.max_steps and opts.max_steps > 0 else -1,
        learning_rate=opts.learning_rate, weight_decay=opts.weight_decay,
        warmup_steps=int(opts.warmup) if opts.warmup >= 1 else float(opts.warmup),
        per_device_train_batch_size=opts.batch_size, per_device_eval_batch_size=opts.eval_batch_size or opts.batch_size,
        gradient_accumulation_steps=opts.grad_accum,
        eval_strategy=strategy if has_eval else "no", eval_steps=opts.eval_steps,
        save_strategy=strategy, save_steps=opts.eval_steps or 500,
        save_total_limit=max(1, opts.save_total_limit),
        load_best_model_at_end=has_eval, metric_for_best_model=job.metric if has_eval else None,
        greater_is_better=_greater_is_better(job.metric) if has_eval else None,
        logging_strategy="steps", logging_steps=max(1, opts.logging_steps), logging_first_step=True,
        logging_nan_inf_filter=False, report_to="none", disable_tqdm=True,
        seed=opts.seed, data_seed=opts.seed,
        use_cpu=dev.type == "cpu", bf16=dt == torch.bfloat16, fp16=dt == torch.float16,
        train_sampling_strategy="group_by_length" if opts.group_by_length else "random",
        dataloader_num_workers=0, remove_unused_columns=False, label_names=job.label_names,
        ddp_backend="gloo" if dev.type == "cpu" and world > 1 else None,
        ddp_find_unused_parameters=False, restore_callback_states_from_checkpoint=True,
    )
    reporter = _make_reporter(progress, run)
    callbacks = [reporter]
    if opts.patience:
        callbacks.append(EarlyStoppingCallback(early_stopping_patience=opts.patience))
    Trainer = _make_trainer_class()
    trainer = Trainer(model=job.net, args=args, data_collator=job.collator, train_dataset=job.train_features,
                      eval_dataset=job.eval_features if has_eval else None, processing_class=job.tokenizer,
                      compute_metrics=job.compute_metrics, preprocess_logits_for_metrics=job.preprocess_logits,
                      callbacks=callbacks)
    reporter.trainer = trainer
    trainer.restore_epoch_loss_state(run.get("epoch_loss"))
    inner = job.net.get_base_model() if hasattr(job.net, "get_base_model") else job.net
    trainer._masked_rows = job.task == "mlm" and _has_bert_pretraining_heads(inner)
    trainer._nsp_weight = float(job.data_info.get("nsp_weight", 1.0))
    trainer._nsp_only = job.task == "nsp"
    trainer._head_lr = opts.head_lr
    trainer._head_names = tuple(job.lora_modules_to_save)
    from transformers.trainer_callback import PrinterCallback, ProgressCallback

    # The core never prints: progress goes through the reporter only.
    trainer.remove_callback(PrinterCallback)
    trainer.remove_callback(ProgressCallback)
    if _is_main():
        ckpt_dir.mkdir(parents=True, exist_ok=True)
    trainer.train(resume_from_checkpoint=str(resume_from) if resume_from else None)
    state = trainer.state
    best_step = getattr(state, "best_global_step", None) if has_eval else None
    metrics: dict = {}
    if has_eval:
        picked = [e for e in run["evaluations"] if e["step"] == best_step]
        if picked:
            metrics = {k: v for k, v in picked[-1].items() if k not in ("step", "epoch")}
        else:
            metrics = {k[5:] if k.startswith("eval_") else k: v for k, v in trainer.evaluate().items()}
    stopped_early = bool(opts.patience) and state.global_step < state.max_steps
    result = TrainResult(job.output, metrics, run["history"], run["evaluations"], best_step, stopped_early,
                         state.global_step, job.labels, job.warnings + notes, trainer.model)
    if trainer.is_world_process_zero():
        _save(job, trainer.model, opts, result, dev, dt, world)
        _emit(progress, {"event": "saved", "path": str(job.output)})
        if not opts.keep_checkpoints:
            shutil.rmtree(ckpt_dir, ignore_errors=True)
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.barrier()
    _emit(progress, {"event": "train_end", "global_step": state.global_step, "best_step": best_step})
    return result
