"""Examples -> model features (token ids and label ids), including NER label alignment.

Features are plain dicts of Python lists (``input_ids``, ``attention_mask``,
``token_type_ids`` when the tokenizer makes them, ``labels``), unpadded: batches are
padded dynamically by the collator, so a batch is only as long as its longest example.
"""

from __future__ import annotations

from .data import ClassifyData, Issue, NerData

#: label id that torch's cross-entropy (and transformers' heads) ignore.
IGNORE = -100


def encode_classification(tokenizer, data: ClassifyData, label2id: dict[str, int] | None, max_length: int,
                          multi_label: bool = False) -> list[dict]:
    """Tokenize texts (and pairs) and attach label ids.

    Args:
        tokenizer: a fast tokenizer.
        data: read by :func:`bertcli.train.data.read_classification`.
        label2id: label -> id; ``None`` leaves ``labels`` out (prediction only).
        max_length: tokens per example including ``[CLS]``/``[SEP]``; pairs are cut
            longest-first (the BERT reference ``_truncate_seq_pair`` rule).
        multi_label: ``labels`` is a multi-hot float list of length ``len(label2id)``
            (what ``BCEWithLogitsLoss`` in ``problem_type="multi_label_classification"`` takes).

    Returns:
        One dict per example, in input order; ``labels`` is an int (single-label).
    """
    texts = [ex.text for ex in data.examples]
    pairs = [ex.text_pair for ex in data.examples] if data.text_pair_field is not None else None
    enc = tokenizer(texts, pairs, truncation=True, max_length=max_length)
    out = []
    for i, ex in enumerate(data.examples):
        feat = {k: enc[k][i] for k in enc.keys()}
        if label2id is not None and ex.label is not None:
            if multi_label:
                vec = [0.0] * len(label2id)
                for lab in ex.label:
                    vec[label2id[lab]] = 1.0
                feat["labels"] = vec
            else:
                feat["labels"] = label2id[ex.label]
        out.append(feat)
    return out


def continuation_tag(tag: str) -> str | None:
    """The tag for the 2nd..nth WordPiece of a word tagged ``tag`` under
    ``label_all_tokens``: ``B-X``/``I-X`` -> ``I-X``, ``O`` -> ``O``; ``E-X``/``S-X`` -> None
    (ignored), because no per-piece tag keeps a BIOES sequence valid without also
    relabelling the word's first piece."""
    if tag == "O":
        return "O"
    if tag[:2] in ("B-", "I-"):
        return "I-" + tag[2:]
    return None


def align_labels(word_ids: list[int | None], word_tags: list[str], label2id: dict[str, int],
                 label_all_tokens: bool = False) -> list[int]:
    """Token-level label ids for one encoded sentence.

    The first WordPiece of each word gets the word's tag; special tokens (word id None)
    get -100; the word's other pieces get -100, or with ``label_all_tokens`` the
    continuation tag of :func:`continuation_tag` (never a ``B-``), as in the
    transformers ``run_ner.py`` example.

    Args:
        word_ids: from the fast tokenizer's ``BatchEncoding.word_ids(i)``, length seq_len.
        word_tags: one tag per word.
        label2id: tag -> id.

    Returns:
        List of length ``len(word_ids)``.
    """
    out = []
    prev = None
    for w in word_ids:
        if w is None:
            out.append(IGNORE)
        elif w != prev:
            out.append(label2id[word_tags[w]])
        elif label_all_tokens:
            t = continuation_tag(word_tags[w])
            out.append(label2id[t] if t is not None and t in label2id else IGNORE)
        else:
            out.append(IGNORE)
        prev = w
    return out


def encode_ner(tokenizer, data: NerData, label2id: dict[str, int] | None, max_length: int,
               label_all_tokens: bool = False) -> tuple[list[dict], list[Issue]]:
    """Tokenize pre-split words and align tags (see :func:`align_labels`).

    A word for which the tokenizer makes no piece at all (a lone variation selector, a
    control character) is replaced by the unknown token, so every word keeps a position
    and a prediction. Sentences longer than ``max_length`` pieces are cut; their words
    past the cut are reported (they are not trained on, and predicted ``O`` when evaluating).

    Returns:
        ``(features, warnings)``; each feature also has ``word_ids`` (kept for
        evaluation, dropped by the collator) and ``n_words``.
    """
    unk = tokenizer.unk_token or "[UNK]"
    words = [list(s.tokens) for s in data.sentences]
    enc = tokenizer(words, is_split_into_words=True, truncation=True, max_length=max_length)
    # Second pass only for the sentences that lost a word to the tokenizer.
    redo = []
    for i in range(len(words)):
        wids = enc.word_ids(i)
        seen = {w for w in wids if w is not None}
        last = max(seen) if seen else -1
        missing = [w for w in range(min(last + 1, len(words[i]))) if w not in seen]
        if missing:
            for w in missing:
                words[i][w] = unk
            redo.append(i)
    issues: list[Issue] = []
    re_enc = {}
    if redo:
        e2 = tokenizer([words[i] for i in redo], is_split_into_words=True, truncation=True, max_length=max_length)
        for j, i in enumerate(redo):
            re_enc[i] = {k: e2[k][j] for k in e2.keys()}, e2.word_ids(j)
    out = []
    for i, s in enumerate(data.sentences):
        if i in re_enc:
            feat, wids = re_enc[i]
            feat = dict(feat)
        else:
            feat, wids = {k: enc[k][i] for k in enc.keys()}, enc.word_ids(i)
        kept = max((w for w in wids if w is not None), default=-1) + 1
        if kept < len(s.tokens):
            issues.append(Issue(data.source, s.lines[kept] if kept < len(s.lines) else s.line,
                                f"sentence cut at {max_length} tokens: {len(s.tokens) - kept} of its "
                                f"{len(s.tokens)} words dropped"))
        if label2id is not None:
            feat["labels"] = align_labels(wids, s.tags, label2id, label_all_tokens)
        feat["word_ids"] = [-1 if w is None else w for w in wids]
        feat["n_words"] = len(s.tokens)
        out.append(feat)
    if redo:
        issues.append(Issue(data.source, None, f"{len(redo)} sentence(s) had words the tokenizer drops entirely; "
                                               f"they were read as {unk}"))
    return out, issues
