"""Training and evaluation: data readers, label alignment, Trainer wrapper, metrics.

Public API (imported lazily, so ``import bertcli.train`` stays cheap)::

    from bertcli.train import TrainOptions, train_classify, train_ner, train_mlm, train_nsp, evaluate

    result = train_classify("base_dir", "train.tsv", "runs/sst2", "dev.tsv",
                            options=TrainOptions(epochs=3, batch_size=32), progress=print)
    metrics = evaluate("runs/sst2", "dev.tsv")

The core never prints and imports neither click nor rich; progress and notices go
through the optional ``progress(event_dict)`` callback (see :mod:`bertcli.train.core`).
"""

from __future__ import annotations

_EXPORTS = {
    "TrainOptions": "options", "TrainResult": "options", "TrainError": "options",
    "train_classify": "tasks", "train_ner": "tasks", "train_mlm": "tasks", "train_nsp": "tasks",
    "evaluate": "evaluation", "model_task": "evaluation",
    "read_classification": "data", "read_ner": "data", "read_documents": "data",
    "align_labels": "features",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name):
    mod = _EXPORTS.get(name)
    if mod is None:
        raise AttributeError(f"module 'bertcli.train' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(f"{__name__}.{mod}"), name)
