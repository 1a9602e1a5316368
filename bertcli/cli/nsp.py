"""``bertcli nsp``: next-sentence prediction."""

from __future__ import annotations

import click

from .options import batch_options, input_options, model_options, output_options
from .run import fmt_score, run_inference, short


@click.command("nsp")
@click.argument("texts", nargs=-1)
@model_options
@input_options(pairs=True)
@batch_options
@output_options
def nsp_cmd(texts, **params):
    """Does sentence B follow sentence A? (BERT's next-sentence prediction head)

    Give A and B as two arguments (several pairs: A1 B1 A2 B2 ...), or read pairs
    from --input/stdin: JSONL/CSV/TSV fields --field-a/--field-b (default
    text/text_pair), or plain lines 'A<TAB>B'.

    \b
    Examples:
      bertcli nsp "He opened the fridge." "It was empty."
      bertcli nsp --input pairs.tsv --field-a sentence1 --field-b sentence2
    \b
    JSONL record: input fields (or text, text_pair) plus
      is_next (bool), score (probability that B follows A), truncated
    """
    from ..tasks import nsp as task

    run_inference(task="nsp", texts=texts, params=params, pairs=True,
                  stream=lambda lm, recs, opts: task.stream(lm, recs, opts),
                  columns=["A", "B", "is_next", "score"],
                  rows_of=lambda r: [[short(r.get("text"), 40), short(r.get("text_pair"), 40),
                                      "yes" if r["is_next"] else "no", fmt_score(r["score"])]])
