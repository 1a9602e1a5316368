"""bertcli: fast, streaming BERT inference and fine-tuning from the shell, and as a Python API.

The Python API mirrors the commands and never imports Click or rich::

    from bertcli import load_model, classify, fill_mask, ner, nsp
    lm = load_model("path/to/model", task="classify")
    classify(lm, ["I loved it"], top_k=None)
    from bertcli import load_tokenizer, tokenize             # the tokenizer alone: no torch
    tokenize(load_tokenizer(), ["Unaffable émigrés"])
    attention(load_model("path/to/model", task="encoder"), ["The animal didn't cross the street."])
    explain_classify(lm, ["I loved it"])                     # word attributions (integrated gradients)
    Predictor("path/to/model", "ner")(batch)                  # Ray Data / Spark batches (bertcli.ray, bertcli.spark)

Heavy modules (torch, transformers) are imported on first use.
"""

from __future__ import annotations

__version__ = "0.1.0"

_API = {
    "load_model": ("bertcli.loading", "load_model"),
    "LoadedModel": ("bertcli.loading", "LoadedModel"),
    "classify": ("bertcli.tasks.classify", "classify"),
    "fill_mask": ("bertcli.tasks.fill_mask", "fill_mask"),
    "nsp": ("bertcli.tasks.nsp", "nsp"),
    "ner": ("bertcli.tasks.ner", "ner"),
    "tokenize": ("bertcli.tasks.tokenize", "tokenize"),
    "load_tokenizer": ("bertcli.tasks.tokenize", "load_tokenizer"),
    "attention": ("bertcli.tasks.attention", "attention"),
    "explain_classify": ("bertcli.tasks.explain", "explain_classify"),
    "explain_ner": ("bertcli.tasks.explain", "explain_ner"),
    "explain_fill_mask": ("bertcli.tasks.explain", "explain_fill_mask"),
    "Predictor": ("bertcli.predictor", "Predictor"),
    "StreamOptions": ("bertcli.tasks.base", "StreamOptions"),
    "BertcliError": ("bertcli.errors", "BertcliError"),
}

__all__ = ["__version__", *_API]


def __getattr__(name):
    if name in _API:
        import importlib
        mod, attr = _API[name]
        return getattr(importlib.import_module(mod), attr)
    if name in ("ray", "spark"):  # bertcli.ray, bertcli.spark: imported on first access
        import importlib
        return importlib.import_module(f"bertcli.{name}")
    raise AttributeError(f"module 'bertcli' has no attribute {name!r}")
