"""Options, results and progress events shared by the training modules.

:class:`TrainOptions` is what every ``train_*`` function takes (the CLI's ``--option``
names), :class:`TrainResult` what it returns; :func:`metric_names` lists the metrics a
task's evaluation reports. Progress goes through an optional ``progress(event: dict)``
callback on the main process only (:func:`_emit`; the events are listed in
:mod:`bertcli.train.core`).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import BertcliError

ProgressFn = Callable[[dict], None]


class TrainError(BertcliError):
    """Training cannot start or had to stop (output folder in use, loss became NaN...)."""


@dataclass
class TrainOptions:
    """Options shared by every ``train_*`` function (the CLI's ``--option`` names).

    Attributes:
        epochs: passes over the training data (fractions allowed).
        max_steps: optimizer steps; overrides ``epochs`` when > 0.
        learning_rate: peak AdamW learning rate (BERT fine-tuning: 2e-5..5e-5, appendix A.3).
        head_lr: peak learning rate of the task head and the pooler (the modules a LoRA run
            trains in full); None: ``learning_rate``. A new head on an encoder whose [CLS]
            was never trained for it (all-MiniLM-L6-v2 pools by mean) learns faster with more.
        batch_size: examples per device per step; ``eval_batch_size`` defaults to it.
        grad_accum: micro-batches per optimizer step.
        warmup: linear warm-up: a fraction of all steps when < 1, else a step count.
        weight_decay: AdamW decoupled weight decay (not applied to biases/LayerNorm,
            as in transformers' Trainer).
        max_length: tokens per example, capped by the model's position table.
        seed: model head initialisation, data order, dropout and MLM masks all follow it:
            the same seed on the same device gives the same metrics.
        device, dtype: as :func:`bertcli.device.resolve`; bfloat16/float16 train with
            mixed precision (autocast), the weights stay float32.
        eval_steps: evaluate (and checkpoint) every N optimizer steps; None: each epoch.
        logging_steps: report the training loss every N steps.
        patience: early stopping after N evaluations without improvement of ``metric``.
        metric: the model-selection metric (without ``eval_``): default ``accuracy``
            (classify; ``micro_f1`` multi-label), ``f1`` (ner), ``mlm_loss`` (mlm). The best
            checkpoint by it is the one saved. Names with ``loss``/``perplexity`` are minimised.
        group_by_length: batches of similar lengths (less padding; order still seeded).
        freeze_encoder: train only the head (and the pooler of sequence classifiers,
            which a bare encoder may not have trained).
        lora: LoRA rank; adapters on the attention query/key/value/output projections
            (``lora_targets="attention"``) or on every encoder linear layer, feed-forward
            included (``"all-linear"``), the head in ``modules_to_save``. ``lora_alpha``
            defaults to ``2 * lora``.
        lora_layers: with ``lora``, adapters only in the top N encoder layers (None: all).
        merge: with ``lora``, write plain merged weights instead of an adapter folder.
        resume: continue from the newest complete checkpoint in ``output/checkpoints``.
        overwrite: replace a previous run's files in a non-empty output folder.
        keep_checkpoints: keep ``output/checkpoints`` after a successful run.
        save_total_limit: checkpoints kept while training (the best one is always kept).
        max_train_samples, max_eval_samples: seeded random subsets (quick runs).
        command: the command line to record in the model card.
    """

    epochs: float = 3.0
    max_steps: int = -1
    learning_rate: float = 5e-5
    head_lr: float | None = None
    batch_size: int = 32
    eval_batch_size: int | None = None
    grad_accum: int = 1
    warmup: float = 0.0
    weight_decay: float = 0.01
    max_length: int = 128
    seed: int = 42
    device: str = "auto"
    dtype: str = "auto"
    eval_steps: int | None = None
    logging_steps: int = 50
    patience: int | None = None
    metric: str | None = None
    group_by_length: bool = True
    freeze_encoder: bool = False
    lora: int | None = None
    lora_alpha: float | None = None
    lora_dropout: float = 0.1
    lora_targets: str = "attention"
    lora_layers: int | None = None
    merge: bool = False
    resume: bool = False
    overwrite: bool = False
    keep_checkpoints: bool = False
    save_total_limit: int = 2
    max_train_samples: int | None = None
    max_eval_samples: int | None = None
    command: str | None = None


@dataclass
class TrainResult:
    """What a run produced.

    Attributes:
        output_dir: the model folder.
        metrics: evaluation metrics of the saved (best) model, without the ``eval_``
            prefix; empty without eval data.
        history: one dict per finished epoch: ``epoch``, ``step``, ``train_loss`` and the
            epoch's evaluation metrics when evaluating per epoch.
        evaluations: every evaluation (``step``, ``epoch``, metrics).
        best_step: the optimizer step of the saved checkpoint (None without eval).
        stopped_early: early stopping ended the run.
        global_step: optimizer steps done in total (including before a resume).
        labels: id2label order.
        warnings: data and run notices (repaired tags, skipped rows, ...).
    """

    output_dir: Path
    metrics: dict
    history: list[dict]
    evaluations: list[dict]
    best_step: int | None
    stopped_early: bool
    global_step: int
    labels: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    #: the trained (best) torch module as saved (peft-wrapped for an unmerged LoRA run).
    model: object = field(default=None, repr=False)


def _rank() -> int:
    return int(os.environ.get("RANK", "0"))


def _is_main() -> bool:
    return _rank() == 0


def _emit(progress: ProgressFn | None, event: dict) -> None:
    if progress is not None and _is_main():
        progress(event)


def _greater_is_better(metric: str) -> bool:
    return not ("loss" in metric or "perplexity" in metric)


def metric_names(task: str, multi_label: bool = False, nsp: bool = False) -> list[str]:
    """The metrics an evaluation of ``task`` (``classify``, ``ner``, ``mlm``, ``nsp``) reports, without
    the ``eval_`` prefix: the names ``TrainOptions.metric`` may take."""
    if task == "classify":
        return ["subset_accuracy", "micro_f1", "macro_f1", "loss"] if multi_label else ["accuracy", "macro_f1", "loss"]
    if task == "ner":
        return ["f1", "precision", "recall", "accuracy", "loss"]
    if task == "mlm":
        return (["mlm_loss", "perplexity", "top1_accuracy", "top5_accuracy"]
                + (["nsp_loss", "nsp_accuracy", "nsp_is_next_accuracy", "nsp_not_next_accuracy"] if nsp else [])
                + ["loss"])
    if task == "nsp":
        return ["accuracy", "is_next_accuracy", "not_next_accuracy", "loss"]
    raise ValueError(f"unknown task {task!r}")


def check_metric(metric: str | None, task: str, multi_label: bool = False, nsp: bool = False) -> str | None:
    """``metric`` without an ``eval_`` prefix, or None when it is None.

    Raises:
        TrainError: ``metric`` is not one of :func:`metric_names` (checked before any
            work: the Trainer would only notice at the first evaluation).
    """
    if metric is None:
        return None
    name = metric[5:] if metric.startswith("eval_") else metric
    known = metric_names(task, multi_label, nsp)
    if name not in known:
        raise TrainError(f"unknown metric '{metric}' for {task}" + (" (multi-label)" if multi_label else ""),
                         f"choose one of {', '.join(known)}")
    return name
