"""BERT pre-training's loss (masked-language modelling plus next-sentence prediction), with
the vocabulary projection run only on the masked rows."""

from __future__ import annotations

#: parts of a summed training loss that ``log`` events carry beside ``loss`` (means over the
#: optimizer steps since the previous log): BERT pre-training's MLM and NSP losses, and the
#: NSP accuracy on the training batches.
LOSS_PARTS = ("mlm_loss", "nsp_loss", "nsp_accuracy")


def masked_rows_mlm_loss(model, inputs: dict, nsp_weight: float = 1.0, report=None):
    """BERT's pre-training loss with the vocabulary projection only at masked positions.

    ``BertForMaskedLM``/``BertForPreTraining`` project every position onto the
    vocabulary, ``(batch, seq, vocab)`` logits, although the loss reads only the ~15 %
    of positions whose label is not -100; the projection (30k x hidden per row) costs
    more than the encoder. This computes the same loss -- mean cross-entropy over the
    masked positions, plus the mean NSP cross-entropy when ``next_sentence_label`` is
    given, as in ``BertForPreTraining.forward`` (there with weight 1) -- from the
    selected rows only.

    Args:
        model: a ``BertForMaskedLM``/``BertForPreTraining`` (or a peft model around one:
            LoRA layers and ``modules_to_save`` copies are injected in place, so calling
            the inner modules runs them).
        inputs: the collator's batch: ``input_ids``, ``attention_mask``, ``token_type_ids``
            ``(batch, seq)``, ``labels`` ``(batch, seq)`` with -100 at unmasked positions,
            optionally ``next_sentence_label`` ``(batch,)``.
        nsp_weight: the NSP loss's weight in the sum.
        report: ``report(name, value)`` receives the detached parts (``mlm_loss``,
            ``nsp_loss``, ``nsp_accuracy``), for logging.

    Returns:
        The scalar loss tensor (float32).
    """
    inner = model.get_base_model() if hasattr(model, "get_base_model") else model
    encoder = getattr(inner, inner.base_model_prefix)
    out = encoder(input_ids=inputs["input_ids"], attention_mask=inputs.get("attention_mask"),
                  token_type_ids=inputs.get("token_type_ids"))
    labels = inputs["labels"]
    sel = labels != -100
    logits = inner.cls.predictions(out[0][sel])
    nsl = inputs.get("next_sentence_label")
    nsp_logits = inner.cls.seq_relationship(out[1]) if nsl is not None else None
    return pretraining_loss(logits, nsp_logits, labels[sel], nsl, nsp_weight, report)


def pretraining_loss(mlm_logits, nsp_logits, mlm_labels, nsp_labels, nsp_weight: float = 1.0, report=None):
    """``mean CE(MLM) + nsp_weight * mean CE(NSP)`` (float32), the parts sent to ``report``.

    Args:
        mlm_logits: ``(..., vocab)`` logits; ``mlm_labels`` the same leading shape, -100
            where not masked (ignored).
        nsp_logits: ``(batch, 2)`` or None (MLM only); index 0 = IsNext, the label
            convention of ``next_sentence_label`` (1 = random B).
        nsp_weight: the NSP loss's weight (BERT: 1).
        report: optional ``report(name, value)``.
    """
    import torch.nn.functional as F

    loss = F.cross_entropy(mlm_logits.float().reshape(-1, mlm_logits.shape[-1]), mlm_labels.reshape(-1),
                           ignore_index=-100)
    if report is not None:
        report("mlm_loss", loss.detach())
    if nsp_logits is not None and nsp_labels is not None:
        nsp = F.cross_entropy(nsp_logits.float(), nsp_labels)
        if report is not None:
            report("nsp_loss", nsp.detach())
            report("nsp_accuracy", (nsp_logits.argmax(-1) == nsp_labels).float().mean().detach())
        loss = loss + nsp_weight * nsp
    return loss
