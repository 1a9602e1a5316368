"""The native encoder's forward pass in numpy: same weights, same arithmetic, no torch.

A one-line run spends more time importing torch (1.2+ s) than computing: MiniLM on one
short sentence is ~10 MFLOP. This module runs the network of :class:`bertcli.native.NativeEncoder`
(embeddings summed in transformers' order, post-LN layers, the same task heads, families
of :data:`bertcli.families.FAMILIES`) on numpy arrays: weights mapped straight from the
safetensors files (:func:`read_safetensors`, no copy), LoRA adapters merged in numpy
(:func:`apply_lora`, peft's merge as :func:`bertcli.native.apply_lora`).

Precision: matrix products in float32 (numpy's BLAS), LayerNorm, softmax and activations
in float64 rounded to float32 (:mod:`.ops`). The logits differ from the torch path's by
rounding only (summation order of the products); tests/test_fastpath.py bounds the
difference per task and family.
"""

from __future__ import annotations

import json
import math
import mmap
import struct
from pathlib import Path

import numpy as np

from ..errors import ModelError
from ..families import (CLS_HEAD, FAMILIES, HEAD_PARAMS, NSP_FAMILIES, _MLM_NAMES, _layer_names, _strip_name,
                        _strip_prefix, native_config, weight_mapping)
from .ops import ACTS, F32, layer_norm, softmax

#: safetensors dtype -> numpy dtype of the stored bytes (little-endian); BF16 is widened by hand
_DTYPES = {"F32": "<f4", "F16": "<f2", "F64": "<f8", "BF16": "<u2", "I64": "<i8", "I32": "<i4", "I16": "<i2",
           "I8": "i1", "U8": "u1", "BOOL": "?"}


def read_safetensors(files: list[Path]) -> dict[str, np.ndarray]:
    """Tensor name -> array for every tensor of ``files``, mapped from the files (read-only,
    pages read when touched: no copy of a float32 checkpoint). Float16/bfloat16 tensors are
    widened to float32 (exactly; as the torch paths load them); other dtypes stay as stored.

    The layout is safetensors' (8-byte little-endian header length, a JSON header of
    ``{name: {dtype, shape, data_offsets}}``, then the data). The loader's folder checks have
    opened each file with the safetensors library already; this reader checks again that
    every tensor lies inside the file and has the bytes its shape needs.

    Raises:
        ModelError: a file that does not follow the layout (the caller falls back to the
            normal path, whose loader reports it).
    """
    out: dict[str, np.ndarray] = {}
    for f in files:
        with open(f, "rb") as fh:
            size = fh.seek(0, 2)
            if size < 8:
                raise ModelError(f"weights file '{f}' is truncated")
            mm = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)
        (n,) = struct.unpack("<Q", mm[:8])
        if n > size - 8:
            raise ModelError(f"weights file '{f}' has a header longer than the file")
        try:
            header = json.loads(mm[8:8 + n])
        except ValueError:
            raise ModelError(f"weights file '{f}' has a corrupt header") from None
        base = 8 + n
        for name, info in header.items():
            if name == "__metadata__":
                continue
            try:
                dt = np.dtype(_DTYPES[info["dtype"]])
                shape = [int(s) for s in info["shape"]]
                start, end = (int(v) for v in info["data_offsets"])
            except (KeyError, TypeError, ValueError):
                raise ModelError(f"weights file '{f}': tensor '{name}' has an entry this reader does not know") \
                    from None
            count = math.prod(shape)
            if min(shape, default=0) < 0 or start < 0 or end - start != count * dt.itemsize or base + end > size:
                raise ModelError(f"weights file '{f}': tensor '{name}' does not fit its bytes")
            a = np.frombuffer(mm, dtype=dt, count=count, offset=base + start).reshape(shape)
            if info["dtype"] == "BF16":
                a = (a.astype(np.uint32) << 16).view(F32)
            elif info["dtype"] in ("F16", "F64"):
                a = a.astype(F32)
            out[name] = a
    return out


def apply_lora(sd: dict[str, np.ndarray], adapter_dir: Path) -> dict[str, np.ndarray]:
    """Merge a PEFT LoRA adapter into base weights, in numpy: ``W += (B @ A) * alpha / r``
    (``alpha / sqrt(r)`` with rsLoRA) and overlay ``modules_to_save`` (the trained head).

    The same merge and names as :func:`bertcli.native.apply_lora` (peft's ``LoraLayer`` merge,
    ``peft/tuners/lora/layer.py``, for Linear layers); ``B @ A`` is a float32 product, so a
    merged weight may differ from the torch path's in the last bit.

    Raises:
        ModelError: adapter types or options the native paths do not implement (the caller
            then takes the normal path, which falls back to peft).
    """
    acfg = json.loads((adapter_dir / "adapter_config.json").read_text(encoding="utf-8"))
    if acfg.get("peft_type", "LORA") != "LORA" or acfg.get("fan_in_fan_out") or acfg.get("use_dora"):
        raise ModelError("adapter type not supported natively")
    if acfg.get("rank_pattern") or acfg.get("alpha_pattern"):
        raise ModelError("adapter rank/alpha patterns not supported natively")
    ad = read_safetensors([adapter_dir / "adapter_model.safetensors"])
    r = acfg["r"]
    scale = acfg.get("lora_alpha", r) / (r ** 0.5 if acfg.get("use_rslora") else r)
    out = _strip_prefix(sd)
    prefix = "base_model.model."
    for k, v in ad.items():
        name = k[len(prefix):] if k.startswith(prefix) else k
        if ".lora_A." in name:
            base = _strip_name(name.split(".lora_A.")[0] + ".weight")[: -len(".weight")]
            b = ad[k.replace(".lora_A.", ".lora_B.")]
            wkey = base + ".weight"
            if wkey not in out:
                raise ModelError(f"adapter targets '{base}', which the base model does not have")
            # as torch: (B @ A) in float32, times the scale in float32, added in float32
            out[wkey] = out[wkey] + (b.astype(F32) @ v.astype(F32)) * F32(scale)
        elif ".lora_B." in name or ".original_module." in name:
            continue
        else:
            name = name.replace(".modules_to_save.default.", ".").replace(".modules_to_save.", ".")
            out[_strip_name(name.replace(".base_layer.", "."))] = v
    return out


def sinusoidal_table(n_pos: int, dim: int) -> np.ndarray:
    """DistilBERT's sinusoidal positions (see :func:`bertcli.native.sinusoidal_table`): float64, stored float32."""
    pos = np.arange(n_pos, dtype=np.float64)[:, None]
    j = np.arange(dim, dtype=np.float64)[None, :]
    enc = pos / np.power(10000.0, 2 * (j // 2) / dim)
    out = np.empty((n_pos, dim), dtype=F32)
    out[:, 0::2] = np.sin(enc[:, 0::2])
    out[:, 1::2] = np.cos(enc[:, 1::2])
    return out


class NumpyEncoder:
    """:class:`bertcli.native.NativeEncoder`'s network on numpy arrays.

    ``forward(input_ids, attention_mask, token_type_ids=None, mask_rows=None)`` takes
    right-padded int64 arrays of shape ``(B, L)`` and returns float32 logits with the
    shapes of :class:`bertcli.loading.LoadedModel.forward`: fill-mask ``(n_masks, V)`` for the
    ``(n_masks, 2)`` (batch, position) rows in ``mask_rows``; nsp ``(B, 2)``; classify
    ``(B, num_labels)``; ner ``(B, L, num_labels)`` (zeros at padded positions).

    Build it with :meth:`from_state` from checkpoint tensors (Hugging Face names).
    """

    def __init__(self, cfg: dict, task: str, params: dict[str, np.ndarray]):
        cfg = native_config(cfg)
        self.cfg, self.task, self.p = cfg, task, params
        self.family = FAMILIES[cfg["model_type"]]
        self.eps = cfg.get("layer_norm_eps", 1e-12)
        self.heads = cfg["num_attention_heads"]
        self.n_layers = cfg["num_hidden_layers"]
        self.act = ACTS[cfg.get("hidden_act", "gelu")]
        self.pad_id = cfg.get("pad_token_id", 0) if cfg.get("pad_token_id") is not None else 0
        # as NativeEncoder: classify's dense layer and activation per family; the MLM head's
        # activation is the config's for BERT/DistilBERT, GELU for RoBERTa/ELECTRA
        self.cls_layer, cls_act = CLS_HEAD[self.family] if task == "classify" else ("pooler", "tanh")
        self.cls_act = ACTS[cls_act]
        self.mlm_act = ACTS[cfg.get("hidden_act", "gelu") if self.family in ("bert", "distilbert") else "gelu"]

    @classmethod
    def from_state(cls, cfg: dict, task: str, sd: dict[str, np.ndarray], path, head_name: str,
                   hint: str) -> "NumpyEncoder":
        """Pick the network's weights out of ``sd`` by :func:`bertcli.families.weight_mapping`,
        checking shapes against the config as :func:`bertcli.native.load_state` does.

        Raises:
            ModelError: a missing or misshapen weight, a missing head, or nsp on a family
                without one (the messages of :func:`bertcli.native.load_state`).
        """
        c = native_config(cfg)
        family = FAMILIES[c["model_type"]]
        if task == "nsp" and family not in NSP_FAMILIES:
            raise ModelError(f"'{path}' ({c.get('model_type')}) has no {head_name} architecture in transformers",
                             "this model type cannot run 'nsp'")
        sd = _strip_prefix(sd)
        h, e, n_layers = c["hidden_size"], c.get("embedding_size", c["hidden_size"]), c["num_hidden_layers"]
        inter, V = c["intermediate_size"], c["vocab_size"]
        n_labels = int(c.get("num_labels") or len(c.get("id2label") or {}) or 2)
        types = c.get("type_vocab_size", 2)
        cls_layer = CLS_HEAD[family][0] if task == "classify" else "pooler"
        shapes = {"word.weight": (V, e), "pos.weight": (c["max_position_embeddings"], e),
                  "emb_ln.weight": (e,), "emb_ln.bias": (e,)}
        if types != 0:
            shapes["types.weight"] = (max(1, types), e)
        if e != h:
            shapes.update({"emb_proj.weight": (h, e), "emb_proj.bias": (h,)})
        for i in range(n_layers):
            shapes.update({f"layers.{i}.out.weight": (h, h), f"layers.{i}.out.bias": (h,),
                           f"layers.{i}.ln1.weight": (h,), f"layers.{i}.ln1.bias": (h,),
                           f"layers.{i}.ffn_in.weight": (inter, h), f"layers.{i}.ffn_in.bias": (inter,),
                           f"layers.{i}.ffn_out.weight": (h, inter), f"layers.{i}.ffn_out.bias": (h,),
                           f"layers.{i}.ln2.weight": (h,), f"layers.{i}.ln2.bias": (h,)})
        if task == "nsp" or (task == "classify" and cls_layer == "pooler"):
            shapes.update({"pooler.weight": (h, h), "pooler.bias": (h,)})
        if task == "nsp":
            shapes.update({"head.weight": (2, h), "head.bias": (2,)})
        elif task == "classify":
            if cls_layer == "cls_dense":
                shapes.update({"cls_dense.weight": (h, h), "cls_dense.bias": (h,)})
            shapes.update({"head.weight": (n_labels, h), "head.bias": (n_labels,)})
        elif task == "ner":
            shapes.update({"head.weight": (n_labels, h), "head.bias": (n_labels,)})
        elif task == "fill-mask":
            shapes.update({"mlm_dense.weight": (e, h), "mlm_dense.bias": (e,), "mlm_ln.weight": (e,),
                           "mlm_ln.bias": (e,), "mlm_bias": (V,)})
        params: dict[str, np.ndarray] = {}
        missing_head, missing = [], []
        (prefix, _), (qkv_in, qkv_names) = _layer_names(family)
        for i in range(n_layers):
            q = f"{prefix}{i}.{qkv_in}"
            for part, n in zip("qkv", qkv_names):
                w, b = sd.get(q + n + ".weight"), sd.get(q + n + ".bias")
                if w is None or b is None:
                    missing.append(q + "/".join(qkv_names))
                    break
                if tuple(w.shape) != (h, h) or tuple(b.shape) != (h,):
                    raise ModelError(f"'{path}': attention weights of layer {i} have shape {tuple(w.shape)}, "
                                     f"config implies {(3 * h, h)}", "the config does not belong to these weights")
                params[f"layers.{i}.{part}.weight"], params[f"layers.{i}.{part}.bias"] = w, b
        for name, cands in weight_mapping(family, n_layers, task).items():
            if name not in shapes:
                continue
            src = next((sd[k] for k in cands if k in sd), None)
            if src is None and name == "pos.weight" and c.get("sinusoidal_pos_embds"):
                src = sinusoidal_table(*shapes[name])
            if src is None:
                if name.startswith("types.") and shapes[name][0] == 1:
                    continue  # left at zero by NativeEncoder: no token type term
                (missing_head if name.startswith(HEAD_PARAMS) else missing).append(cands[0])
                continue
            if tuple(src.shape) != shapes[name]:
                raise ModelError(f"'{path}': weight {cands[0]} has shape {tuple(src.shape)}, "
                                 f"config implies {shapes[name]}")
            params[name] = src
        if missing:
            raise ModelError(f"'{path}' is missing encoder weights ({', '.join(missing[:3])})",
                             "the weights do not match config.json")
        if missing_head:
            raise ModelError(f"'{path}' has no {head_name} (missing weights: {', '.join(missing_head[:3])})",
                             f"it is probably a bare encoder; add and train the head with '{hint}'" if hint else None)
        if task == "fill-mask":
            dec = sd.get(_MLM_NAMES[family][2])
            params["decoder"] = dec if dec is not None and tuple(dec.shape) == (V, e) else params["word.weight"]
        for k, v in params.items():
            if v.dtype != F32:
                params[k] = v.astype(F32)
        return cls(cfg, task, params)

    # -------------------------------------------------------------- forward

    def _linear(self, x, name, act=None):
        y = x @ self.p[name + ".weight"].T
        y += self.p[name + ".bias"]
        return y if act is None else act(y)

    def _ln(self, x, name):
        return layer_norm(x, self.p[name + ".weight"], self.p[name + ".bias"], self.eps)

    def positions(self, input_ids: np.ndarray) -> np.ndarray:
        if self.family == "roberta":
            # fairseq: positions count real tokens from padding_idx + 1; pads keep padding_idx
            m = (input_ids != self.pad_id).astype(np.int64)
            return np.cumsum(m, 1) * m + self.pad_id
        return np.broadcast_to(np.arange(input_ids.shape[1]), input_ids.shape)

    def encode(self, input_ids: np.ndarray, attention_mask: np.ndarray, token_type_ids=None):
        """Last hidden states of the real tokens, packed: ``(T, H)``, and the sequence lengths."""
        keep = attention_mask.astype(bool)
        lengths = keep.sum(1).tolist()
        # word + token type, then + position: transformers' order (native.NativeEncoder.encode)
        x = self.p["word.weight"][input_ids[keep]]
        if "types.weight" in self.p:
            t = self.p["types.weight"]
            if token_type_ids is None or t.shape[0] == 1:
                token_type_ids = np.zeros_like(input_ids)
            x = x + t[token_type_ids[keep]]
        x = self._ln(x + self.p["pos.weight"][self.positions(input_ids)[keep]], "emb_ln")
        if "emb_proj.weight" in self.p:
            x = self._linear(x, "emb_proj")
        H = x.shape[1]
        d = H // self.heads
        scale = F32(d ** -0.5)
        for i in range(self.n_layers):
            p = f"layers.{i}."
            q, k, v = (self._linear(x, p + n) for n in "qkv")
            a = np.empty_like(x)
            start = 0
            for n in lengths:
                s = slice(start, start + n)
                qh = q[s].reshape(n, self.heads, d).transpose(1, 0, 2)
                kh = k[s].reshape(n, self.heads, d).transpose(1, 0, 2)
                vh = v[s].reshape(n, self.heads, d).transpose(1, 0, 2)
                probs = softmax((qh @ kh.transpose(0, 2, 1)) * scale)  # (heads, n, n)
                a[s] = (probs @ vh).transpose(1, 0, 2).reshape(n, H)
                start += n
            x = self._ln(self._linear(a, p + "out") + x, p + "ln1")
            x = self._ln(self._linear(self._linear(x, p + "ffn_in", self.act), p + "ffn_out") + x, p + "ln2")
        return x, lengths

    def forward(self, input_ids, attention_mask, token_type_ids=None, mask_rows=None) -> np.ndarray:
        """Logits; see the class docstring for shapes."""
        input_ids = np.asarray(input_ids, dtype=np.int64)
        attention_mask = np.asarray(attention_mask)
        B, L = input_ids.shape
        x, lengths = self.encode(input_ids, attention_mask,
                                 None if token_type_ids is None else np.asarray(token_type_ids, dtype=np.int64))
        starts = np.cumsum([0] + lengths[:-1]).astype(np.int64)
        t = self.task
        if t in ("classify", "nsp"):
            first = x[starts]
            return self._linear(self._linear(first, self.cls_layer, self.cls_act), "head")
        if t == "ner":
            out = np.zeros((B, L, self.p["head.weight"].shape[0]), dtype=F32)
            out[attention_mask.astype(bool)] = self._linear(x, "head")
            return out
        if t == "fill-mask":
            if mask_rows is None:
                raise ValueError("fill-mask needs mask_rows")
            mr = np.asarray(mask_rows, dtype=np.int64).reshape(-1, 2)
            y = x[starts[mr[:, 0]] + mr[:, 1]]
            y = self._ln(self._linear(y, "mlm_dense", self.mlm_act), "mlm_ln")
            logits = y @ self.p["decoder"].T
            logits += self.p["mlm_bias"]
            return logits
        raise ValueError(f"task {t!r} has no numpy head")
