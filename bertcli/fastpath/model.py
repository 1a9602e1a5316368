"""Load a model folder for the numpy encoder: the normal loader's checks, no torch, no transformers."""

from __future__ import annotations

import json
import os
from pathlib import Path

from ..errors import ModelError
from ..loading import (TASKS, LoadedModel, NativeConfig, check_architecture, check_folder, inspect_folder,
                       model_max_length, resolve_base_model, resolve_model_dir, weight_files)


class FastModel(LoadedModel):
    """A :class:`~bertcli.loading.LoadedModel` whose ``model`` is a :class:`.encoder.NumpyEncoder`.

    ``forward(batch, mask_rows=None)`` takes the padded batch of :func:`bertcli.tasks.base.collate`
    as numpy int64 arrays (``collate(..., numpy=True)``) and returns float32 numpy logits of the
    shapes of :meth:`LoadedModel.forward`. ``device`` is ``"cpu"``, ``dtype`` ``"float32"``.
    """

    numpy = True

    def encode_inputs(self, batch: dict) -> dict:
        keys = ["input_ids", "attention_mask"] + (["token_type_ids"] if self.uses_token_type_ids else [])
        return {k: batch[k] for k in keys if k in batch}

    def forward(self, batch: dict, mask_rows=None):
        inputs = self.encode_inputs(batch)
        return self.model.forward(inputs["input_ids"], inputs["attention_mask"], inputs.get("token_type_ids"),
                                  mask_rows=mask_rows)


def load_fast(model: str | os.PathLike | None = None, task: str = "classify", default: str | None = None,
              revision: str | None = None) -> FastModel | None:
    """The folder :func:`bertcli.loading.load_model` would load, on the numpy encoder, or None
    when the fast path cannot run it (then the normal path loads it, and reports any problem).

    Same folder resolution and checks as ``load_model`` (:func:`resolve_model_dir`,
    :func:`inspect_folder`, :func:`check_architecture`), which raise their ModelError here as
    they would there. None for: a family :func:`bertcli.families.supported` refuses; a folder
    without a complete ``tokenizer.json`` (:class:`bertcli.fasttok.FastTokenizer` declines it);
    an adapter layout or weight layout the numpy encoder does not read (missing head included:
    the normal path words that error). Always CPU, float32.

    Raises:
        ModelError: as :func:`bertcli.loading.load_model` for a missing or unsafe folder.
    """
    from .. import families
    from ..fasttok import FastTokenizer
    from .encoder import NumpyEncoder, apply_lora, read_safetensors

    if task == "sentiment":
        task, default = "classify", default or "sentiment"
    if task not in TASKS or task == "encoder":
        return None
    path = resolve_model_dir(model, default or task, revision)
    cfg, shapes = inspect_folder(path)
    check_architecture(cfg, task, path, shapes)
    if not families.supported(cfg):
        return None
    try:
        tokenizer = FastTokenizer.from_folder(path)
    except Exception:  # a damaged tokenizer.json: the normal path words the error
        return None
    if tokenizer is None:
        return None
    vocab = cfg.get("vocab_size")
    if vocab is not None and len(tokenizer) > vocab:
        return None
    config = NativeConfig(cfg)
    try:
        if (path / "adapter_config.json").is_file():
            acfg = json.loads((path / "adapter_config.json").read_text(encoding="utf-8"))
            base = resolve_base_model(acfg.get("base_model_name_or_path"), path)
            check_folder(base)
            sd = apply_lora(read_safetensors(weight_files(base)), path)
        else:
            sd = read_safetensors(weight_files(path))
        net = NumpyEncoder.from_state(dict(cfg, num_labels=config.num_labels), task, sd, path, TASKS[task][1],
                                      TASKS[task][2])
    except (ModelError, OSError, ValueError, KeyError, TypeError):
        return None
    return FastModel(path=Path(path), task=task, tokenizer=tokenizer, model=net, config=config, device="cpu",
                     dtype="float32", max_length=model_max_length(config, tokenizer), native=True)
