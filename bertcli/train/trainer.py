"""transformers' ``Trainer`` as bertcli runs it: a NaN/inf loss guard, per-epoch loss sums
kept across a resume, BERT pre-training's loss parts in the logs, a separate learning rate
for the head and pooler, a seeded length-grouped sampler, and a callback that turns the
Trainer's events into bertcli's progress events and marks complete checkpoints."""

from __future__ import annotations

from pathlib import Path

from .checkpoints import COMPLETE_MARKER, _atomic_json
from .losses import LOSS_PARTS, masked_rows_mlm_loss, pretraining_loss
from .options import ProgressFn, TrainError, _emit


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
            state = self.epoch_loss_state()
            if state is None:
                return None
            # training_step returns the loss already divided by the accumulation steps,
            # so the sum over micro-batches / optimizer steps is the mean step loss.
            steps = max(1, self._micro_steps / max(1, self.args.gradient_accumulation_steps))
            self._loss_sum, self._micro_steps = None, 0
            return state[0] / steps

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
