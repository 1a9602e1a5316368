"""``bertcli classify``: sequence classification with any local checkpoint."""

from __future__ import annotations

import click

from .options import batch_options, input_options, model_options, name_list, output_options
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


def label_rows(rec: dict, key: str = "label") -> list[list[str]]:
    labels = ", ".join(f"{d['label']} {fmt_score(d['score'])}" for d in rec["labels"][1:])
    row = [short(rec.get("text")), rec[key] if rec.get(key) is not None else rec["label"], fmt_score(rec["score"])]
    return [row + [labels]]


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
    top_k = parse_top_k(params["top_k"])
    labels = name_list(params.get("labels_override"), "--labels")
    pair_text = params.pop("text_pair", None)
    read_pairs = params.pop("read_pairs", False)
    if pair_text is not None:
        if not texts:
            raise click.UsageError("--text-pair pairs with texts given as arguments; "
                                   "to read pairs from --input or stdin use --pairs")
        return top_k, labels, True, [x for t in texts for x in (t, pair_text)]
    if read_pairs and texts:
        raise click.UsageError("--pairs reads pairs from --input or stdin; with arguments use --text-pair")
    ctx = click.get_current_context(silent=True)
    if ctx is not None and ctx.get_parameter_source("field_b") == click.core.ParameterSource.COMMANDLINE:
        # --field-b only means something for pairs read from records: it implies --pairs.
        if texts:
            raise click.UsageError("--field-b names the second text of records read from --input or stdin; "
                                   "with arguments use --text-pair")
        read_pairs = True
    return top_k, labels, read_pairs, texts


@click.command("classify")
@click.argument("texts", nargs=-1)
@classify_options
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
    \b
    JSONL record: input fields (or text[, text_pair]) plus
      label, score, labels: [{label, score}] (top-k, best first), truncated
    """
    from ..tasks import classify as task

    top_k, labels, pairs, texts = classify_params(params, texts)
    run_inference(task="classify", texts=texts, params=params, pairs=pairs,
                  stream=lambda lm, recs, opts: task.stream(lm, recs, top_k, labels, opts, pairs=pairs),
                  prepare=lambda lm: task.label_names(lm.config, labels),
                  columns=["text", "label", "score", "other labels"], rows_of=label_rows)
