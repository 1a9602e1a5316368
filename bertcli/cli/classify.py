"""``bertcli classify``: sequence classification with any local checkpoint."""

from __future__ import annotations

import json
from pathlib import Path

import click

from .options import batch_options, explain_options, input_options, model_options, name_list, output_options
from .output import warn
from .run import fmt_score, run_inference, short


def parse_top_k(value: str) -> int | None:
    if value.lower() == "all":
        return None
    try:
        k = int(value)
    except ValueError:
        raise click.BadParameter("use a positive number or 'all'") from None
    if k < 1:
        raise click.BadParameter("use a positive number or 'all'")
    return k


class LabelTable:
    """The table of ``classify`` and ``sentiment``: text, label (or sentiment), score and,
    only where a row can have some, the other labels of ``--top-k``.

    ``columns`` is the list the table writer prints: :meth:`fit` edits it in place once
    the model is loaded (before the writer prints anything), so that a one-label model
    gets no empty column either.
    """

    OTHERS = "other labels"

    def __init__(self, key: str = "label", top_k: int | None = 1):
        self.key = key
        self.columns = ["text", key, "score"] + ([self.OTHERS] if top_k != 1 else [])

    def fit(self, n_labels: int) -> None:
        if n_labels <= 1 and self.OTHERS in self.columns:
            self.columns.remove(self.OTHERS)

    def rows(self, rec: dict) -> list[list[str]]:
        key = self.key
        row = [short(rec.get("text")), rec[key] if rec.get(key) is not None else rec["label"], fmt_score(rec["score"])]
        if self.OTHERS in self.columns:
            row.append(", ".join(f"{d['label']} {fmt_score(d['score'])}" for d in rec["labels"][1:]))
        return [row]


def trained_on_pairs(folder: str | Path) -> tuple[bool, str | None] | None:
    """``(pairs, second field)`` of the data a classifier was trained on, from the
    ``training_args.json`` that ``bertcli train classify`` writes (``data.text_pair_field``);
    None when the folder does not say (a model trained elsewhere)."""
    try:
        args = json.loads((Path(folder) / "training_args.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    data = args.get("data") if isinstance(args, dict) else None
    if args.get("task") != "classify" or not isinstance(data, dict) or "text_pair_field" not in data:
        return None
    second = data["text_pair_field"]
    return second is not None, second


def pair_mismatch(folder: str | Path, pairs: bool, pair_option: str | None) -> str | None:
    """A one-line warning when texts are given as pairs to a model trained on single texts,
    or alone to a model trained on pairs: the scores change (the second segment is input
    the model never learned from, or the one it always had is missing) without an error."""
    trained = trained_on_pairs(folder)
    if trained is None or trained[0] == pairs:
        return None
    if pairs:
        return (f"the model was trained on single texts (its training_args.json has no text_pair_field), so the "
                f"second texts of {pair_option} change its scores in a way it never learned; drop {pair_option}")
    return (f"the model was trained on text pairs (second text: '{trained[1]}', in its training_args.json), but "
            "each text comes alone here; give the second with --text-pair (arguments) or --pairs (--input/stdin)")


def check_model(lm, labels: list[str] | None, pairs: bool, pair_option: str | None, table: LabelTable,
                quiet: bool) -> list[str]:
    """What ``classify`` and ``sentiment`` check once the model is loaded: the label names
    (``--labels``), the table's columns, single texts vs pairs. Returns the label names."""
    from ..tasks import classify as task

    names = task.label_names(lm.config, labels)
    table.fit(len(names))
    msg = pair_mismatch(lm.path, pairs, pair_option)
    if msg:
        warn(msg, quiet)
    return names


def classify_options(f):
    f = click.option("--labels", "labels_override", metavar="A,B,...",
                     help="Label names by id, replacing placeholder LABEL_i names.")(f)
    f = click.option("--pairs", "read_pairs", is_flag=True,
                     help="Read sentence pairs from --input/stdin (--field-a/--field-b, or A<TAB>B lines).")(f)
    f = click.option("--text-pair", "text_pair", metavar="TEXT",
                     help="Second text of a pair, for every text given as an argument.")(f)
    f = click.option("-k", "--top-k", "top_k", default="1", show_default=True, metavar="N|all",
                     help="How many labels to return per text.")(f)
    return f


def classify_params(params: dict, texts):
    """``(top_k, labels, pairs, texts, pair_option)``: the options of ``classify`` and
    ``sentiment`` checked; ``pair_option`` names the option that made pairs (or None)."""
    top_k = parse_top_k(params["top_k"])
    labels = name_list(params.get("labels_override"), "--labels")
    pair_text = params.pop("text_pair", None)
    read_pairs = params.pop("read_pairs", False)
    if pair_text is not None:
        if not texts:
            raise click.UsageError("--text-pair pairs with texts given as arguments; "
                                   "to read pairs from --input or stdin use --pairs")
        return top_k, labels, True, [x for t in texts for x in (t, pair_text)], "--text-pair"
    if read_pairs and texts:
        raise click.UsageError("--pairs reads pairs from --input or stdin; with arguments use --text-pair")
    ctx = click.get_current_context(silent=True)
    option = "--pairs" if read_pairs else None
    if ctx is not None and ctx.get_parameter_source("field_b") == click.core.ParameterSource.COMMANDLINE:
        # --field-b only means something for pairs read from records: it implies --pairs.
        if texts:
            raise click.UsageError("--field-b names the second text of records read from --input or stdin; "
                                   "with arguments use --text-pair")
        read_pairs, option = True, option or "--field-b"
    return top_k, labels, read_pairs, texts, option


@click.command("classify")
@click.argument("texts", nargs=-1)
@classify_options
@explain_options("the label to explain (default: the predicted one).")
@model_options
@input_options(pairs=True)
@batch_options
@output_options
def classify_cmd(texts, **params):
    """Classify texts with a sequence-classification model.

    Scores are softmax probabilities (single-label), per-label sigmoids
    (problem_type multi_label_classification) or raw values (regression).
    Texts longer than the model's maximum are truncated (truncated: true).

    \b
    Examples:
      bertcli classify "great service" --model runs/sst2
      bertcli classify "A man is eating." --text-pair "Someone eats." -m runs/rte
      bertcli classify --pairs -i rte/dev.tsv --field-a sentence1 --field-b sentence2 -m runs/rte
      bertcli classify -m runs/topics --top-k all < questions.txt > out.jsonl
      bertcli classify --explain "great service" -m runs/sst2 -f jsonl | jq -c '.attributions'
    \b
    JSONL record: input fields (or text[, text_pair]) plus
      label, score, labels: [{label, score}] (top-k, best first), truncated
      --explain: attributions: [{word, start, end, score}],
                 explanation: {label, logit, baseline_logit, delta, steps, method}
    """
    from ..tasks import classify as task
    from .explain_view import ExplainedLabelTable, explain_params, label_stream, resolve_label

    ex = explain_params(params)
    top_k, labels, pairs, texts, pair_option = classify_params(params, texts)
    table = LabelTable("label", top_k) if ex is None else ExplainedLabelTable("label", ex.label is not None)
    stream = lambda lm, recs, opts: task.stream(lm, recs, top_k, labels, opts, pairs=pairs)  # noqa: E731

    def prepare(lm):
        names = check_model(lm, labels, pairs, pair_option, table, params.get("quiet", False))
        if ex is not None and ex.label is not None:
            resolve_label(names, ex.label)

    if ex is not None:
        stream = label_stream(stream, ex, labels, pairs, params)
    run_inference(task="classify", texts=texts, params=params, pairs=pairs, stream=stream, prepare=prepare,
                  columns=table.columns, rows_of=table.rows)
