"""Masked-LM and next-sentence-prediction examples (BERT paper, section 3.1 and appendix A.1).

* :func:`make_instances` packs each document's sentences into sequences of up to
  ``max_length`` tokens. Without NSP: whole sentences while they fit, nothing dropped
  (RoBERTa's FULL-SENTENCES within a document). With NSP, as Google's
  ``create_pretraining_data.py`` does: whole sentences are accumulated into a chunk
  of a target length (shorter with ``short_seq_prob``), the chunk is split at a random
  sentence boundary into A and B, and half of the time B is replaced by sentences from
  a random *other* document (label 1 = "random", 0 = "B follows A", the order of
  ``BertForPreTraining``'s ``next_sentence_label``); the unused tail goes back to the
  pool. Pairs longer than the budget are cut from the longer side.
* :func:`mask_tokens` picks 15% of the non-special positions; of those 80% become
  ``[MASK]``, 10% a random token, 10% stay unchanged; the label of every other position
  is -100 (ignored by the loss).
"""

from __future__ import annotations

import random

from .data import Document
from .features import IGNORE


def make_instances(tokenizer, docs: list[Document], max_length: int, nsp: bool, seed: int,
                   short_seq_prob: float = 0.1, random_b: str = "document") -> list[dict]:
    """Build pre-training instances.

    Args:
        tokenizer: a fast tokenizer with ``cls``/``sep`` tokens.
        docs: documents of sentences (:func:`bertcli.train.data.read_documents`).
        max_length: tokens per instance including ``[CLS]``/``[SEP]``.
        nsp: make sentence pairs with ``next_sentence_label``.
        seed: the instances depend only on it (``random.Random(seed)``).
        short_seq_prob: NSP only: probability of a shorter target length (BERT uses 0.1
            so that fine-tuning on short sequences is not out of distribution).
        random_b: NSP only: the document a random B comes from is drawn uniformly
            (``document``, BERT's rule) or in proportion to its number of sentences
            (``length``: a few long books among many short articles then give book B
            segments as often as the text holds book sentences).

    Returns:
        Dicts with ``input_ids``, ``attention_mask``, ``token_type_ids`` (and
        ``next_sentence_label`` with ``nsp``), unpadded, in a seeded shuffled order.

    Raises:
        ValueError: ``nsp`` with fewer than two documents (B must come from another one).
    """
    if nsp and len(docs) < 2:
        raise ValueError("next-sentence pairs need at least two documents")
    rng = random.Random(seed)
    # Tokenize every sentence once, in one batch per document (fast tokenizer).
    tok_docs = []
    for d in docs:
        ids = tokenizer(d.sentences, add_special_tokens=False)["input_ids"]
        tok_docs.append([s for s in ids if s])
    cls_id, sep_id = tokenizer.cls_token_id, tokenizer.sep_token_id
    budget = max_length - (3 if nsp else 2)
    if random_b not in ("document", "length"):
        raise ValueError(f"unknown random_b {random_b!r}: use document or length")
    draw = _length_draw(tok_docs) if random_b == "length" else None
    out: list[dict] = []
    if not nsp:
        for doc in tok_docs:
            _pack_mlm(doc, budget, out, cls_id, sep_id)
        rng.shuffle(out)
        return out
    for di, doc in enumerate(tok_docs):
        i = 0
        chunk: list[list[int]] = []
        length = 0
        target = budget if rng.random() >= short_seq_prob else rng.randint(2, budget)
        while i < len(doc):
            chunk.append(doc[i])
            length += len(doc[i])
            # Unlike BERT, a chunk grows to two sentences whenever the document has
            # them: a one-sentence chunk would force a "random" B and tilt the labels
            # away from 50/50 when sentences are long relative to the target.
            if i == len(doc) - 1 or (length >= target and len(chunk) >= 2):
                if chunk:
                    i = _nsp_pair(chunk, tok_docs, di, i, budget, target, rng, out, cls_id, sep_id, draw)
                chunk, length = [], 0
                target = budget if rng.random() >= short_seq_prob else rng.randint(2, budget)
            i += 1
    rng.shuffle(out)
    return out


def _pack_mlm(doc, budget, out, cls_id, sep_id) -> None:
    # Whole sentences per sequence while they fit (a sentence longer than the budget is
    # cut into pieces), so no token of the document is lost.
    cur: list[int] = []

    def emit():
        if cur:
            ids = [cls_id] + cur + [sep_id]
            out.append({"input_ids": ids, "attention_mask": [1] * len(ids), "token_type_ids": [0] * len(ids)})

    for sent in doc:
        if cur and len(cur) + len(sent) > budget:
            emit()
            cur = []
        while len(sent) > budget:
            if cur:
                emit()
                cur = []
            cur = sent[:budget]
            emit()
            cur, sent = [], sent[budget:]
        cur = cur + sent
    emit()


def _length_draw(tok_docs):
    import bisect
    import itertools

    cum = list(itertools.accumulate(len(d) for d in tok_docs))

    def draw(rng) -> int:
        return bisect.bisect_right(cum, rng.randrange(cum[-1])) if cum and cum[-1] else rng.randrange(len(tok_docs))
    return draw


def _nsp_pair(chunk, tok_docs, di, i, budget, target, rng, out, cls_id, sep_id, draw=None) -> int:
    a_end = rng.randint(1, len(chunk) - 1) if len(chunk) >= 2 else 1
    a = [t for s in chunk[:a_end] for t in s]
    if len(chunk) == 1 or rng.random() < 0.5:
        label = 1
        b_target = max(1, target - len(a))
        other = di
        for _ in range(10):  # BERT's loop: a random document other than this one
            other = draw(rng) if draw is not None else rng.randrange(len(tok_docs))
            if other != di and tok_docs[other]:
                break
        odoc = tok_docs[other]
        start = rng.randrange(len(odoc))
        b = []
        for s in odoc[start:]:
            b.extend(s)
            if len(b) >= b_target:
                break
        # The sentences of this chunk after A were not used: put them back.
        i -= len(chunk) - a_end
    else:
        label = 0
        b = [t for s in chunk[a_end:] for t in s]
    a, b = list(a), list(b)
    while len(a) + len(b) > budget:
        longer = a if len(a) > len(b) else b
        # BERT truncates randomly from the front or the back to avoid biasing the ends.
        if rng.random() < 0.5:
            del longer[0]
        else:
            longer.pop()
    if a and b:
        ids = [cls_id] + a + [sep_id] + b + [sep_id]
        out.append({"input_ids": ids, "attention_mask": [1] * len(ids),
                    "token_type_ids": [0] * (len(a) + 2) + [1] * (len(b) + 1), "next_sentence_label": label})
    return i


def mask_tokens(input_ids, special_mask, tokenizer, probability: float = 0.15, generator=None):
    """BERT's masking of a padded batch (section 3.1, appendix A.1).

    Args:
        input_ids: LongTensor ``(batch, seq_len)``; modified copy is returned.
        special_mask: BoolTensor ``(batch, seq_len)``, True at ``[CLS]``/``[SEP]``/padding
            (never masked).
        probability: share of the other positions to predict.
        generator: a ``torch.Generator`` for reproducible masks (evaluation); ``None``
            uses torch's global RNG (training: the Trainer saves and restores it, so a
            resumed run draws the same masks).

    Returns:
        ``(masked_input_ids, labels)``; labels are the original ids at the chosen
        positions and -100 elsewhere.
    """
    import torch

    labels = input_ids.clone()
    prob = torch.full(labels.shape, probability)
    prob.masked_fill_(special_mask, 0.0)
    chosen = torch.bernoulli(prob, generator=generator).bool()
    labels[~chosen] = IGNORE
    ids = input_ids.clone()
    to_mask = torch.bernoulli(torch.full(labels.shape, 0.8), generator=generator).bool() & chosen
    ids[to_mask] = tokenizer.mask_token_id
    # Half of the remaining 20%: a random token (the other half keeps the original).
    to_rand = torch.bernoulli(torch.full(labels.shape, 0.5), generator=generator).bool() & chosen & ~to_mask
    rand = torch.randint(len(tokenizer), labels.shape, dtype=ids.dtype, generator=generator)
    ids[to_rand] = rand[to_rand]
    return ids, labels


def text_pairs(tokenizer, docs: list[Document], max_length: int, seed: int, short_seq_prob: float = 0.1,
               random_b: str = "document") -> list[dict]:
    """Next-sentence pairs as text, made by the rule of :func:`make_instances` (``nsp``):
    the evaluation sets of a next-sentence head (``bertcli nsp`` reads them as they are).

    Sentences accumulate into a chunk of a target length in tokens (``max_length - 3``,
    shorter with ``short_seq_prob``), the chunk is split at a random sentence boundary
    into A and B, and half of the time B is replaced by sentences from a random other
    document (``random_b`` as in :func:`make_instances`), the unused sentences going back
    to the pool. Nothing is truncated here: ``bertcli nsp`` cuts a pair longer than the
    model's maximum longest-first.

    Returns:
        Dicts ``{"text": A, "text_pair": B, "label": "IsNext" | "NotNext", "document":
        index of A's document}`` in document order (A's sentences joined by spaces).
    """
    if len(docs) < 2:
        raise ValueError("next-sentence pairs need at least two documents")
    rng = random.Random(seed)
    sents, lens = [], []
    for d in docs:
        keep = [s for s in d.sentences if s.strip()]
        ids = tokenizer(keep, add_special_tokens=False)["input_ids"] if keep else []
        sents.append([s for s, i in zip(keep, ids) if i])
        lens.append([len(i) for i in ids if i])
    draw = _length_draw(sents) if random_b == "length" else None
    budget = max_length - 3
    out: list[dict] = []
    for di, doc in enumerate(sents):
        i, chunk, length = 0, [], 0
        target = budget if rng.random() >= short_seq_prob else rng.randint(2, budget)
        while i < len(doc):
            chunk.append(i)
            length += lens[di][i]
            if i == len(doc) - 1 or (length >= target and len(chunk) >= 2):
                a_end = rng.randint(1, len(chunk) - 1) if len(chunk) >= 2 else 1
                a = [doc[j] for j in chunk[:a_end]]
                if len(chunk) == 1 or rng.random() < 0.5:
                    other = di
                    for _ in range(10):
                        other = draw(rng) if draw is not None else rng.randrange(len(sents))
                        if other != di and sents[other]:
                            break
                    b_target = max(1, target - sum(lens[di][j] for j in chunk[:a_end]))
                    start = rng.randrange(len(sents[other])) if sents[other] else 0
                    b, n = [], 0
                    for k in range(start, len(sents[other])):
                        b.append(sents[other][k])
                        n += lens[other][k]
                        if n >= b_target:
                            break
                    label = "NotNext"
                    i -= len(chunk) - a_end
                else:
                    b, label = [doc[j] for j in chunk[a_end:]], "IsNext"
                if a and b:
                    out.append({"text": " ".join(a), "text_pair": " ".join(b), "label": label, "document": di})
                chunk, length = [], 0
                target = budget if rng.random() >= short_seq_prob else rng.randint(2, budget)
            i += 1
    return out

