"""``bertcli ner``: named-entity recognition (token classification)."""

from __future__ import annotations

import click

from .options import batch_options, input_options, model_options, output_options
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
@model_options
@input_options()
@batch_options
@output_options
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
    \b
    JSONL record: input fields (or text) plus entities: a list of
      {entity_group, score, word, start, end} (aggregation none: {entity, score, index, word, start, end})
    """
    from ..tasks import ner as task

    run_inference(task="ner", texts=texts, params=params,
                  stream=lambda lm, recs, opts: task.stream(lm, recs, aggregation or None, stride, opts),
                  columns=["text", "entity", "word", "span", "score"], rows_of=_rows)
