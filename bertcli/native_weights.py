"""Checkpoint tensors into a :class:`bertcli.native.NativeEncoder`: reading safetensors, merging a
LoRA adapter, copying the tensors by their Hugging Face names (re-exported by :mod:`bertcli.native`)."""

from __future__ import annotations

import json
from pathlib import Path

from typing import TYPE_CHECKING

import torch
from torch import nn

from .errors import ModelError
# the checkpoint names (torch-free, shared with the fast path)
from .families import (HEAD_PARAMS, NSP_FAMILIES, _MLM_NAMES, _layer_names, _strip_name, _strip_prefix,
                       weight_mapping)

if TYPE_CHECKING:
    from .native import NativeEncoder


def _mapping(model: NativeEncoder) -> dict[str, list[str]]:
    """native parameter name -> candidate checkpoint names (first found wins)."""
    return weight_mapping(model.family, len(model.layers), model.task)


def load_state(model: NativeEncoder, sd: dict, path: Path, head_name: str, hint: str) -> None:
    """Copy checkpoint tensors ``sd`` (HF names) into ``model``.

    Raises:
        ModelError: an encoder weight is missing or has the wrong shape, or the task head
            is missing (naming it and the command that trains one), or the task is nsp
            and the family has no NSP head in transformers (DistilBERT, ELECTRA, RoBERTa).
    """
    if model.task == "nsp" and model.family not in NSP_FAMILIES:
        # as the transformers path says it (no AutoModelForNextSentencePrediction class)
        raise ModelError(f"'{path}' ({model.cfg.get('model_type')}) has no {head_name} architecture in transformers",
                         "this model type cannot run 'nsp'")
    sd = _strip_prefix(sd)
    own = dict(model.named_parameters())
    missing_head, missing = [], []
    (prefix, _), (qkv_in, qkv_names) = _layer_names(model.family)
    with torch.no_grad():
        for i in range(len(model.layers)):
            q = f"{prefix}{i}.{qkv_in}"
            try:
                w = torch.cat([sd[q + n + ".weight"] for n in qkv_names])
                b = torch.cat([sd[q + n + ".bias"] for n in qkv_names])
            except KeyError:
                missing.append(q + "/".join(qkv_names))
                continue
            if w.shape != own[f"layers.{i}.qkv.weight"].shape or b.shape != own[f"layers.{i}.qkv.bias"].shape:
                raise ModelError(f"'{path}': attention weights of layer {i} have shape {tuple(w.shape)}, "
                                 f"config implies {tuple(own[f'layers.{i}.qkv.weight'].shape)}",
                                 "the config does not belong to these weights")
            own[f"layers.{i}.qkv.weight"].copy_(w)
            own[f"layers.{i}.qkv.bias"].copy_(b)
        for name, cands in _mapping(model).items():
            if name not in own:
                continue
            src = next((sd[c] for c in cands if c in sd), None)
            if src is None and name == "pos.weight" and model.cfg.get("sinusoidal_pos_embds"):
                # DistilBERT stores its sinusoidal table; were it left out, transformers'
                # _init_weights would compute it (create_sinusoidal_embeddings)
                src = sinusoidal_table(*own[name].shape)
            if src is None:
                if name.startswith("types.") and own[name].shape[0] == 1:
                    continue
                (missing_head if name.startswith(HEAD_PARAMS) else missing).append(cands[0])
                continue
            if tuple(src.shape) != tuple(own[name].shape):
                raise ModelError(f"'{path}': weight {cands[0]} has shape {tuple(src.shape)}, "
                                 f"config implies {tuple(own[name].shape)}")
            own[name].copy_(src)
        if model.task == "fill-mask":
            dec = sd.get(_MLM_NAMES[model.family][2])
            if dec is not None and not torch.equal(dec, sd.get("embeddings.word_embeddings.weight", dec)):
                model.decoder = nn.Linear(dec.shape[1], dec.shape[0], bias=False)
                model.decoder.weight.copy_(dec)
    if missing:
        raise ModelError(f"'{path}' is missing encoder weights ({', '.join(missing[:3])})",
                         "the weights do not match config.json")
    if missing_head:
        raise ModelError(f"'{path}' has no {head_name} (missing weights: {', '.join(missing_head[:3])})",
                         f"it is probably a bare encoder; add and train the head with '{hint}'" if hint else None)


def sinusoidal_table(n_pos: int, dim: int) -> torch.Tensor:
    """``(n_pos, dim)`` sinusoidal positions as transformers' DistilBERT computes them
    (``_create_sinusoidal_embeddings``): ``sin(pos / 10000^(2(j//2)/dim))`` at even j,
    ``cos`` at odd j, computed in float64 and stored as float32."""
    pos = torch.arange(n_pos, dtype=torch.float64)[:, None]
    j = torch.arange(dim, dtype=torch.float64)[None, :]
    enc = pos / torch.pow(torch.tensor(10000.0, dtype=torch.float64), 2 * torch.div(j, 2, rounding_mode="floor") / dim)
    out = torch.empty(n_pos, dim)
    out[:, 0::2] = torch.sin(enc[:, 0::2]).float()
    out[:, 1::2] = torch.cos(enc[:, 1::2]).float()
    return out


def read_safetensors(files: list[Path]) -> dict:
    from safetensors.torch import load_file

    sd = {}
    for f in files:
        sd.update(load_file(str(f)))
    return sd


def apply_lora(sd: dict, adapter_dir: Path) -> dict:
    """Merge a PEFT LoRA adapter into base weights: ``W += (B @ A) * alpha / r``
    (``alpha / sqrt(r)`` with rsLoRA), and overlay ``modules_to_save`` (the trained head).

    Follows peft's ``LoraLayer`` merge (``peft/tuners/lora/layer.py``) for Linear layers.

    Raises:
        ModelError: adapter types or options the native path does not implement (the
            caller then falls back to peft).
    """
    acfg = json.loads((adapter_dir / "adapter_config.json").read_text(encoding="utf-8"))
    if acfg.get("peft_type", "LORA") != "LORA" or acfg.get("fan_in_fan_out") or acfg.get("use_dora"):
        raise ModelError("adapter type not supported natively")
    from safetensors.torch import load_file

    ad = load_file(str(adapter_dir / "adapter_model.safetensors"))
    r = acfg["r"]
    scale = acfg.get("lora_alpha", r) / (r ** 0.5 if acfg.get("use_rslora") else r)
    if acfg.get("rank_pattern") or acfg.get("alpha_pattern"):
        raise ModelError("adapter rank/alpha patterns not supported natively")
    # Adapters are trained on a BertFor... model ("bert.encoder..."), the base may be a
    # bare encoder ("encoder..."): compare names without the base-model prefix.
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
            out[wkey] = out[wkey] + (b.float() @ v.float()).to(out[wkey].dtype) * scale
        elif ".lora_B." in name:
            continue
        elif ".original_module." in name:
            continue  # peft's copy of a modules_to_save module before training (bias="all")
        else:
            # modules_to_save: peft stores e.g. "classifier.modules_to_save.weight" or "classifier.weight";
            # trained biases (bias="all") of LoRA-wrapped layers: "query.base_layer.bias".
            name = name.replace(".modules_to_save.default.", ".").replace(".modules_to_save.", ".")
            out[_strip_name(name.replace(".base_layer.", "."))] = v
    return out
