"""``bertcli train classify|ner|mlm``: fine-tuning and pre-training (thin wrappers over bertcli.train)."""

from __future__ import annotations

import json
import sys

import click

from .options import _stack, check_device, name_list


def train_options(f):
    """Options that map one to one onto :class:`bertcli.train.TrainOptions`."""
    return _stack(
        click.option("-m", "--model", "model", metavar="DIR|HUB_ID",
                     help="Base model folder, or a hub id from the local Hugging Face cache. Default: the installed "
                          "all-MiniLM-L6-v2 encoder."),
        click.option("--train", "train_path", required=True, metavar="PATH", help="Training data."),
        click.option("--eval", "eval_path", metavar="PATH", help="Evaluation data (each epoch / --eval-steps)."),
        click.option("-o", "--output", required=True, metavar="DIR", help="Model folder to write."),
        click.option("--epochs", type=click.FloatRange(min=0, min_open=True), default=3.0, show_default=True,
                     help="Passes over the training data (fractions allowed)."),
        click.option("--max-steps", type=click.IntRange(min=1), help="Optimizer steps; overrides --epochs."),
        click.option("--lr", "--learning-rate", "learning_rate", type=click.FloatRange(min=0, min_open=True), default=5e-5,
                     show_default=True, help="Peak learning rate (LoRA and short runs want ~10x more)."),
        click.option("--head-lr", type=click.FloatRange(min=0, min_open=True), metavar="LR",
                     help="Peak learning rate of the head and pooler (default: --lr); a new head on a frozen or "
                          "LoRA encoder may want more."),
        click.option("-b", "--batch-size", type=click.IntRange(min=1), default=32, show_default=True,
                     help="Examples per micro-batch (per device)."),
        click.option("--eval-batch-size", type=click.IntRange(min=1), help="Examples per evaluation batch (default: --batch-size)."),
        click.option("--grad-accum", type=click.IntRange(min=1), default=1, show_default=True,
                     help="Micro-batches per optimizer step."),
        click.option("--warmup", type=click.FloatRange(min=0), default=0.0, show_default=True,
                     help="Linear warm-up: a fraction of all steps (<1) or a step count."),
        click.option("--weight-decay", type=click.FloatRange(min=0), default=0.01, show_default=True,
                     help="AdamW weight decay (not on biases/LayerNorm)."),
        click.option("--max-length", type=click.IntRange(min=8), default=128, show_default=True,
                     help="Tokens per example."),
        click.option("--seed", type=int, default=42, show_default=True, help="Same seed, same metrics."),
        click.option("--device", default="auto", show_default=True, metavar="auto|cpu|cuda|cuda:N|mps",
                     callback=check_device, help="Where to train; auto: CUDA, then MPS, then CPU."),
        click.option("--dtype", default="auto", show_default=True,
                     type=click.Choice(["auto", "float32", "float16", "bfloat16"]),
                     help="Mixed precision (autocast); weights stay float32."),
        click.option("--eval-steps", type=click.IntRange(min=1), help="Evaluate every N steps (default: each epoch)."),
        click.option("--logging-steps", type=click.IntRange(min=1), default=50, show_default=True,
                     help="Report the training loss every N steps."),
        click.option("--patience", type=click.IntRange(min=1), help="Early stopping after N evaluations without gain."),
        click.option("--metric", help="Model-selection metric: accuracy, macro_f1, loss (classify; multi-label: "
                                      "micro_f1, subset_accuracy), f1, precision, recall (ner), mlm_loss, "
                                      "perplexity, top1_accuracy, nsp_accuracy (mlm)."),
        click.option("--no-group-by-length", "group_by_length", is_flag=True, flag_value=False, default=True,
                     help="Do not batch examples of similar length."),
        click.option("--freeze-encoder", is_flag=True, help="Train only the head."),
        click.option("--lora", type=click.IntRange(min=1), metavar="R", help="Train LoRA adapters of rank R."),
        click.option("--lora-alpha", type=click.FloatRange(min=0, min_open=True), help="LoRA alpha (default 2*R)."),
        click.option("--lora-dropout", type=click.FloatRange(0, 1, max_open=True), default=0.1, show_default=True,
                     help="Dropout on the LoRA inputs."),
        click.option("--lora-targets", type=click.Choice(["attention", "all-linear"]), default="attention",
                     show_default=True, help="Layers that get LoRA adapters."),
        click.option("--lora-layers", type=click.IntRange(min=1), metavar="N",
                     help="Adapters only in the top N encoder layers (the rest stays frozen; faster steps)."),
        click.option("--merge", is_flag=True, help="With --lora: write plain merged weights."),
        click.option("--resume", is_flag=True, help="Continue from the last complete checkpoint in --output."),
        click.option("--overwrite", is_flag=True, help="Replace a previous run in --output."),
        click.option("--keep-checkpoints", is_flag=True, help="Keep --output/checkpoints after the run."),
        click.option("--max-train-samples", type=click.IntRange(min=1), help="Train on a seeded random subset."),
        click.option("--max-eval-samples", type=click.IntRange(min=1), help="Evaluate on a seeded random subset."),
        click.option("--encoding", default="auto", show_default=True, help="Data encoding (auto: UTF-8, else latin-1)."),
        click.option("-f", "--format", "fmt", type=click.Choice(["table", "jsonl"]), default=None,
                     help="Metrics output. Default: table on a terminal, else jsonl."),
        click.option("-q", "--quiet", is_flag=True, help="No progress bar or notices on stderr."),
    )(f)


_OPTION_FIELDS = ("epochs", "max_steps", "learning_rate", "head_lr", "batch_size", "eval_batch_size", "grad_accum", "warmup",
                  "weight_decay", "max_length", "seed", "device", "dtype", "eval_steps", "logging_steps", "patience",
                  "metric", "group_by_length", "freeze_encoder", "lora", "lora_alpha", "lora_dropout", "lora_targets", "lora_layers", "merge",
                  "resume", "overwrite", "keep_checkpoints", "max_train_samples", "max_eval_samples")


def _options(params: dict):
    from ..train import TrainOptions

    kw = {k: params.pop(k) for k in _OPTION_FIELDS}
    if kw["merge"] and not kw["lora"]:
        raise click.UsageError("--merge needs --lora R")
    if kw["freeze_encoder"] and kw["lora"]:
        raise click.UsageError("--freeze-encoder and --lora exclude each other: LoRA already keeps the encoder "
                               "weights fixed")
    _check_ignored(kw, params)
    if kw["max_steps"] is None:
        kw["max_steps"] = -1  # TrainingArguments' "not set": --epochs decides
    return TrainOptions(**kw, command="bertcli " + " ".join(sys.argv[1:]))


def _check_ignored(kw: dict, params: dict) -> None:
    """Options that the rest of the command line would make do nothing: a usage error
    (exit 2), or a warning where the run is still what was asked for."""
    from ..errors import UsageError

    ctx = click.get_current_context(silent=True)

    def typed(name: str) -> bool:
        return ctx is not None and ctx.get_parameter_source(name) == click.core.ParameterSource.COMMANDLINE

    if kw["resume"] and kw["overwrite"]:
        raise UsageError("--resume continues the run in --output and --overwrite replaces it", "give one of them")
    for name in ("lora_alpha", "lora_dropout", "lora_targets", "lora_layers"):
        if typed(name) and not kw["lora"]:
            raise UsageError(f"--{name.replace('_', '-')} shapes LoRA adapters", "add --lora R, or drop it")
    if "eval_fraction" in params and params.get("eval_path") and typed("eval_fraction"):
        raise UsageError("--eval-fraction holds out part of --train when there is no --eval; with --eval FILE "
                         "it would do nothing", "drop one of them")
    has_eval = bool(params.get("eval_path")) or bool(params.get("eval_fraction"))
    if not has_eval:
        for name in ("eval_steps", "eval_batch_size", "max_eval_samples", "metric", "patience"):
            if typed(name) and name == "metric":  # an unknown metric is the first thing to say
                from types import SimpleNamespace
                _check_metric(SimpleNamespace(metric=kw["metric"]), ctx.command.name,
                              bool(params.get("multi_label")), bool(params.get("nsp")))
            if typed(name):
                raise UsageError(f"--{name.replace('_', '-')} needs evaluation data, and there is none",
                                 "pass --eval FILE" + (" (or --eval-fraction above 0)"
                                                       if "eval_fraction" in params else ""))
    if kw["max_steps"] is not None and typed("epochs") and not params.get("quiet"):
        click.echo(f"Warning: --max-steps {kw['max_steps']} overrides --epochs {kw['epochs']:g}: training stops "
                   f"after {kw['max_steps']} step{'s' if kw['max_steps'] > 1 else ''}", err=True)


def _check_metric(opts, task: str, multi_label: bool = False, nsp: bool = False) -> None:
    """Validate ``--metric`` for the task before any work (a usage error, exit 2)."""
    from ..train.options import TrainError, check_metric

    try:
        opts.metric = check_metric(opts.metric, task, multi_label, nsp)
    except TrainError as e:
        raise click.BadParameter(f"{e.message}; {e.hint}", param_hint="'--metric'") from None


class Reporter:
    """Progress on stderr (rich bar when it is a terminal, plain notices otherwise) and
    one metrics row per evaluation on stdout (table or JSONL)."""

    def __init__(self, fmt: str | None, quiet: bool):
        self.fmt = fmt or ("table" if sys.stdout.isatty() else "jsonl")
        self.quiet = quiet
        self.progress = None
        self.task = None
        self.step = 0
        if not quiet and sys.stderr.isatty():
            from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn, TimeRemainingColumn

            from .output import live_progress
            self.progress = live_progress(TextColumn("train"), BarColumn(), MofNCompleteColumn(),
                                          TextColumn("loss {task.fields[loss]}"), TextColumn("{task.fields[rate]}"),
                                          TimeElapsedColumn(), TimeRemainingColumn())

    def __call__(self, ev: dict) -> None:
        kind = ev.get("event")
        if kind == "train_begin" and self.progress is not None:
            self.progress.start()
            self.task = self.progress.add_task("train", total=ev.get("max_steps"), loss="-", rate="")
        elif kind == "step":
            self.step = ev.get("step", self.step)
            if self.progress is not None and self.task is not None:
                # drawn at once: a step takes longer than a redraw, and the bar must show every one
                self.progress.update(self.task, completed=self.step, refresh=True)
        elif kind == "log" and self.progress is not None and self.task is not None:
            rate = ev.get("samples_per_second")
            nsp = (f" (nsp {ev['nsp_loss']:.4f}, acc {ev['nsp_accuracy']:.2f})"
                   if ev.get("nsp_loss") is not None and ev.get("nsp_accuracy") is not None else "")
            self.progress.update(self.task, completed=ev.get("step", 0),
                                 loss=f"{ev['loss']:.4f}{nsp}" if ev.get("loss") is not None else "-",
                                 rate=f"{rate:.1f} samples/s" if rate else "")
        elif kind == "log" and not self.quiet:
            # Not a terminal (a log file, CI): one plain line per logging step.
            loss = f" loss {ev['loss']:.4f}" if ev.get("loss") is not None else ""
            parts = "".join(f" {k} {ev[k]:.4f}" for k in ("mlm_loss", "nsp_loss", "nsp_accuracy")
                            if ev.get(k) is not None)
            rate = f" {ev['samples_per_second']:.1f} samples/s" if ev.get("samples_per_second") else ""
            click.echo(f"step {ev.get('step')}/{ev.get('max_steps')}{loss}{parts}{rate}", err=True)
        elif kind == "eval":
            self.row({"step": ev.get("step"), "epoch": ev.get("epoch"), **ev.get("metrics", {})})
        elif kind == "warning" and not self.quiet:
            self.echo(f"Warning: {ev.get('message')}")
        elif kind == "saved" and not self.quiet:
            self.echo(f"Saved model to {ev.get('path')}")
        elif kind == "train_end":
            self.stop()

    def echo(self, msg: str) -> None:
        if self.progress is not None:
            self.progress.console.print(msg, markup=False, highlight=False)
        else:
            click.echo(msg, err=True)

    def row(self, metrics: dict) -> None:
        from .output import paused

        # the bar is cleared while a row prints to the same terminal, then drawn again
        with paused(self.progress if sys.stdout.isatty() else None):
            if self.fmt == "jsonl":
                click.echo(json.dumps(_rounded(metrics)))
                sys.stdout.flush()
                return
            from rich.console import Console
            from rich.table import Table
            t = Table(*[k for k in metrics], header_style="bold")
            t.add_row(*[_cell(v) for v in metrics.values()])
            Console(highlight=False).print(t)

    def stop(self) -> None:
        if self.progress is not None:
            self.progress.stop()
            self.progress = None


def parse_label_map(value: str | None) -> dict[str, str] | None:
    """``"0=negative,1=positive"`` -> ``{"0": "negative", "1": "positive"}``."""
    if not value:
        return None
    out = {}
    for part in value.split(","):
        old, sep, new = part.partition("=")
        if not sep or not old.strip() or not new.strip():
            raise click.BadParameter(f"'{part}' is not OLD=NEW", param_hint="--label-map")
        if old.strip() in out:
            raise click.BadParameter(f"'{old.strip()}' is mapped more than once", param_hint="--label-map")
        out[old.strip()] = new.strip()
    return out


def _rounded(d):
    return {k: (round(v, 6) if isinstance(v, float) else v) for k, v in d.items()}


def _cell(v) -> str:
    if isinstance(v, float):
        return f"{v:.4f}"
    return "" if v is None else str(v)


def _check_extras(ner_eval: bool = False) -> None:
    import importlib.util

    # seqeval scores NER evaluations: without it a run would die at its first evaluation
    missing = [m for m in ("accelerate", *(["seqeval"] if ner_eval else [])) if importlib.util.find_spec(m) is None]
    if missing:
        from ..errors import BertcliError
        raise BertcliError(f"training needs {', '.join(missing)}", "pip install 'bertcli[train]'")


def _run(fn, params, *args, **kw):
    _check_extras(ner_eval=fn.__name__ == "train_ner" and len(args) > 3 and bool(args[3]))  # args[3]: --eval
    rep = Reporter(params.pop("fmt"), params.pop("quiet"))
    try:
        result = fn(*args, progress=rep, **kw)
    except KeyboardInterrupt:
        rep.stop()
        # checkpoints stay in OUTPUT/checkpoints; the same command with --resume continues
        click.echo(f"Interrupted at step {rep.step}: continue from the last complete checkpoint with the same "
                   "command and --resume", err=True)
        raise click.exceptions.Exit(130) from None
    finally:
        rep.stop()
    import os

    # under torchrun every rank gets the result; the main one alone says so (as the Reporter's events)
    if not rep.quiet and os.environ.get("RANK", "0") == "0":
        best = ", ".join(f"{k} {_cell(v)}" for k, v in result.metrics.items() if not isinstance(v, (dict, list)))
        saved = f" (step {result.best_step}, the weights saved)" if result.best_step is not None else ""
        click.echo(f"Done: {result.global_step} steps; {result.output_dir}" + (f"; best{saved}: {best}" if best else ""),
                   err=True)
    return result


@click.group("train")
def train_group():
    """Fine-tune or pre-train a local model; writes a folder every command loads.

    \b
    Examples:
      bertcli train classify --train sst2/train.tsv --eval sst2/dev.tsv -o runs/sst2
      bertcli train ner --train conll2003/train.txt --eval conll2003/dev.txt -o runs/conll
      bertcli train mlm --train books/ -o runs/mlm --nsp
    """


@train_group.command("classify")
@train_options
@click.option("--text-field", help="Text field/column (default: text, sentence, sentence1, ...).")
@click.option("--text-pair-field", help="Second text of a pair (e.g. sentence2).")
@click.option("--label-field", help="Label field/column (default: label, labels, ...).")
@click.option("--data-format", type=click.Choice(["auto", "jsonl", "csv", "tsv", "label-text"]), default="auto",
              show_default=True, help="label-text: 'LABEL text' per line (TREC).")
@click.option("--multi-label", is_flag=True, help="Labels are lists (one sigmoid per label).")
@click.option("--label-sep", help="Separator of labels in a CSV/TSV cell (with --multi-label).")
@click.option("--header/--no-header", default=None, help="CSV/TSV has a header row (default: detect).")
@click.option("--labels", "labels", metavar="A,B,...", help="Label set in id order (default: sorted from the data).")
@click.option("--label-map", "label_map", metavar="OLD=NEW,...", help="Rename labels as read (0=negative,1=positive).")
def train_classify_cmd(**params):
    """Fine-tune a sequence classifier (single texts or pairs, single- or multi-label).

    \b
    Examples:
      bertcli train classify --train sst2/train.tsv --eval sst2/dev.tsv -o runs/sst2 --epochs 1
      bertcli train classify --train rte/train.tsv --eval rte/dev.tsv --text-field sentence1 \\
          --text-pair-field sentence2 -o runs/rte
      bertcli train classify --train trec/train_5500.label --data-format label-text -o runs/trec
    """
    from ..train import train_classify

    opts = _options(params)
    _check_metric(opts, "classify", multi_label=params["multi_label"])
    labels = name_list(params.pop("labels", None), "--labels")
    params.pop("labels", None)
    _run(train_classify, params, params.pop("model"), params.pop("train_path"), params.pop("output"),
         params.pop("eval_path"), text_field=params.pop("text_field"), text_pair_field=params.pop("text_pair_field"),
         label_field=params.pop("label_field"), data_format=params.pop("data_format"),
         multi_label=params.pop("multi_label"), label_sep=params.pop("label_sep"), header=params.pop("header"),
         encoding=params.pop("encoding"), labels=labels, label_map=parse_label_map(params.pop("label_map")),
         options=opts)


@train_group.command("ner")
@train_options
@click.option("--data-format", type=click.Choice(["auto", "conll", "jsonl", "spans", "labelstudio"]), default="auto",
              show_default=True,
              help="conll: token and tag columns, blank line between sentences; jsonl: tokens/tags lists; spans: "
                   "JSONL text + character spans (doccano entities/label, spaCy/Prodigy spans, `ner -f spans`); "
                   "labelstudio: Label Studio's JSON export.")
@click.option("--text-field", default="text", show_default=True, help="spans/labelstudio: the text's key.")
@click.option("--token-column", type=int, default=0, show_default=True, help="CoNLL token column (0-based).")
@click.option("--tag-column", type=int, default=-1, show_default=True, help="CoNLL tag column (-1: last).")
@click.option("--tokens-field", default="tokens", show_default=True, help="JSONL tokens key.")
@click.option("--tags-field", help="JSONL tags key (default: tags, ner_tags, labels).")
@click.option("--scheme", type=click.Choice(["auto", "IOB1", "IOB2", "BIOES"]), default="auto", show_default=True,
              help="Tagging scheme of the data (auto: detected; IOB1 is converted to IOB2).")
@click.option("--on-invalid", type=click.Choice(["fix", "skip", "error"]), default="fix", show_default=True,
              help="Invalid tag sequences: repair (fix) or leave the sentence out (skip), reported; or stop. Spans "
                   "cutting a word, overlapping or out of range: stop (fix, error) or leave the record out (skip).")
@click.option("--label-all-tokens", is_flag=True, help="Continuation WordPieces get the word's I- tag.")
@click.option("--tags", "tags", metavar="O,B-X,...",
              help="Tag set in id order (default: the training data's, O first). Names tags the training data "
                   "lacks, e.g. I-LOC where a small training set has only B-LOC but --eval has both.")
def train_ner_cmd(**params):
    """Fine-tune a token classifier (NER) on CoNLL columns, JSONL tokens/tags, or character
    spans exported by annotation tools (doccano, spaCy/Prodigy, Label Studio).

    \b
    Examples:
      bertcli train ner --train conll2003/train.txt --eval conll2003/dev.txt -o runs/conll
      bertcli train ner --train weibo_ner/weiboNER_2nd_conll.train -o runs/weibo   # Chinese, BIO
      bertcli train ner --train doccano.jsonl --eval label-studio.json -o runs/mine
    """
    from ..train import train_ner

    tags = name_list(params.pop("tags", None), "--tags")
    opts = _options(params)
    _check_metric(opts, "ner")
    _run(train_ner, params, params.pop("model"), params.pop("train_path"), params.pop("output"),
         params.pop("eval_path"), data_format=params.pop("data_format"), token_column=params.pop("token_column"),
         tag_column=params.pop("tag_column"), tokens_field=params.pop("tokens_field"),
         tags_field=params.pop("tags_field"), text_field=params.pop("text_field"), scheme=params.pop("scheme"),
         on_invalid=params.pop("on_invalid"),
         encoding=params.pop("encoding"), label_all_tokens=params.pop("label_all_tokens"), labels=tags,
         options=opts)


@train_group.command("mlm")
@train_options
@click.option("--nsp", is_flag=True, help="Also train next-sentence prediction (BERT pre-training).")
@click.option("--nsp-weight", type=click.FloatRange(min=0, min_open=True), default=1.0, show_default=True,
              help="With --nsp: weight of the NSP loss in the summed loss (BERT: 1).")
@click.option("--mlm-probability", type=click.FloatRange(0, 1, min_open=True), default=0.15, show_default=True,
              help="Share of tokens to mask and predict (BERT: 0.15).")
@click.option("--documents", type=click.Choice(["auto", "file", "blank-line"]), default="auto", show_default=True,
              help="How text splits into documents.")
@click.option("--no-gutenberg", "gutenberg", is_flag=True, flag_value=False, default=True,
              help="Keep Project Gutenberg headers/footers.")
@click.option("--eval-fraction", type=click.FloatRange(0, 1, max_open=True), default=0.05, show_default=True,
              help="Held-out share of --train when there is no --eval (0: none).")
def train_mlm_cmd(**params):
    """Masked-LM (+ NSP) pre-training on raw text files or folders.

    \b
    Examples:
      bertcli train mlm --train books/ -o runs/mlm --nsp --max-steps 2000
    """
    from ..train import train_mlm

    opts = _options(params)
    _check_metric(opts, "mlm", nsp=params["nsp"])
    ctx = click.get_current_context()
    if ctx.get_parameter_source("nsp_weight") == click.core.ParameterSource.COMMANDLINE and not params["nsp"]:
        from ..errors import UsageError
        raise UsageError("--nsp-weight weighs the next-sentence loss", "add --nsp, or drop it")
    _run(train_mlm, params, params.pop("model"), params.pop("train_path"), params.pop("output"),
         params.pop("eval_path"), nsp=params.pop("nsp"), nsp_weight=params.pop("nsp_weight"),
         mlm_probability=params.pop("mlm_probability"),
         documents=params.pop("documents"), encoding=params.pop("encoding"), gutenberg=params.pop("gutenberg"),
         eval_fraction=params.pop("eval_fraction"), options=opts)


@train_group.command("nsp")
@train_options
@click.option("--documents", type=click.Choice(["auto", "file", "blank-line"]), default="auto", show_default=True,
              help="How text splits into documents (real ones: B follows A inside a document).")
@click.option("--no-gutenberg", "gutenberg", is_flag=True, flag_value=False, default=True,
              help="Keep Project Gutenberg headers/footers.")
@click.option("--eval-fraction", type=click.FloatRange(0, 1, max_open=True), default=0.05, show_default=True,
              help="Held-out share of --train when there is no --eval (0: none).")
@click.option("--short-seq-prob", type=click.FloatRange(0, 1), default=0.1, show_default=True,
              help="Share of pairs with a shorter random length (BERT: 0.1).")
@click.option("--random-b", type=click.Choice(["document", "length"]), default="document", show_default=True,
              help="Draw the document of a random B uniformly (BERT) or in proportion to its length.")
def train_nsp_cmd(**params):
    """Next-sentence prediction alone (no MLM) on raw text files or folders.

    Writes a BertForNextSentencePrediction folder (pooler + cls.seq_relationship, index 0 =
    IsNext) that 'bertcli nsp' runs; metrics: accuracy, is_next_accuracy, not_next_accuracy.

    \b
    Examples:
      bertcli train nsp --train books/ -o runs/nsp --lora 16 --lora-targets all-linear --lr 1e-3
    """
    from ..train import train_nsp

    opts = _options(params)
    _check_metric(opts, "nsp")
    _run(train_nsp, params, params.pop("model"), params.pop("train_path"), params.pop("output"),
         params.pop("eval_path"), documents=params.pop("documents"), encoding=params.pop("encoding"),
         gutenberg=params.pop("gutenberg"), eval_fraction=params.pop("eval_fraction"),
         short_seq_prob=params.pop("short_seq_prob"), random_b=params.pop("random_b"), options=opts)
