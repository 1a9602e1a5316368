"""Model folders: whether a folder is safe and complete to load, checked before anything is
instantiated (the safety rules of :mod:`bertcli.loading`): config.json fields, weight files and
their safetensors header shapes, tokenizer files, symlinks, adapters, and which task heads a
checkpoint carries. Where a model name points (a folder, or a hub id in the local Hugging Face
cache) is :mod:`bertcli.resolve`.
"""

from __future__ import annotations

import json
import math
import os
import re
from pathlib import Path

from .errors import ModelError
# where a name points (re-exported: loading and tests reach them here)
from .resolve import (_HUB_ID, cache_repo_root, hub_cache_dir, hub_cache_snapshot, looks_like_hub_id,  # noqa: F401
                      quiet_hub, resolve_base_model, resolve_model_dir)


#: task name -> (transformers Auto class name, human name of the head, training hint)
TASKS: dict[str, tuple[str, str, str]] = {
    "fill-mask": ("AutoModelForMaskedLM", "masked-LM head", "bertcli train mlm"),
    "nsp": ("AutoModelForNextSentencePrediction", "next-sentence-prediction head", "bertcli train mlm --nsp"),
    "classify": ("AutoModelForSequenceClassification", "sequence-classification head", "bertcli train classify"),
    "ner": ("AutoModelForTokenClassification", "token-classification head", "bertcli train ner"),
    "encoder": ("AutoModel", "encoder", ""),
}

#: architecture-name endings that carry each task's head (a bare "...Model" carries none).
HEAD_SUFFIXES = {
    "fill-mask": ("ForMaskedLM", "ForPreTraining"),
    "nsp": ("ForNextSentencePrediction", "ForPreTraining"),
    "classify": ("ForSequenceClassification",),
    "ner": ("ForTokenClassification",),
}
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl", ".pickle")
#: Safety bound on positions: no BERT-family checkpoint needs more, and an absurd value
#: would allocate gigabytes before failing.
MAX_SANE_POSITIONS = 1 << 16
#: Safety bounds on the other size fields of config.json (the largest released
#: BERT-family models are far below them); a positive integer within the bound is required.
SANE_SIZES = {"vocab_size": 1 << 22, "hidden_size": 1 << 16, "dim": 1 << 16, "embedding_size": 1 << 16,
              "num_hidden_layers": 1 << 10, "n_layers": 1 << 10, "num_attention_heads": 1 << 10,
              "n_heads": 1 << 10, "intermediate_size": 1 << 18, "hidden_dim": 1 << 18, "type_vocab_size": 1 << 16}
#: size fields that may be 0: the layer count (the weights' header is still checked against it),
#: and type_vocab_size (DeBERTa-v2/v3 and mDeBERTa have no segment embeddings: 0).
ZERO_OK = ("num_hidden_layers", "n_layers", "type_vocab_size")
#: model types whose position ids start at padding_idx + 1 (fairseq convention).
OFFSET_POSITION_TYPES = {"roberta", "xlm-roberta", "camembert", "longformer", "data2vec-text", "xlm-roberta-xl"}



def check_folder(path: Path) -> dict:
    """Validate a model folder without instantiating anything; return its parsed config.json.

    See :func:`inspect_folder`, which also returns the weights' names and shapes.
    """
    return inspect_folder(path)[0]


def inspect_folder(path: Path) -> tuple[dict, dict[str, list[int]] | None]:
    """Validate a model folder without instantiating anything.

    Returns:
        ``(config, shapes)``: the parsed config.json and tensor name -> shape read from the
        safetensors headers (no tensor data is read); ``shapes`` is None for a LoRA adapter
        folder (its head lives in the adapter and the base).

    Raises:
        ModelError: folder missing; not a folder; no/invalid config.json; ``auto_map``
            (custom code) in config.json or tokenizer_config.json; a symlink pointing
            outside the folder, or a FIFO/socket/device in it; an unknown ``model_type``;
            a size field that is not a sane positive integer; no safetensors weights
            (pickle-only weights are refused with a conversion hint, never opened); no
            tokenizer files; corrupt or truncated safetensors; weight shapes that
            contradict the config. For a LoRA adapter folder: no/invalid
            ``adapter_model.safetensors``, and the config checked against the base
            model's weights when the base is found.
    """
    if not path.exists():
        # a relative path is shown absolute: Path drops a leading './', and the absolute
        # path says where it was looked for
        raise ModelError(f"model folder '{os.path.abspath(path)}' does not exist",
                         "pass --model DIR with a local Hugging Face model folder")
    if not path.is_dir():
        raise ModelError(f"model path '{path}' is not a folder", "pass the folder that holds config.json")
    _check_symlinks(path)
    cfg_file = path / "config.json"
    if not cfg_file.is_file():
        raise ModelError(f"model folder '{path}' has no config.json",
                         "a model folder needs config.json, *.safetensors weights and tokenizer files")
    try:
        cfg = json.loads(cfg_file.read_text(encoding="utf-8"))
        if not isinstance(cfg, dict):
            raise ValueError("not a JSON object")
    except (ValueError, UnicodeDecodeError) as e:
        raise ModelError(f"{cfg_file} is not valid JSON: {e}") from None
    if cfg.get("auto_map") or cfg.get("trust_remote_code"):
        raise ModelError(f"{cfg_file} asks for custom code (auto_map); bertcli never runs code from a model folder",
                         "use a checkpoint of a built-in transformers architecture")
    if "model_type" not in cfg:
        raise ModelError(f"{cfg_file} has no model_type", "is this a Hugging Face transformers config?")
    _check_tokenizer_config(path)
    mpe = cfg.get("max_position_embeddings")
    if mpe is not None and (not _is_int(mpe) or mpe <= 0 or mpe > MAX_SANE_POSITIONS):
        raise ModelError(f"{cfg_file}: max_position_embeddings={mpe!r} is not a sane value "
                         f"(expected 1..{MAX_SANE_POSITIONS})", "the config is damaged or not a BERT-family config")
    for key, bound in SANE_SIZES.items():
        v = cfg.get(key)
        low = 0 if key in ZERO_OK else 1  # an encoder of 0 layers (embeddings + head) is well-formed
        if v is not None and (not _is_int(v) or v < low or v > bound):
            raise ModelError(f"{cfg_file}: {key}={v!r} is not a sane value (expected {low}..{bound})",
                             "the config is damaged or not a BERT-family config")
    _check_model_type(cfg_file, cfg)
    is_adapter = (path / "adapter_config.json").is_file()
    shapes = None
    if not is_adapter:
        shapes = _safetensors_shapes(path)
        _check_shapes(path, cfg, shapes)
    else:
        _check_adapter(path, cfg)
    if not _has_tokenizer(path):
        raise ModelError(f"model folder '{path}' has no tokenizer files",
                         "add tokenizer.json (or vocab.txt for BERT, vocab.json+merges.txt for RoBERTa, "
                         "a SentencePiece model such as spm.model)")
    return cfg, shapes


#: weight-name prefixes of each head, across the families bertcli runs (BERT, RoBERTa/XLM-R/
#: CamemBERT, DistilBERT, ALBERT, ELECTRA, DeBERTa-v2/v3, ModernBERT), as transformers names
#: them. ``rtd`` (ELECTRA/DeBERTa-v3 replaced-token detection) and ``sop`` (ALBERT sentence
#: order) are heads no bertcli command runs.
HEAD_WEIGHTS: dict[str, tuple[str, ...]] = {
    "fill-mask": ("cls.predictions.", "lm_head.", "vocab_projector.", "vocab_transform.", "predictions.",
                  "generator_predictions.", "generator_lm_head.", "lm_predictions.", "decoder."),
    "nsp": ("cls.seq_relationship.",),
    "classifier": ("classifier.",),
    "rtd": ("discriminator_predictions.", "mask_predictions."),
    "sop": ("sop_classifier.",),
}
_HEAD_NAMES = {"rtd": "replaced-token detection", "sop": "sentence-order prediction"}
_COMMANDS_OF_TASK = {"fill-mask": ("fill-mask",), "nsp": ("nsp",), "classify": ("classify", "sentiment"),
                     "ner": ("ner",)}


def heads_in_weights(names) -> set[str]:
    """The heads a checkpoint's weights carry, by their names (see :data:`HEAD_WEIGHTS`):
    a subset of ``fill-mask``, ``nsp``, ``classifier`` (sequence or token classification:
    the same names and shapes), ``rtd``, ``sop``. Empty for a bare encoder."""
    found = set()
    for head, prefixes in HEAD_WEIGHTS.items():
        if any(n.startswith(prefixes) for n in names):
            found.add(head)
    return found


def tasks_of_checkpoint(cfg: dict, names=None) -> list[str] | None:
    """The tasks (``fill-mask``, ``nsp``, ``classify``, ``ner``) whose head the checkpoint has.

    The safetensors header decides where it names a head (bert-base-uncased says
    ``BertForMaskedLM`` but carries the NSP head too); ``architectures`` in config.json only
    tells a sequence classifier from a token classifier, whose weights look alike. None when
    neither the weights nor the config name any head (a bare encoder, or unknown names).
    """
    archs = [a for a in (cfg.get("architectures") or []) if isinstance(a, str)]
    by_arch = [t for t, sufs in HEAD_SUFFIXES.items() if any(a.endswith(sufs) for a in archs)]
    heads = heads_in_weights(names or ())
    if not heads:
        return by_arch or None
    tasks = [t for t in ("fill-mask", "nsp") if t in heads]
    if "classifier" in heads:
        cls_tasks = [t for t in ("classify", "ner") if t in by_arch] or ["classify", "ner"]
        tasks += cls_tasks
    return tasks


def check_architecture(cfg: dict, task: str, path: Path, names=None) -> None:
    """Refuse a checkpoint that lacks ``task``'s head but carries another one.

    ``names`` are the weights' tensor names (from the safetensors header); where given, they
    decide which heads are present (:func:`tasks_of_checkpoint`). A sentence classifier and
    a token classifier both store ``classifier.weight`` with the same shape, so for those
    two ``config.json``'s ``architectures`` decides. A bare encoder passes here: the loader
    then says which head is missing and how to train one.

    Raises:
        ModelError: naming the checkpoint's head and the commands that accept the folder,
            or saying that none does.
    """
    if task not in HEAD_SUFFIXES:
        return
    tasks = tasks_of_checkpoint(cfg, names)
    heads = heads_in_weights(names or ())
    if task in (tasks or ()) or (tasks is None and not heads):
        return
    archs = [a for a in (cfg.get("architectures") or []) if isinstance(a, str)]
    what = f"a {archs[0]} checkpoint" if archs else "a checkpoint"
    commands = [c for t in (tasks or ()) for c in _COMMANDS_OF_TASK[t]]
    if commands:
        hint = "use it with " + " or ".join(f"'bertcli {c}'" for c in commands)
    else:
        others = [_HEAD_NAMES[h] for h in sorted(heads) if h in _HEAD_NAMES]
        hint = ("its head (" + ", ".join(others) + ") is one no bertcli command runs; "
                if others else "no bertcli command runs it; ")
        hint += f"add and train a {TASKS[task][1]} with '{TASKS[task][2]} --model {path}'"
    raise ModelError(f"'{path}' is {what}: it has no {TASKS[task][1]}", hint)


def _check_symlinks(path: Path) -> None:
    """Refuse a symlink that leads outside the folder and anything that is neither a
    regular file nor a folder (a FIFO named tokenizer.json would block the load forever).

    In a snapshot folder of the Hugging Face cache every file is a link to
    ``../../blobs/<sha>``: links that stay inside that cache repo (``models--ORG--NAME/``)
    are followed; links leading anywhere else are still refused."""
    import stat

    root = cache_repo_root(path) or path.resolve()
    for p in path.iterdir():
        if p.is_symlink():
            target = p.resolve()
            if root != target and root not in target.parents:
                where = "the Hugging Face cache repo" if root != path.resolve() else "the model folder"
                raise ModelError(f"'{p}' is a symlink to '{target}', outside {where}; refusing to load it",
                                 "copy the file into the folder if you trust it")
        try:
            mode = p.stat().st_mode
        except OSError:
            continue  # a dangling link: the file is simply absent
        if not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
            raise ModelError(f"'{p}' in the model folder is not a regular file (a FIFO, socket or device); "
                             "refusing to load it", "a model folder holds plain files only")


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _check_tokenizer_config(path: Path) -> None:
    """tokenizer_config.json may name custom tokenizer code (``auto_map``) too: refused."""
    f = path / "tokenizer_config.json"
    if not f.is_file():
        return
    try:
        tcfg = json.loads(f.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as e:
        raise ModelError(f"{f} is not valid JSON: {e}") from None
    if isinstance(tcfg, dict) and (tcfg.get("auto_map") or tcfg.get("trust_remote_code")):
        raise ModelError(f"{f} asks for custom code (auto_map); bertcli never runs code from a model folder",
                         "use a checkpoint of a built-in transformers architecture")


def _check_model_type(cfg_file: Path, cfg: dict) -> None:
    """Refuse a ``model_type`` that neither the native encoder nor transformers knows."""
    mt = cfg.get("model_type")
    if not isinstance(mt, str) or not mt:
        raise ModelError(f"{cfg_file}: model_type={mt!r} is not a model type name",
                         "is this a Hugging Face transformers config?")
    from .families import FAMILIES

    if mt in FAMILIES:
        return  # no need to import transformers' tables for the native families
    from .loading import quiet_transformers

    quiet_transformers()
    from transformers.models.auto.configuration_auto import CONFIG_MAPPING_NAMES

    if mt not in CONFIG_MAPPING_NAMES:
        raise ModelError(f"{cfg_file}: unknown model_type '{mt}'",
                         "bertcli runs architectures built into transformers (bert, roberta, distilbert, ...)")


#: tokenizer files of the families bertcli runs: a fast tokenizer.json; WordPiece vocab.txt
#: (BERT; with bpe.codes for BERTweet/PhoBERT); SentencePiece models (ALBERT spiece.model,
#: XLM-R/CamemBERT sentencepiece.bpe.model, DeBERTa-v2/v3 spm.model); byte-level BPE
#: vocab.json + merges.txt (RoBERTa).
TOKENIZER_FILES = ("tokenizer.json", "vocab.txt", "spiece.model", "sentencepiece.bpe.model", "spm.model",
                   "tokenizer.model", "sentencepiece.model")


def _has_tokenizer(path: Path) -> bool:
    names = {p.name for p in path.iterdir()}
    return bool(set(TOKENIZER_FILES) & names) or {"vocab.json", "merges.txt"} <= names


def weight_files(path: Path) -> list[Path]:
    """The folder's ``*.safetensors`` files (sorted).

    Raises:
        ModelError: none exist (with a conversion hint when pickle weights are present).
    """
    files = sorted(path.glob("*.safetensors"))
    files = [f for f in files if not f.name.startswith("adapter_") and f.is_file()]
    if files:
        return files
    pickles = sorted(p.name for p in path.iterdir() if p.suffix in PICKLE_SUFFIXES)
    if pickles:
        # the hint names the folder's own class, so converting adds no randomly initialised head
        arch = "AutoModel"
        try:
            found = (json.loads((path / "config.json").read_text(encoding="utf-8")).get("architectures") or [""])[0]
            if isinstance(found, str) and found.isidentifier():
                arch = found
        except (OSError, ValueError, AttributeError, IndexError, TypeError):
            pass
        raise ModelError(
            f"model folder '{path}' has only pickle weights ({', '.join(pickles)}); bertcli loads safetensors only, "
            "because unpickling can run arbitrary code",
            "on a machine where you trust the file, convert it with the model's own class (the 'architectures' "
            "entry of config.json), e.g. python -c \"import transformers as t; "
            f"t.{arch}.from_pretrained('{path}').save_pretrained('{path}', "
            "safe_serialization=True)\"")
    raise ModelError(f"model folder '{path}' has no *.safetensors weights")


def _safetensors_shapes(path: Path, files: list[Path] | None = None) -> dict[str, list[int]]:
    """Tensor name -> shape, from the safetensors headers only (no tensor data is read)."""
    from safetensors import safe_open

    shapes: dict[str, list[int]] = {}
    for f in files if files is not None else weight_files(path):
        try:
            # "np": the header alone is read; "pt" would import torch (1+ s) for nothing
            with safe_open(str(f), framework="np") as st:
                for k in st.keys():
                    shapes[k] = list(st.get_slice(k).get_shape())
        except Exception as e:  # safetensors raises several types for corrupt files
            raise ModelError(f"weights file '{f}' is corrupt or truncated: {str(e).splitlines()[0]}",
                             "re-download or re-save the model") from None
    return shapes


def _check_shapes(path: Path, cfg: dict, shapes: dict[str, list[int]]) -> None:
    def find(suffix):
        for k, v in shapes.items():
            if k.endswith(suffix):
                return k, v
        return None, None

    k, v = find("embeddings.word_embeddings.weight")
    if v is not None and "vocab_size" in cfg and v[0] != cfg["vocab_size"]:
        raise ModelError(f"{path}/config.json says vocab_size={cfg['vocab_size']} but the weights' "
                         f"{k} has {v[0]} rows", "the config does not belong to these weights")
    k, v = find("embeddings.position_embeddings.weight")
    if v is not None and "max_position_embeddings" in cfg and v[0] != cfg["max_position_embeddings"]:
        raise ModelError(f"{path}/config.json says max_position_embeddings={cfg['max_position_embeddings']} "
                         f"but the weights' {k} has {v[0]} rows", "the config does not belong to these weights")
    k, v = find("embeddings.word_embeddings.weight")
    width_key = next((n for n in ("embedding_size", "hidden_size", "dim") if _is_int(cfg.get(n))), None)
    if v is not None and len(v) == 2 and width_key and v[1] != cfg[width_key]:
        raise ModelError(f"{path}/config.json says {width_key}={cfg[width_key]} but the weights' {k} has "
                         f"{v[1]} columns", "the config does not belong to these weights")
    layers_key = next((n for n in ("num_hidden_layers", "n_layers") if _is_int(cfg.get(n))), None)
    found = {int(m.group(1)) for m in map(_LAYER_RE.search, shapes) if m}
    if layers_key and found and cfg.get("model_type") != "albert" and cfg[layers_key] > len(found):
        raise ModelError(f"{path}/config.json says {layers_key}={cfg[layers_key]} but the weights hold "
                         f"{len(found)} layers", "the config does not belong to these weights")
    est, total = _config_size(cfg), sum(math.prod(s) for s in shapes.values())
    if est > 2 * total + (1 << 20):
        raise ModelError(f"{path}/config.json describes a model of about {est:,} parameters but the weights hold "
                         f"{total:,}", "the config does not belong to these weights")


_LAYER_RE = re.compile(r"\.layers?\.(\d+)\.")


def _config_size(cfg: dict) -> int:
    """A rough parameter count of a BERT-family encoder from its config: embeddings plus
    ``layers * (4 h^2 + 2 h i)``; 0 when the sizes are not given. Only compared against the
    weights with a wide margin, to refuse configs that would allocate far more than the
    checkpoint holds."""
    def get(*names, default=0):
        return next((cfg[n] for n in names if _is_int(cfg.get(n))), default)

    h = get("hidden_size", "dim", "d_model")
    layers = get("num_hidden_layers", "n_layers")
    if cfg.get("model_type") == "albert":  # ALBERT shares one group of layers
        layers = get("num_hidden_groups", default=1) * get("inner_group_num", default=1)
    inter = get("intermediate_size", "hidden_dim", default=4 * h)
    emb = get("embedding_size", default=h)
    return get("vocab_size") * emb + get("max_position_embeddings") * h + layers * (4 * h * h + 2 * h * inter)


def _check_adapter(path: Path, cfg: dict) -> None:
    """A LoRA adapter folder: its weights must be a readable ``adapter_model.safetensors``
    (pickle refused, never opened); its config.json is what the model is built from, so
    it is checked against the base model's weights when the base can be found here."""
    ad = path / "adapter_model.safetensors"
    if not ad.is_file():
        pickles = sorted(p.name for p in path.iterdir() if p.suffix in PICKLE_SUFFIXES)
        raise ModelError(f"adapter folder '{path}' has no adapter_model.safetensors"
                         + (f" (only pickle weights: {', '.join(pickles)}; bertcli never unpickles)" if pickles else ""),
                         "save the adapter with safetensors (peft's save_pretrained does by default)")
    _safetensors_shapes(path, [ad])
    try:
        acfg = json.loads((path / "adapter_config.json").read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as e:
        raise ModelError(f"{path}/adapter_config.json is not valid JSON: {e}") from None
    if not isinstance(acfg, dict):
        raise ModelError(f"{path}/adapter_config.json is not a JSON object")
    try:
        base = resolve_base_model(acfg.get("base_model_name_or_path"), path)
    except ModelError:
        return  # reported by the loader, which needs the base anyway
    if base.resolve() == path.resolve() or not (base / "config.json").is_file():
        return
    _check_symlinks(base)
    _check_shapes(path, cfg, _safetensors_shapes(base))
