"""Next-sentence prediction (``nsp``) with BERT's pre-training head.

BERT paper (Devlin et al., 2019), section 3.1 and appendix A.2: the NSP classifier on
the pooled ``[CLS]`` of ``[CLS] A [SEP] B [SEP]`` (segment ids 0 for A, 1 for B) has two
logits, and index 0 means "B is the next sentence after A" (``IsNext``), index 1 "B is a
random sentence" (``NotNext``) — ``BertForNextSentencePrediction``'s label convention.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from ..io.readers import Record
from .base import StreamOptions, encode_texts, stream_records, text_list
from .classify import classify_features, scores_from_logits


def nsp(lm, texts_a: list[str], texts_b: list[str], opts: StreamOptions | None = None) -> list[dict]:
    """Score pairs. Returns per pair ``{"is_next": bool, "score": P(B follows A), "truncated": bool}``.

    ``score`` is ``softmax(logits)[0]``; ``is_next`` is ``score >= 0.5``. Pairs longer
    than the model's maximum are truncated longest-first.

    Raises:
        TypeError: ``texts_a`` or ``texts_b`` is a single ``str`` (pass ``[text]``).
    """
    opts = opts or StreamOptions()
    feats, flags = encode_texts(lm.tokenizer, text_list(texts_a, "texts_a"), text_list(texts_b, "texts_b"),
                                lm.max_length)
    logits = classify_features(lm, feats, opts)
    out = []
    for lg, fl in zip(logits, flags):
        p_next = float(scores_from_logits(lg, "softmax")[0])
        out.append({"is_next": p_next >= 0.5, "score": p_next, "truncated": fl})
    return out


def stream(lm, records: Iterable[Record], opts: StreamOptions | None = None
           ) -> Iterator[tuple[Record, dict | None]]:
    """nsp over a stream of pair records (``text`` = A, ``text_pair`` = B)."""
    opts = opts or StreamOptions()

    def window(recs: list[Record]) -> list[dict]:
        return nsp(lm, [r.text for r in recs], [r.text_pair for r in recs], opts)

    return stream_records(records, window, opts)
