"""``bertcli fill-mask``: masked-token prediction."""

from __future__ import annotations

import click

from .options import batch_options, explain_options, input_options, model_options, output_options
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
@click.option("--whole-words", "whole_words", is_flag=True,
              help="Only whole-word candidates (is_subword false, no special token); still the top-k of them, "
                   "scores unchanged.")
@click.option("--joint", is_flag=True,
              help="Several masks: fill the most confident one, run again with it filled, repeat "
                   "(one forward pass per mask).")
@click.option("--mask-token", "mask_token", metavar="STR",
              help="The placeholder your texts use for the mask (e.g. ___, or [MASK] for a <mask> model).")
@explain_options("a word (one vocabulary token) to explain at every mask instead of its top candidate.")
@model_options
@input_options()
@batch_options
@output_options
def fill_mask_cmd(texts, top_k, targets, whole_words, joint, mask_token, **params):
    """Predict the token behind each [MASK] (<mask> for RoBERTa-style models).

    Every mask of a text gets its own top-k; each prediction's sequence fills
    the other masks with their top-1, and the record's sequence fills them all.
    By default each mask is predicted with the others still masked (as the
    transformers pipeline); --joint fills them one at a time, most confident
    first, each score then conditioned on the masks filled before it.
    is_subword marks continuation pieces (##ing; a BPE piece without its
    word-start marker right after a word). Long texts keep a window around
    each mask (truncated: true).

    \b
    Examples:
      bertcli fill-mask "I drink a cup of [MASK] every morning."
      bertcli fill-mask "I [MASK] this movie." --targets love,hate
      bertcli fill-mask "The [MASK] [MASK] barked." --joint --whole-words
      bertcli fill-mask "She ___ to work every day." --mask-token ___
      bertcli fill-mask --input masked.txt --format jsonl | jq -r '.predictions[0][0].token_str'
      bertcli fill-mask --explain "I drink a cup of [MASK] every morning."  # why the top word
    \b
    JSONL record: input fields (or text) plus
      predictions: one list per mask of [{score, token, token_str, is_subword, sequence}],
      sequence, truncated
      --explain: explanations: one per mask, {mask, start, end, token, token_str,
                 attributions: [{word, start, end, score}],
                 explanation: {logit, baseline_logit, delta, ...}}
    """
    from ..tasks import fill_mask as task
    from .explain_view import explain_params, fill_mask_columns, fill_mask_rows, fill_mask_stream

    ex = explain_params(params, joint=joint)
    tg = targets.split(",") if targets is not None else None  # --targets "" is an error, not "no targets"
    task.check_flags(tg, whole_words, mask_token)  # before the (slow) model load
    kw = dict(whole_words=whole_words, joint=joint, mask_token=mask_token)
    stream = lambda lm, recs, opts: task.stream(lm, recs, top_k, tg, opts, **kw)  # noqa: E731
    columns, rows = ["text", "mask", "token", "score", "sequence"], _rows

    def prepare(lm):
        task.check_options(lm.tokenizer, tg, whole_words, mask_token)
        if ex is not None and ex.label is not None:
            task.target_ids(lm.tokenizer, [ex.label])

    if ex is not None:
        chosen = ex.label is not None
        stream = fill_mask_stream(stream, ex, mask_token, params)
        columns, rows = fill_mask_columns(chosen), lambda rec: fill_mask_rows(rec, chosen)
    run_inference(task="fill-mask", texts=texts, params=params, stream=stream, prepare=prepare,
                  columns=columns, rows_of=rows)
