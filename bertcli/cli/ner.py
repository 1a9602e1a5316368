"""``bertcli ner``: named-entity recognition (token classification)."""

from __future__ import annotations

import click

from .options import batch_options, explain_options, input_options, model_options, output_options
from .run import fmt_score, run_inference, short


def _rows(rec: dict) -> list[list[str]]:
    ents = rec["entities"]
    if not ents:
        return [[short(rec.get("text")), "", "", "", ""]]
    rows = []
    for i, e in enumerate(ents):
        rows.append([short(rec.get("text")) if i == 0 else "", e.get("entity_group") or e.get("entity"),
                     e["word"], f"{e['start']}-{e['end']}", fmt_score(e["score"])])
    return rows


@click.command("ner")
@click.argument("texts", nargs=-1)
@click.option("-a", "--aggregation", "aggregation", default=None,
              type=click.Choice(["none", "simple", "first", "average", "max"]),
              help="Aggregation strategy, as in the transformers token-classification pipeline. "
                   "Default: the model's own (config task_specific_params; 'first' for models "
                   "trained by 'bertcli train ner'), else simple.")
@click.option("--stride", type=click.IntRange(min=0), default=None,
              help="Tokens shared by consecutive windows of a long text (default: a quarter of the maximum).")
@explain_options()
@model_options
@input_options()
@batch_options
@output_options(extra_formats={"spans": "JSONL {text, spans: [{start, end, label, score}]}, the span format of "
                                        "spaCy/Prodigy, which 'train ner' and 'evaluate' read back."})
def ner_cmd(texts, aggregation, stride, **params):
    """Find named entities (people, places, organisations, ...).

    Long texts run in overlapping windows, so entities anywhere are found; start
    and end are character offsets into the original text, and
    text[start:end] == word always.

    \b
    Examples:
      bertcli ner "Angela Merkel visited Paris."
      bertcli ner --input news.txt --format jsonl | jq -c '.entities[] | [.entity_group, .word]'
      bertcli ner -m runs/conll --aggregation first < tweets.jsonl
      bertcli ner -m runs/conll -i docs.jsonl -f spans -o review.jsonl   # review, then train on it
      bertcli ner --explain "Angela Merkel visited Paris."   # which words made each entity
    \b
    JSONL record: input fields (or text) plus entities: a list of
      {entity_group, score, word, start, end}
      (aggregation none: {entity, score, index, word, start, end})
      --explain: each entity also has attributions: [{word, start, end, score}],
                 explanation: {logit, baseline_logit, delta, steps, method}
    --format spans record: input fields (or text) plus spans: a list of {start, end, label, score}
    """
    from ..tasks import ner as task
    from .explain_view import NER_COLUMNS, explain_params, ner_rows, ner_stream

    ex = explain_params(params)
    transform = None
    if params.get("fmt") == "spans":
        if aggregation == "none":
            raise click.UsageError("--format spans writes entities; --aggregation none gives token tags "
                                   "(use first, simple, average or max)")
        if params.get("resume"):
            raise click.UsageError("--resume continues a JSONL file of entities; drop --format spans to resume")
        transform = _as_spans
        params["fmt"] = "jsonl"  # a spans record is a JSONL line
    stream = lambda lm, recs, opts: task.stream(lm, recs, aggregation or None, stride, opts)  # noqa: E731
    columns, rows = ["text", "entity", "word", "span", "score"], _rows
    if ex is not None:
        stream, columns, rows = ner_stream(stream, ex, aggregation or None, stride, params), NER_COLUMNS, ner_rows
    run_inference(task="ner", texts=texts, params=params, stream=stream, columns=columns, rows_of=rows,
                  transform=transform)


def _as_spans(lm, rec, res: dict) -> dict:
    """The result as a ``spans`` record (:mod:`bertcli.train.data.spans`): spaCy/Prodigy's
    ``{"start", "end", "label"}`` objects rather than doccano's ``[start, end, label]``
    lists, since named keys can carry the score beside them and Prodigy takes the file
    as it is. ``text`` is added when the input record does not hold the text the offsets
    refer to under that key (``--field content``); an input ``text`` is then kept as
    ``input_text``."""
    from ..train.data.spans import entities_to_spans

    out = {}
    if rec.fields is not None and rec.fields.get("text") != rec.text:
        out["text"] = rec.text
    out["spans"] = entities_to_spans(res["entities"])
    return out
