"""``bertcli sentiment``: classify with sentiment conventions and the default model."""

from __future__ import annotations

import click

from .classify import LabelTable, check_model, classify_options, classify_params
from .options import batch_options, explain_options, input_options, model_options, output_options
from .output import warn
from .run import run_inference


@click.command("sentiment")
@click.argument("texts", nargs=-1)
@classify_options
@explain_options("the label to explain, a label name or positive/negative/neutral (default: the predicted one).")
@model_options
@input_options(pairs=True)
@batch_options
@output_options
def sentiment_cmd(texts, **params):
    """Sentiment of texts: positive, negative (or neutral).

    Runs a classification model (the shipped default, or --model DIR) and adds
    a normalised 'sentiment' to its label (POSITIVE, LABEL_1, '5 stars', ... ->
    positive).

    \b
    Examples:
      bertcli sentiment "I loved it" "The food was cold."
      cat reviews.jsonl | bertcli sentiment --field review > out.jsonl
      bertcli sentiment --explain "The plot was thin but the acting was superb."
    \b
    JSONL record: input fields (or text) plus
      sentiment, label, score, labels: [{label, score, sentiment}], truncated
      --explain: attributions: [{word, start, end, score}],
                 explanation: {label, logit, baseline_logit, delta, steps, method}
    """
    from ..tasks import classify as task
    from .explain_view import ExplainedLabelTable, explain_params, label_stream, resolve_label

    ex = explain_params(params)
    top_k, labels, pairs, texts, pair_option = classify_params(params, texts)
    table = LabelTable("sentiment", top_k) if ex is None else ExplainedLabelTable("sentiment", ex.label is not None)

    def add_sentiment(lm, rec, res):
        names = task.label_names(lm.config, labels)
        out = task.sentiment_fields(res, names)
        return {"sentiment": out.pop("sentiment"), **out}

    def prepare(lm):
        names = check_model(lm, labels, pairs, pair_option, table, params.get("quiet", False))
        unknown = [n for n in names if task.normalise_sentiment(n, names) is None]
        if unknown:
            warn(f"the model's label(s) {', '.join(unknown[:5])}{', ...' if len(unknown) > 5 else ''} have no "
                 "sentiment meaning, so 'sentiment' is null for them; use classify, or --labels to name them "
                 "(e.g. --labels negative,positive)", params.get("quiet", False))
        if ex is not None and ex.label is not None:
            resolve_label(names, ex.label, sentiment=True)

    stream = lambda lm, recs, opts: task.stream(lm, recs, top_k, labels, opts, pairs=pairs)  # noqa: E731
    if ex is not None:
        stream = label_stream(stream, ex, labels, pairs, params, default="sentiment", sentiment=True)
    run_inference(task="classify", default="sentiment", texts=texts, params=params, pairs=pairs,
                  stream=stream, prepare=prepare, transform=add_sentiment,
                  columns=table.columns, rows_of=table.rows)
