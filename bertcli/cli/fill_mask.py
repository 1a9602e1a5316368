"""``bertcli fill-mask``: masked-token prediction."""

from __future__ import annotations

import click

from .options import batch_options, input_options, model_options, output_options
from .run import fmt_score, run_inference, short


def _rows(rec: dict) -> list[list[str]]:
    rows = []
    for m, preds in enumerate(rec["predictions"], 1):
        for rank, p in enumerate(preds, 1):
            rows.append([short(rec.get("text"), 40) if (m, rank) == (1, 1) else "", str(m) if rank == 1 else "",
                         p["token_str"], fmt_score(p["score"]), short(p["sequence"], 60)])
    return rows


@click.command("fill-mask")
@click.argument("texts", nargs=-1)
@click.option("-k", "--top-k", "top_k", type=click.IntRange(min=1), default=5, show_default=True,
              help="Predictions per mask.")
@click.option("--targets", metavar="W1,W2,...", help="Score only these words (each one vocabulary token).")
@model_options
@input_options()
@batch_options
@output_options
def fill_mask_cmd(texts, top_k, targets, **params):
    """Predict the token behind each [MASK] (<mask> for RoBERTa-style models).

    Every mask of a text gets its own top-k. Long texts keep a window around
    each mask (truncated: true).

    \b
    Examples:
      bertcli fill-mask "The capital of France is [MASK]."
      bertcli fill-mask "I [MASK] this movie." --targets love,hate
      bertcli fill-mask --input masked.txt --format jsonl | jq -r '.predictions[0][0].token_str'
    \b
    JSONL record: input fields (or text) plus
      predictions: one list per mask of [{score, token, token_str, sequence}], truncated
    """
    from ..tasks import fill_mask as task

    tg = targets.split(",") if targets is not None else None  # --targets "" is an error, not "no targets"
    run_inference(task="fill-mask", texts=texts, params=params,
                  stream=lambda lm, recs, opts: task.stream(lm, recs, top_k, tg, opts),
                  prepare=lambda lm: task.target_ids(lm.tokenizer, tg),
                  columns=["text", "mask", "token", "score", "sequence"], rows_of=_rows)
