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
"""

from __future__ import annotations

import json
import math
import os
import random
import shutil
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ..errors import BertcliError, DataError, ModelError

ProgressFn = Callable[[dict], None]
#: parts of a summed training loss that ``log`` events carry beside ``loss`` (means over the
#: optimizer steps since the previous log): BERT pre-training's MLM and NSP losses, and the
#: NSP accuracy on the training batches.
LOSS_PARTS = ("mlm_loss", "nsp_loss", "nsp_accuracy")
COMPLETE_MARKER = "bertcli_complete.json"
#: files a training run writes into its output folder (what ``overwrite`` replaces).
ARTIFACTS = ("config.json", "model.safetensors", "model.safetensors.index.json", "adapter_config.json",
             "adapter_model.safetensors", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
             "vocab.txt", "vocab.json", "merges.txt", "added_tokens.json", "training_args.json", "metrics.json",
             "README.md", "generation_config.json", "sentencepiece.bpe.model", "spiece.model")


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


# ---------------------------------------------------------------- helpers

def _rank() -> int:
    return int(os.environ.get("RANK", "0"))


def _is_main() -> bool:
    return _rank() == 0


def _emit(progress: ProgressFn | None, event: dict) -> None:
    if progress is not None and _is_main():
        progress(event)


def _subsample(items: list, n: int | None, seed: int) -> list:
    if not n or n >= len(items):
        return items
    idx = sorted(random.Random(seed).sample(range(len(items)), n))
    return [items[i] for i in idx]


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
                                "every evaluation tag must occur in the training data")


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


# ---------------------------------------------------------------- Trainer pieces

def _make_trainer_class():
    import torch
    from transformers import Trainer

    class _Trainer(Trainer):
        """Trainer plus a NaN/inf loss guard and per-epoch training-loss sums."""

        _loss_sum = None
        _micro_steps = 0
        _masked_rows = False
        #: weight of the NSP loss in BERT pre-training's sum (``train_mlm(nsp_weight=...)``)
        _nsp_weight = 1.0
        #: module-name parts of the head and pooler (``TrainOptions.head_lr``)
        _head_names: tuple = ()
        _head_lr = None
        #: sums of the loss parts since the last log: {name: [sum, count]}
        _parts: dict | None = None
        #: next-sentence prediction alone (``train_nsp``): log its loss and accuracy
        _nsp_only = False

        def _add_part(self, name: str, value, count: int = 1) -> None:
            if self._parts is None:
                self._parts = {}
            cur = self._parts.setdefault(name, [0.0, 0])
            cur[0] += float(value)
            cur[1] += count

        def log(self, logs, *args, **kwargs):
            # The training loss of BERT pre-training is a sum: report its parts (MLM loss,
            # NSP loss and NSP accuracy over the steps since the last log) beside it, so a
            # head stuck at chance (NSP loss 0.693) shows while the sum still falls.
            if "loss" in logs and self._parts:
                for name, (total, n) in self._parts.items():
                    if n:
                        logs[name] = total / n
                self._parts = None
            return super().log(logs, *args, **kwargs)

        def create_optimizer(self, model=None):
            if self._head_lr is None or self.optimizer is not None:
                return super().create_optimizer(model)
            opt_model = self.model if model is None else model
            decay = set(self.get_decay_parameter_names(opt_model))
            groups = {}
            for n, p in opt_model.named_parameters():
                if not p.requires_grad:
                    continue
                head = any(f"{h}." in n for h in self._head_names)
                key = (head, n in decay)
                groups.setdefault(key, []).append(p)
            cls, kwargs = self.get_optimizer_cls_and_kwargs(self.args, opt_model)
            kwargs = {k: v for k, v in kwargs.items() if k != "params"}
            self.optimizer = cls([{"params": ps, "weight_decay": self.args.weight_decay if dec else 0.0,
                                   "lr": self._head_lr if head else self.args.learning_rate}
                                  for (head, dec), ps in groups.items()], **kwargs)
            return self.optimizer

        def _determine_best_metric(self, metrics, trial):
            # Trainer keeps the earliest checkpoint on a tie of the selection metric, which
            # on a small evaluation set (accuracy 1.0 at step 10 and at step 60) throws away
            # the rest of the run. Here a tie goes to the lower evaluation loss. The best
            # checkpoint's loss is read back from log_history, so a resumed run decides alike.
            name = self.args.metric_for_best_model
            key = name if not name or name.startswith("eval_") else f"eval_{name}"
            best, loss = self.state.best_metric, metrics.get("eval_loss")
            if key and key != "eval_loss" and best is not None and metrics.get(key) == best and loss is not None:
                best_loss = next((h["eval_loss"] for h in self.state.log_history
                                  if h.get("step") == self.state.best_global_step and "eval_loss" in h), None)
                if best_loss is not None and loss < best_loss:
                    self.state.best_metric = float("-inf") if self.args.greater_is_better else float("inf")
            return super()._determine_best_metric(metrics, trial)

        def training_step(self, model, inputs, num_items_in_batch=None):
            loss = super().training_step(model, inputs, num_items_in_batch)
            # One host sync per micro-batch: cheap next to a BERT forward/backward, and it
            # stops at the first bad step instead of training on NaN weights.
            if not bool(torch.isfinite(loss).all()):
                raise TrainError(
                    f"the training loss became {float(loss):g} at step {self.state.global_step + 1} "
                    f"(epoch {self.state.epoch or 0:.2f}); training stopped",
                    "lower --learning-rate, add --warmup, use --dtype float32, or check the data")
            self._loss_sum = loss.detach().float() if self._loss_sum is None else self._loss_sum + loss.detach()
            self._micro_steps += 1
            return loss

        def _get_train_sampler(self, train_dataset=None):
            if self.args.train_sampling_strategy != "group_by_length":
                return super()._get_train_sampler(train_dataset)
            ds = train_dataset if train_dataset is not None else self.train_dataset
            return _SeededLengthGroupedSampler(self.args.train_batch_size * self.args.gradient_accumulation_steps,
                                               [len(f["input_ids"]) for f in ds], self.args.data_seed or 0)

        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            # Training steps of BERT pre-training project only the masked rows onto the
            # vocabulary (same loss; see masked_rows_mlm_loss). Not under DDP, whose
            # gradient hooks need the forward of the wrapped module.
            if (self._masked_rows and model.training and not return_outputs
                    and self.args.world_size == 1 and model is self.model):
                return masked_rows_mlm_loss(model, inputs, self._nsp_weight, self._add_part)
            if model.training and "next_sentence_label" in inputs and "labels" in inputs:
                # BertForPreTraining sums both losses unweighted: recompute the sum from
                # its logits (DDP, or heads the masked-rows path does not know).
                fwd = {k: v for k, v in inputs.items() if k not in ("labels", "next_sentence_label")}
                out = model(**fwd)
                loss = pretraining_loss(out.prediction_logits, out.seq_relationship_logits, inputs["labels"],
                                        inputs["next_sentence_label"], self._nsp_weight, self._add_part)
                return (loss, out) if return_outputs else loss
            if self._nsp_only and model.training and not return_outputs:
                out = model(**inputs)
                self._add_part("nsp_loss", out.loss.detach())
                self._add_part("nsp_accuracy", (out.logits.argmax(-1) == inputs["labels"]).float().mean().detach())
                return out.loss
            return super().compute_loss(model, inputs, return_outputs=return_outputs,
                                        num_items_in_batch=num_items_in_batch)

        def take_epoch_loss(self) -> float | None:
            if self._loss_sum is None:
                return None
            total = self._loss_sum.clone()
            if torch.distributed.is_available() and torch.distributed.is_initialized():
                torch.distributed.all_reduce(total)
                total /= torch.distributed.get_world_size()
            # training_step returns the loss already divided by the accumulation steps,
            # so the sum over micro-batches / optimizer steps is the mean step loss.
            steps = max(1, self._micro_steps / max(1, self.args.gradient_accumulation_steps))
            self._loss_sum, self._micro_steps = None, 0
            return float(total) / steps

        def epoch_loss_state(self) -> list | None:
            """``[loss sum, micro-steps]`` of the epoch so far (averaged over ranks), saved
            with a checkpoint so that a resumed run reports the same epoch loss."""
            if self._loss_sum is None:
                return None
            total = self._loss_sum.clone()
            if torch.distributed.is_available() and torch.distributed.is_initialized():
                torch.distributed.all_reduce(total)
                total /= torch.distributed.get_world_size()
            return [float(total), self._micro_steps]

        def restore_epoch_loss_state(self, saved: list | None) -> None:
            """Continue the epoch-loss sum of an interrupted run (see ``epoch_loss_state``)."""
            if saved:
                self._loss_sum = torch.tensor(float(saved[0]), dtype=torch.float32, device=self.args.device)
                self._micro_steps = int(saved[1])

    return _Trainer


class _SeededLengthGroupedSampler:
    """Length-grouped order (transformers' ``get_length_grouped_indices``: shuffled
    mega-batches sorted by length) drawn from ``seed + epoch``.

    transformers' own ``LengthGroupedSampler`` draws from the global RNG when an epoch
    starts, so a run resumed mid-epoch would see another order than the uninterrupted
    run; seeding per epoch (like accelerate's ``SeedableRandomSampler``) makes the order
    a function of (seed, epoch) only. Accelerate calls ``set_epoch`` before each epoch.
    """

    def __init__(self, batch_size: int, lengths: list[int], seed: int):
        self.batch_size = batch_size
        self.lengths = lengths
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.lengths)

    def __iter__(self):
        import torch
        from transformers.trainer_pt_utils import get_length_grouped_indices

        g = torch.Generator()
        g.manual_seed(self.seed + self.epoch)
        return iter(get_length_grouped_indices(self.lengths, self.batch_size, generator=g))


def _make_reporter(progress: ProgressFn | None, run: dict):
    from transformers import TrainerCallback

    class _Reporter(TrainerCallback):
        """Turns Trainer events into ``progress`` events and keeps the metric history."""

        def __init__(self):
            self.trainer = None
            self.mark = None  # (time, step) of the last log: training throughput between logs

        def on_train_begin(self, args, state, control, **kw):
            import time

            self.mark = (time.perf_counter(), state.global_step)
            _emit(progress, {"event": "train_begin", "max_steps": state.max_steps, "epochs": args.num_train_epochs,
                             "train_examples": run["n_train"], "eval_examples": run["n_eval"],
                             "world_size": args.world_size, "resumed_from": run.get("resumed_from"),
                             "global_step": state.global_step})
            ep = state.epoch or 0
            if (run.get("resumed_from") and ep > 0 and ep == round(ep)
                    and not any(h["step"] == state.global_step for h in run["history"])):
                # The checkpoint was saved at the last step of an epoch, before the
                # Trainer's epoch end; the resumed Trainer starts the next epoch without
                # one, so close that epoch here as the uninterrupted run did.
                self.on_epoch_end(args, state, control)

        def on_step_end(self, args, state, control, **kw):
            # every optimizer step, so a progress bar moves between logging steps too
            _emit(progress, {"event": "step", "step": state.global_step, "max_steps": state.max_steps})

        def on_log(self, args, state, control, logs=None, **kw):
            import time

            logs = logs or {}
            if "loss" in logs:
                rate = None
                now = time.perf_counter()
                if self.mark is not None and state.global_step > self.mark[1]:
                    per_step = args.per_device_train_batch_size * args.gradient_accumulation_steps * args.world_size
                    rate = (state.global_step - self.mark[1]) * per_step / (now - self.mark[0])
                self.mark = (now, state.global_step)
                _emit(progress, {"event": "log", "step": state.global_step, "max_steps": state.max_steps,
                                 "epoch": state.epoch, "loss": logs["loss"],
                                 "learning_rate": logs.get("learning_rate"), "samples_per_second": rate,
                                 **{k: logs[k] for k in LOSS_PARTS if k in logs}})

        def on_epoch_end(self, args, state, control, **kw):
            loss = self.trainer.take_epoch_loss() if self.trainer is not None else None
            entry = {"epoch": round(state.epoch or 0, 4), "step": state.global_step, "train_loss": loss}
            run["history"].append(entry)
            _emit(progress, {"event": "epoch_end", **entry})

        def on_evaluate(self, args, state, control, metrics=None, **kw):
            m = {k[5:] if k.startswith("eval_") else k: v for k, v in (metrics or {}).items()
                 if k not in ("eval_runtime", "eval_samples_per_second", "eval_steps_per_second", "epoch")}
            entry = {"step": state.global_step, "epoch": round(state.epoch or 0, 4), **m}
            run["evaluations"].append(entry)
            if run["history"] and run["history"][-1]["step"] == state.global_step:
                run["history"][-1].update({f"eval_{k}": v for k, v in m.items()})
            _emit(progress, {"event": "eval", "step": state.global_step, "epoch": state.epoch, "metrics": m})

        def on_save(self, args, state, control, **kw):
            import torch

            if torch.distributed.is_available() and torch.distributed.is_initialized():
                torch.distributed.barrier()  # every rank has written its part (RNG states)
            ck = Path(args.output_dir) / f"checkpoint-{state.global_step}"
            epoch_loss = self.trainer.epoch_loss_state() if self.trainer is not None else None  # every rank
            if state.is_world_process_zero and ck.is_dir():
                _atomic_json(ck / COMPLETE_MARKER, {"step": state.global_step, "history": run["history"],
                                                    "evaluations": run["evaluations"], "epoch_loss": epoch_loss})
                _emit(progress, {"event": "checkpoint", "path": str(ck), "step": state.global_step})

    return _Reporter()


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


#: LoRA target modules of BERT-family encoders: the attention projections (query/key/value
#: and the attention output dense), or every encoder linear layer (+ intermediate and
#: output feed-forward denses), which adds capacity where LoRA on attention alone falls short.
_LORA_TARGETS = {
    "attention": r".*\.attention\.(self\.(query|key|value)|output\.dense)$",
    "all-linear": r".*\.layer\.\d+\.(attention\.(self\.(query|key|value)|output\.dense)|intermediate\.dense|output\.dense)$",
}


def _lora_target_regex(opts: TrainOptions, net) -> str:
    """The LoRA target regex of ``opts.lora_targets``, limited to the top ``opts.lora_layers``
    encoder layers when that is set (the layers below stay frozen: no backward pass runs
    through them, so a step costs a forward pass plus the top layers' backward)."""
    pattern = _LORA_TARGETS[opts.lora_targets]
    if not opts.lora_layers:
        return pattern
    n = int(getattr(net.config, "num_hidden_layers", 0) or 0)
    if opts.lora_layers > n:
        raise TrainError(f"lora_layers {opts.lora_layers} is more than the model's {n} layers")
    top = "|".join(str(i) for i in range(n - opts.lora_layers, n))
    return pattern.replace(r"\.layer\.\d+\.", rf"\.layer\.({top})\.").replace(
        r".*\.attention\.", rf".*\.layer\.({top})\.attention\.")


def _has_bert_pretraining_heads(net) -> bool:
    """True for BERT-style pre-training models (``cls.predictions`` MLM head with a
    ``transform`` and a tied ``decoder``), the layout the LoRA and masked-rows paths use."""
    pred = getattr(getattr(net, "cls", None), "predictions", None)
    return pred is not None and hasattr(pred, "transform") and hasattr(pred, "decoder")


def masked_rows_mlm_loss(model, inputs: dict, nsp_weight: float = 1.0, report=None):
    """BERT's pre-training loss with the vocabulary projection only at masked positions.

    ``BertForMaskedLM``/``BertForPreTraining`` project every position onto the
    vocabulary, ``(batch, seq, vocab)`` logits, although the loss reads only the ~15 %
    of positions whose label is not -100; the projection (30k x hidden per row) costs
    more than the encoder. This computes the same loss -- mean cross-entropy over the
    masked positions, plus the mean NSP cross-entropy when ``next_sentence_label`` is
    given, as in ``BertForPreTraining.forward`` (there with weight 1) -- from the
    selected rows only.

    Args:
        model: a ``BertForMaskedLM``/``BertForPreTraining`` (or a peft model around one:
            LoRA layers and ``modules_to_save`` copies are injected in place, so calling
            the inner modules runs them).
        inputs: the collator's batch: ``input_ids``, ``attention_mask``, ``token_type_ids``
            ``(batch, seq)``, ``labels`` ``(batch, seq)`` with -100 at unmasked positions,
            optionally ``next_sentence_label`` ``(batch,)``.
        nsp_weight: the NSP loss's weight in the sum.
        report: ``report(name, value)`` receives the detached parts (``mlm_loss``,
            ``nsp_loss``, ``nsp_accuracy``), for logging.

    Returns:
        The scalar loss tensor (float32).
    """
    inner = model.get_base_model() if hasattr(model, "get_base_model") else model
    encoder = getattr(inner, inner.base_model_prefix)
    out = encoder(input_ids=inputs["input_ids"], attention_mask=inputs.get("attention_mask"),
                  token_type_ids=inputs.get("token_type_ids"))
    labels = inputs["labels"]
    sel = labels != -100
    logits = inner.cls.predictions(out[0][sel])
    nsl = inputs.get("next_sentence_label")
    nsp_logits = inner.cls.seq_relationship(out[1]) if nsl is not None else None
    return pretraining_loss(logits, nsp_logits, labels[sel], nsl, nsp_weight, report)


def pretraining_loss(mlm_logits, nsp_logits, mlm_labels, nsp_labels, nsp_weight: float = 1.0, report=None):
    """``mean CE(MLM) + nsp_weight * mean CE(NSP)`` (float32), the parts sent to ``report``.

    Args:
        mlm_logits: ``(..., vocab)`` logits; ``mlm_labels`` the same leading shape, -100
            where not masked (ignored).
        nsp_logits: ``(batch, 2)`` or None (MLM only); index 0 = IsNext, the label
            convention of ``next_sentence_label`` (1 = random B).
        nsp_weight: the NSP loss's weight (BERT: 1).
        report: optional ``report(name, value)``.
    """
    import torch.nn.functional as F

    loss = F.cross_entropy(mlm_logits.float().reshape(-1, mlm_logits.shape[-1]), mlm_labels.reshape(-1),
                           ignore_index=-100)
    if report is not None:
        report("mlm_loss", loss.detach())
    if nsp_logits is not None and nsp_labels is not None:
        nsp = F.cross_entropy(nsp_logits.float(), nsp_labels)
        if report is not None:
            report("nsp_loss", nsp.detach())
            report("nsp_accuracy", (nsp_logits.argmax(-1) == nsp_labels).float().mean().detach())
        loss = loss + nsp_weight * nsp
    return loss


def _apply_freeze_or_lora(job: _Job, opts: TrainOptions) -> None:
    net = job.net
    if opts.lora and opts.freeze_encoder:
        raise TrainError("freeze_encoder and lora are exclusive", "LoRA already keeps the encoder weights fixed")
    if opts.merge and not opts.lora:
        raise TrainError("merge needs lora", "merge folds LoRA adapters into the weights")
    if opts.freeze_encoder:
        for p in net.base_model.parameters():
            p.requires_grad = False
        pooler = getattr(net.base_model, "pooler", None)
        if pooler is not None and job.task in ("classify", "nsp"):
            for p in pooler.parameters():
                p.requires_grad = True
    if opts.lora and opts.lora_targets not in _LORA_TARGETS:
        raise TrainError(f"unknown lora_targets '{opts.lora_targets}'", "use attention or all-linear")
    if opts.lora:
        if job.task == "mlm" and not _has_bert_pretraining_heads(net):
            raise TrainError(f"LoRA pre-training needs BERT's cls.predictions head; '{job.base}' "
                             f"({net.config.model_type}) has another", "train the full model (without --lora)")
        try:
            from peft import LoraConfig, get_peft_model
        except ImportError:
            raise TrainError("lora needs the 'peft' package", "pip install 'bertcli[train]'") from None
        # Pre-training heads: the MLM transform (and pooler + NSP classifier) are trained
        # in full, the decoder stays tied to the (frozen) word embeddings, and every bias
        # is trained too (BitFit, Ben Zaken et al. 2022), which gives the new MLM output
        # bias its unigram prior at a cost of ~0.2M parameters; peft saves them all
        # with the adapter (``bias="all"``).
        cfg = LoraConfig(r=int(opts.lora), lora_alpha=opts.lora_alpha or 2 * int(opts.lora),
                         lora_dropout=opts.lora_dropout,
                         target_modules=_lora_target_regex(opts, net),
                         modules_to_save=job.lora_modules_to_save,
                         bias="all" if job.task == "mlm" else "none")
        try:
            job.net = get_peft_model(net, cfg)
        except ValueError as e:
            raise ModelError(f"cannot add LoRA adapters to '{job.base}': {str(e).splitlines()[0]}",
                             "LoRA targets BERT-style attention modules (query/key/value)") from None


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


def _save(job: _Job, net, opts: TrainOptions, result: TrainResult, dev, dt, world: int) -> None:
    from .. import defaults

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
