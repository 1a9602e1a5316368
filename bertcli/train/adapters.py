"""What a run trains: LoRA adapters (peft) on the encoder's linear layers, or a frozen
encoder with only the head (and pooler) trained."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..errors import ModelError
from .options import TrainError, TrainOptions

if TYPE_CHECKING:
    from .core import _Job

#: LoRA target modules of BERT-family encoders: the attention projections (query/key/value
#: and the attention output dense), or every encoder linear layer (+ intermediate and
#: output feed-forward denses), which adds capacity where LoRA on attention alone falls short.
_LORA_TARGETS = {
    "attention": r".*\.attention\.(self\.(query|key|value)|output\.dense)$",
    "all-linear": r".*\.layer\.\d+\.(attention\.(self\.(query|key|value)|output\.dense)|intermediate\.dense|output\.dense)$",
}


def _lora_target_regex(opts: TrainOptions, net) -> str:
    """The LoRA target regex of ``opts.lora_targets``, limited to the top ``opts.lora_layers``
    encoder layers when that is set (the layers below stay frozen: no backward pass runs
    through them, so a step costs a forward pass plus the top layers' backward)."""
    pattern = _LORA_TARGETS[opts.lora_targets]
    if not opts.lora_layers:
        return pattern
    n = int(getattr(net.config, "num_hidden_layers", 0) or 0)
    if opts.lora_layers > n:
        raise TrainError(f"lora_layers {opts.lora_layers} is more than the model's {n} layers")
    top = "|".join(str(i) for i in range(n - opts.lora_layers, n))
    return pattern.replace(r"\.layer\.\d+\.", rf"\.layer\.({top})\.").replace(
        r".*\.attention\.", rf".*\.layer\.({top})\.attention\.")


def _has_bert_pretraining_heads(net) -> bool:
    """True for BERT-style pre-training models (``cls.predictions`` MLM head with a
    ``transform`` and a tied ``decoder``), the layout the LoRA and masked-rows paths use."""
    pred = getattr(getattr(net, "cls", None), "predictions", None)
    return pred is not None and hasattr(pred, "transform") and hasattr(pred, "decoder")


def _apply_freeze_or_lora(job: _Job, opts: TrainOptions) -> None:
    net = job.net
    if opts.lora and opts.freeze_encoder:
        raise TrainError("freeze_encoder and lora are exclusive", "LoRA already keeps the encoder weights fixed")
    if opts.merge and not opts.lora:
        raise TrainError("merge needs lora", "merge folds LoRA adapters into the weights")
    if opts.freeze_encoder:
        for p in net.base_model.parameters():
            p.requires_grad = False
        pooler = getattr(net.base_model, "pooler", None)
        if pooler is not None and job.task in ("classify", "nsp"):
            for p in pooler.parameters():
                p.requires_grad = True
    if opts.lora and opts.lora_targets not in _LORA_TARGETS:
        raise TrainError(f"unknown lora_targets '{opts.lora_targets}'", "use attention or all-linear")
    if opts.lora:
        if job.task == "mlm" and not _has_bert_pretraining_heads(net):
            raise TrainError(f"LoRA pre-training needs BERT's cls.predictions head; '{job.base}' "
                             f"({net.config.model_type}) has another", "train the full model (without --lora)")
        try:
            from peft import LoraConfig, get_peft_model
        except ImportError:
            raise TrainError("lora needs the 'peft' package", "pip install 'bertcli[train]'") from None
        # Pre-training heads: the MLM transform (and pooler + NSP classifier) are trained
        # in full, the decoder stays tied to the (frozen) word embeddings, and every bias
        # is trained too (BitFit, Ben Zaken et al. 2022), which gives the new MLM output
        # bias its unigram prior at a cost of ~0.2M parameters; peft saves them all
        # with the adapter (``bias="all"``).
        cfg = LoraConfig(r=int(opts.lora), lora_alpha=opts.lora_alpha or 2 * int(opts.lora),
                         lora_dropout=opts.lora_dropout,
                         target_modules=_lora_target_regex(opts, net),
                         modules_to_save=job.lora_modules_to_save,
                         bias="all" if job.task == "mlm" else "none")
        try:
            job.net = get_peft_model(net, cfg)
        except ValueError as e:
            raise ModelError(f"cannot add LoRA adapters to '{job.base}': {str(e).splitlines()[0]}",
                             "LoRA targets BERT-style attention modules (query/key/value)") from None
