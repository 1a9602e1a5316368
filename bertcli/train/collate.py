"""Dynamic padding (and masking for MLM) of feature dicts into tensors."""

from __future__ import annotations

from .features import IGNORE

#: keys kept for evaluation bookkeeping, never fed to the model.
AUX_KEYS = ("word_ids", "n_words")


class Collator:
    """Pad a list of feature dicts to the longest one in the batch.

    ``input_ids`` are padded with the tokenizer's pad id, ``attention_mask`` and
    ``token_type_ids`` with 0, token-level ``labels`` (lists of ints) with -100;
    sequence-level labels become a LongTensor (single-label) or FloatTensor (multi-hot).
    With ``mlm_probability`` set, batches without ``labels`` are masked on the fly with
    :func:`bertcli.train.pretraining.mask_tokens` (global torch RNG, so masks are part of
    the state a resumed run restores).

    Args:
        tokenizer: supplies pad/mask ids and the vocabulary size.
        pad_to_multiple_of: round the padded length up (8 helps tensor cores on GPU).
    """

    def __init__(self, tokenizer, mlm_probability: float | None = None, pad_to_multiple_of: int | None = None):
        self.tokenizer = tokenizer
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
        self.mlm_probability = mlm_probability
        self.multiple = pad_to_multiple_of

    def __call__(self, feats: list[dict]) -> dict:
        import torch

        n = max(len(f["input_ids"]) for f in feats)
        if self.multiple:
            n = -(-n // self.multiple) * self.multiple
        batch = {}
        batch["input_ids"] = torch.tensor([f["input_ids"] + [self.pad_id] * (n - len(f["input_ids"])) for f in feats])
        batch["attention_mask"] = torch.tensor([f["attention_mask"] + [0] * (n - len(f["attention_mask"]))
                                                for f in feats])
        if "token_type_ids" in feats[0]:
            batch["token_type_ids"] = torch.tensor([f["token_type_ids"] + [0] * (n - len(f["token_type_ids"]))
                                                    for f in feats])
        if "labels" in feats[0]:
            lab = feats[0]["labels"]
            if isinstance(lab, list) and lab and isinstance(lab[0], float):
                batch["labels"] = torch.tensor([f["labels"] for f in feats], dtype=torch.float32)
            elif isinstance(lab, list):
                batch["labels"] = torch.tensor([f["labels"] + [IGNORE] * (n - len(f["labels"])) for f in feats])
            else:
                batch["labels"] = torch.tensor([f["labels"] for f in feats], dtype=torch.long)
        elif self.mlm_probability:
            from .pretraining import mask_tokens

            special = batch["attention_mask"] == 0
            for tid in (self.tokenizer.cls_token_id, self.tokenizer.sep_token_id, self.pad_id):
                if tid is not None:
                    special |= batch["input_ids"] == tid
            batch["input_ids"], batch["labels"] = mask_tokens(batch["input_ids"], special, self.tokenizer,
                                                              self.mlm_probability)
        if "next_sentence_label" in feats[0]:
            batch["next_sentence_label"] = torch.tensor([f["next_sentence_label"] for f in feats], dtype=torch.long)
        return batch


def premask(features: list[dict], tokenizer, probability: float, seed: int) -> list[dict]:
    """A copy of MLM ``features`` with fixed masks (held-out evaluation: every evaluation
    scores the same positions). Masks depend only on ``seed``."""
    import torch

    from .pretraining import mask_tokens

    g = torch.Generator().manual_seed(seed)
    out = []
    for f in features:
        ids = torch.tensor([f["input_ids"]])
        special = torch.zeros_like(ids, dtype=torch.bool)
        for tid in (tokenizer.cls_token_id, tokenizer.sep_token_id, tokenizer.pad_token_id):
            if tid is not None:
                special |= ids == tid
        m, lab = mask_tokens(ids, special, tokenizer, probability, generator=g)
        g2 = dict(f)
        g2["input_ids"] = m[0].tolist()
        g2["labels"] = lab[0].tolist()
        out.append(g2)
    return out
