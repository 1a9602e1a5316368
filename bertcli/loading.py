"""Model folder -> (tokenizer, model, task information); safetensors only, local only.

A model folder is a Hugging Face layout: ``config.json``, weights as ``*.safetensors``
(single file or sharded with ``model.safetensors.index.json``) and a fast tokenizer
(``tokenizer.json``, or ``vocab.txt`` / ``vocab.json``+``merges.txt`` from which one is
built). A folder with ``adapter_config.json`` is a PEFT (LoRA) adapter: its base model
is loaded first and the adapter is merged in, so it behaves like a full checkpoint.

Safety rules (checked before anything is instantiated):

* never the hub: every ``from_pretrained`` gets ``local_files_only=True``;
* never pickle: ``*.bin``/``*.pt``/``*.ckpt`` weights are refused, not opened;
* never remote code: a config with ``auto_map`` is refused (``trust_remote_code=False``);
* no symlink inside the folder may point outside it, and nothing in it may be a FIFO,
  socket or device (reading one would block or never end);
* sizes in ``config.json`` must be positive integers in sane bounds, and agree with
  the weight shapes in the safetensors header (vocabulary rows, width, positions,
  layers, total size), so an edited config cannot make the loader allocate gigabytes;
* the tokenizer may not have more tokens than the embedding matrix has rows.

The checks and the name-to-folder resolution (folders, hub ids in the local cache) are in
:mod:`bertcli.folders`; this module loads what they passed.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import ModelError
# the folder checks (re-exported: callers and tests reach them as loading.*)
from .folders import (HEAD_SUFFIXES, OFFSET_POSITION_TYPES, PICKLE_SUFFIXES, TASKS, _check_symlinks,  # noqa: F401
                      _check_tokenizer_config, _has_tokenizer, cache_repo_root, check_architecture, check_folder,
                      heads_in_weights, hub_cache_dir, hub_cache_snapshot, inspect_folder, looks_like_hub_id,
                      quiet_hub, resolve_base_model, resolve_model_dir, tasks_of_checkpoint, weight_files)

@dataclass
class LoadedModel:
    """A model ready for inference, behind a small task interface.

    ``forward(batch)`` takes padded encodings (``input_ids``, ``attention_mask`` and,
    when the model uses them, ``token_type_ids``: LongTensors of shape
    ``(batch, seq_len)`` on any device) and returns the task logits as float32 on CPU:

    * fill-mask: ``(n_masks, vocab_size)`` for the rows given in ``mask_rows``
      (a ``(n_masks, 2)`` LongTensor of (batch index, position)); the vocabulary
      projection runs only on those rows when the head allows it;
    * nsp: ``(batch, 2)``; index 0 = "B follows A" (BERT paper, section 3.1);
    * classify: ``(batch, num_labels)``;
    * ner: ``(batch, seq_len, num_labels)``.

    A faster native encoder can replace ``model`` without touching the tasks, as long
    as it keeps this contract.
    """

    path: Path
    task: str
    tokenizer: Any
    model: Any
    config: Any
    device: Any
    dtype: Any
    max_length: int
    native: bool = False
    info: dict = field(default_factory=dict)
    #: ``--dtype int8`` only: the same model in float32 (sharing the parameters), which
    #: recomputes the sequences whose int8 decision margin is under ``fallback_margin``
    #: (see :meth:`forward`); None otherwise
    fallback: Any = None
    #: the logit gap under which an int8 sequence is recomputed in float32 (:data:`INT8_MARGIN`)
    fallback_margin: float = 0.0
    #: (class attribute, not a field) True for the torch-free fast path's model
    #: (:class:`bertcli.fastpath.model.FastModel`): batches and logits are numpy arrays
    numpy = False

    @property
    def uses_token_type_ids(self) -> bool:
        return "token_type_ids" in getattr(self.tokenizer, "model_input_names", ()) and \
            getattr(self.config, "type_vocab_size", 0) > 1

    @property
    def id2label(self) -> dict[int, str]:
        return {int(k): str(v) for k, v in (self.config.id2label or {}).items()}

    def encode_inputs(self, batch: dict) -> dict:
        """Move a padded batch to the model's device, dropping inputs the model does not take."""
        keys = ["input_ids", "attention_mask"] + (["token_type_ids"] if self.uses_token_type_ids else [])
        return {k: batch[k].to(self.device) for k in keys if k in batch}

    def forward(self, batch: dict, mask_rows=None, refine: bool = True):
        """Run the model; see the class docstring for shapes. Float32 logits on CPU.

        With a :attr:`fallback` (``--dtype int8`` for classify, nsp and ner) and ``refine``, a
        sequence whose int8 logits leave a decision within :attr:`fallback_margin` is run again
        in float32 and gets the float32 logits (:meth:`_refine`); the tasks pass
        ``refine=False`` and rerun such sequences together (:func:`bertcli.tasks.base.run_refined`)."""
        import torch

        inputs = self.encode_inputs(batch)
        if self.native:
            with torch.inference_mode():
                mr = mask_rows.to(self.device) if mask_rows is not None else None
                logits = self.model(inputs["input_ids"], inputs["attention_mask"], inputs.get("token_type_ids"),
                                    mask_rows=mr).float().cpu()
                if self.fallback is None or mask_rows is not None or not refine:
                    return logits
                return self._refine(inputs, logits)
        with torch.inference_mode(), self._autocast():
            if self.task == "fill-mask" and mask_rows is not None:
                logits = self._masked_lm_rows(inputs, mask_rows.to(self.device))
            else:
                logits = self.model(**inputs).logits
        return logits.float().cpu()

    def decision_gaps(self, inputs: dict, logits, content=None):
        """Each sequence's smallest decision margin: ``(batch,)`` float32, the gap between the
        two largest logits (= the log-probability gap of the two likeliest labels under
        softmax); for ner the smallest such gap over the sequence's text tokens.

        inputs: ``encode_inputs``' dict; logits: ``forward``'s ``(batch, num_labels)`` or
        ``(batch, seq_len, num_labels)`` float32 on CPU. ``content`` (ner): one ``(start,
        end)`` span of text-token positions per sequence (the template's special tokens and
        the padding lie outside it); without it, every real position except those holding the
        template's ids (``[CLS]``, ``[SEP]``, ``<s>``, ``</s>``, padding) counts, so ``[UNK]``
        and ``[MASK]`` tokens, which ner labels like any text token, always count. A sequence
        with no text token gets ``inf``."""
        import torch

        top = logits.topk(2, dim=-1).values
        gap = top[..., 0] - top[..., 1]
        if gap.dim() == 1:
            return gap
        if content is not None:
            pos = torch.arange(gap.shape[1])
            span = torch.tensor(content, dtype=torch.long).reshape(-1, 2)
            real = (pos[None, :] >= span[:, :1]) & (pos[None, :] < span[:, 1:])
        else:
            ids = inputs["input_ids"].cpu()
            template = self.__dict__.get("_template_ids")
            if template is None:
                tok = self.tokenizer
                names = ("cls_token_id", "sep_token_id", "bos_token_id", "eos_token_id", "pad_token_id")
                found = {getattr(tok, n, None) for n in names} - {None, getattr(tok, "unk_token_id", None),
                                                                    getattr(tok, "mask_token_id", None)}
                template = self._template_ids = torch.tensor(sorted(found), dtype=ids.dtype)
            real = inputs["attention_mask"].cpu().bool() & ~torch.isin(ids, template)
        return gap.masked_fill(~real, float("inf")).amin(1)

    def _refine(self, inputs: dict, logits):
        """Replace the int8 logits of the sequences whose :meth:`decision_gaps` is under
        :attr:`fallback_margin` by :attr:`fallback`'s float32 logits for them.

        Lines that int8 flips against float32 sit near a decision boundary: on 2,000 real
        lines every flipped sentiment label had a logit gap of 0.081 or less, and all but 3 of
        the 37 lines whose entities changed had a token gap under 0.2 (benchmarks/RESULTS.md,
        issue #17). Each sequence is judged by its own logits and the float32 model gives a
        sequence the same bits in any batch, so the output still does not depend on the
        batching. Counts go to ``info["fallback_rows"]`` / ``info["rows"]``."""
        gap = self.decision_gaps(inputs, logits)
        redo = (gap < self.fallback_margin).nonzero().flatten()
        self.info["rows"] = self.info.get("rows", 0) + logits.shape[0]
        if not len(redo):
            return logits
        self.info["fallback_rows"] = self.info.get("fallback_rows", 0) + len(redo)
        mask = inputs["attention_mask"].cpu()[redo]
        n = int(mask.sum(1).max())
        sub = {k: v.cpu()[redo, :n] for k, v in inputs.items()}
        again = self.fallback.forward(sub)
        if logits.dim() == 3:
            logits[redo, :n] = again
        else:
            logits[redo] = again
        return logits

    def _masked_lm_rows(self, inputs, mask_rows):
        # The vocabulary projection costs more than the whole encoder per position:
        # run it only on the [MASK] rows when the head is a known module.
        head = _mlm_head(self.model)
        if head is None:
            logits = self.model(**inputs).logits
            return logits[mask_rows[:, 0], mask_rows[:, 1]]
        hidden = self.model.base_model(**inputs)[0]
        return head(hidden[mask_rows[:, 0], mask_rows[:, 1]])

    def _autocast(self):
        import contextlib

        import torch
        if self.dtype == torch.float32:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.dtype)


def _mlm_head(model):
    """The module mapping hidden states to vocabulary logits, for the families we know."""
    mt = getattr(model.config, "model_type", "")
    if mt in ("bert", "megatron-bert", "ernie") and hasattr(model, "cls"):
        return model.cls
    if mt in OFFSET_POSITION_TYPES and hasattr(model, "lm_head"):
        return model.lm_head
    return None


# ---------------------------------------------------------------- loading

def quiet_transformers() -> None:
    """Silence transformers' load reports and progress bars (bertcli reports problems itself)."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    import warnings

    # Deprecation notices of transformers/peft internals are not the user's business.
    for mod in ("transformers", "peft"):
        warnings.filterwarnings("ignore", category=FutureWarning, module=mod)
        warnings.filterwarnings("ignore", category=DeprecationWarning, module=mod)
    from transformers.utils import logging as tlog
    tlog.set_verbosity_error()
    try:
        tlog.disable_progress_bar()
    except AttributeError:  # older transformers
        pass


def load_tokenizer(path: Path, cfg: dict | None = None, offsets: bool = True):
    """The folder's tokenizer (local files only): a fast one where transformers can build it
    (from tokenizer.json, or converted from vocab.txt, vocab.json+merges.txt or a SentencePiece
    model), else the slow (Python) tokenizer of the family, e.g. BERTweet's or PhoBERT's
    vocab.txt + bpe.codes, for which no fast tokenizer exists.

    Args:
        offsets: the caller needs character offsets (``ner``, training a token classifier),
            which only a fast tokenizer gives.

    Raises:
        ModelError: the files cannot be read as a tokenizer; ``offsets`` asked of a slow-only
            tokenizer; the tokenizer has more tokens than the model's embedding matrix.
    """
    quiet_transformers()
    from transformers import AutoTokenizer

    try:
        tok = AutoTokenizer.from_pretrained(str(path), local_files_only=True, use_fast=True, trust_remote_code=False)
    except Exception as e:
        raise ModelError(f"cannot load the tokenizer in '{path}': {_first_line(e)}") from None
    if offsets and not getattr(tok, "is_fast", False):
        raise ModelError(f"the tokenizer in '{path}' ({type(tok).__name__}) has no fast version, and character "
                         "offsets need one",
                         "classify, sentiment, nsp and fill-mask run it; for ner use a model with a tokenizer.json")
    vocab = (cfg or {}).get("vocab_size")
    if vocab is not None and len(tok) > vocab:
        raise ModelError(f"the tokenizer in '{path}' has {len(tok)} tokens but the model's vocab_size is {vocab}",
                         "the tokenizer does not belong to this model")
    return tok


def load_model(model: str | os.PathLike | None = None, task: str = "classify", device: str = "auto",
               dtype: str = "auto", default: str | None = None, revision: str | None = None) -> LoadedModel:
    """Load a local model folder for ``task``.

    Args:
        model: folder path, or a hub id (``dslim/bert-base-NER``) found in the local Hugging
            Face cache (never downloaded, see :func:`resolve_model_dir`); ``None`` uses
            ``$BERTCLI_MODEL`` or the shipped default for the task.
        task: one of ``fill-mask``, ``nsp``, ``classify``, ``ner``, ``encoder``; ``sentiment``
            is ``classify`` with the sentiment default when no model is given.
        device, dtype: see :func:`bertcli.device.resolve`.
        default: which shipped default to use when no model is given (e.g. ``sentiment``
            for a classify model); defaults to ``task``.
        revision: with a hub id, the branch, tag or commit of the cached snapshot (default
            ``main``).

    Returns:
        A :class:`LoadedModel` in eval mode on the resolved device.

    Raises:
        ModelError: see :func:`check_folder`; also when the checkpoint lacks the task's
            head (e.g. a bare ``BertModel`` for fill-mask): the message names the head and
            the ``bertcli train`` command that adds one.
        DeviceError: see :func:`bertcli.device.resolve`.
    """
    from .device import resolve

    if task == "sentiment":  # a classify model; with no model folder, the sentiment default
        task, default = "classify", default or "sentiment"
    if task not in TASKS:
        raise ValueError(f"unknown task {task!r}: use one of {', '.join(TASKS)} (or sentiment)")
    dev, dt = resolve(device, dtype)
    path = resolve_model_dir(model, default or task, revision)
    if dev.type == "cpu":
        from .heap import keep_temporaries

        keep_temporaries()  # large temporaries from the heap, not fresh pages (bertcli/heap.py)
    cfg, shapes = inspect_folder(path)
    check_architecture(cfg, task, path, shapes)
    backend = os.environ.get("BERTCLI_BACKEND", "auto").lower()
    if backend not in ("auto", "native", "transformers"):
        raise ModelError(f"BERTCLI_BACKEND={backend!r} is not one of auto, native, transformers")
    if backend != "transformers":
        lm = _load_native(path, task, cfg, dev, dt, required=backend == "native")
        if lm is not None:
            return lm
    if dt == _torch().int8:
        why = ", BERTCLI_BACKEND=transformers" if backend == "transformers" else ""
        raise ModelError(f"--dtype int8 needs bertcli's native encoder, which does not run '{path}' "
                         f"(model_type '{cfg.get('model_type')}'{why})", "use --dtype float32 or bfloat16 for this model")
    tokenizer = load_tokenizer(path, cfg, offsets=task == "ner")
    if (path / "adapter_config.json").is_file():
        net, config = _load_adapter(path, task)
    else:
        net, config = _load_full(path, task)
    net.eval()
    net.to(dev)
    if dt != _torch().float32 and dev.type != "cpu":
        # On GPU keep weights in the low-precision dtype; on CPU autocast handles bf16.
        net.to(dt)
    return LoadedModel(path=path, task=task, tokenizer=tokenizer, model=net, config=config, device=dev,
                       dtype=dt, max_length=model_max_length(config, tokenizer))


class NativeConfig:
    """The parts of a transformers config the tasks read, from config.json alone."""

    def __init__(self, cfg: dict):
        self.__dict__.update(cfg)
        id2 = cfg.get("id2label")
        n = cfg.get("num_labels") or (len(id2) if id2 else 2)
        self.id2label = {int(k): v for k, v in id2.items()} if id2 else {i: f"LABEL_{i}" for i in range(n)}
        self.label2id = {v: k for k, v in self.id2label.items()}
        self.num_labels = len(self.id2label)
        self.problem_type = cfg.get("problem_type")
        self.model_type = cfg.get("model_type")


def _load_native(path: Path, task: str, cfg: dict, dev, dt, required: bool):
    """The native encoder (:mod:`bertcli.native`) when it supports the folder, else None."""
    from . import native
    from .fasttok import FastTokenizer

    is_adapter = (path / "adapter_config.json").is_file()
    if not native.supported(cfg):
        if required:
            raise ModelError(f"the native backend does not support model_type '{cfg.get('model_type')}'",
                             "unset BERTCLI_BACKEND to use transformers")
        return None
    # The tokenizers-only tokenizer needs a complete tokenizer.json; otherwise take
    # transformers' (its import costs start-up time, not correctness).
    try:
        tokenizer = FastTokenizer.from_folder(path)
    except Exception as e:  # tokenizers raises a bare Exception for a malformed tokenizer.json
        raise ModelError(f"cannot load the tokenizer in '{path}': {_first_line(e)}",
                         "tokenizer.json is damaged; re-save the tokenizer") from None
    if tokenizer is None:
        tokenizer = load_tokenizer(path, cfg, offsets=task == "ner")
    vocab = cfg.get("vocab_size")
    if vocab is not None and len(tokenizer) > vocab:
        raise ModelError(f"the tokenizer in '{path}' has {len(tokenizer)} tokens but the model's vocab_size is {vocab}",
                         "the tokenizer does not belong to this model")
    config = NativeConfig(cfg)
    try:
        if is_adapter:
            acfg = json.loads((path / "adapter_config.json").read_text(encoding="utf-8"))
            base = resolve_base_model(acfg.get("base_model_name_or_path"), path)
            check_folder(base)
            sd = native.apply_lora(native.read_safetensors(weight_files(base)), path)
        else:
            sd = native.read_safetensors(weight_files(path))
    except ModelError:
        if is_adapter and not required:
            return None  # an adapter layout only peft understands
        raise
    net = native.NativeEncoder(dict(cfg, num_labels=config.num_labels), task)
    native.load_state(net, sd, path, TASKS[task][1], TASKS[task][2])
    del sd
    net.eval()
    margin = int8_margin(task, config) if dt == native.INT8 else 0.0
    twin = None
    if margin > 0:  # the float32 model for the int8 fallback: its own modules, the same parameters
        import copy

        twin = copy.deepcopy(net, memo={id(t): t for t in list(net.parameters()) + list(net.buffers())})
    # to(dev, dt); on CPU: weights packed once for oneDNN (int8: outlier columns found on a
    # fixed calibration text first)
    net.prepare(dev, dt, calibration=int8_calibration(tokenizer) if dt == native.INT8 else None)
    max_length = model_max_length(config, tokenizer)
    fallback = None
    if twin is not None:
        fallback = LoadedModel(path=path, task=task, tokenizer=tokenizer, model=twin.prepare(dev, _torch().float32),
                               config=config, device=dev, dtype=_torch().float32, max_length=max_length, native=True)
    return LoadedModel(path=path, task=task, tokenizer=tokenizer, model=net, config=config, device=dev,
                       dtype=dt, max_length=max_length, native=True, fallback=fallback, fallback_margin=margin)


#: ``--dtype int8``: a classify, nsp or ner sequence whose int8 logits put two labels within this
#: logit gap (for ner: at any of its tokens) is recomputed in float32 (:meth:`LoadedModel._refine`).
#: 0.2 brought int8's agreement with float32 to 100 % of sentiment labels (three sets of real
#: lines, 2-5 % of them recomputed) and 99.5-99.9 % of ner lines (three sets, 6-9 % recomputed)
#: (benchmarks/RESULTS.md, issue #17). ``BERTCLI_INT8_MARGIN`` sets another gap; 0 turns the fallback off.
INT8_MARGIN = 0.2


def int8_margin(task: str, config) -> float:
    """The int8 fallback's logit gap for ``task`` (:data:`INT8_MARGIN`, or ``$BERTCLI_INT8_MARGIN``):
    0.0 (no fallback) for tasks other than classify, nsp and ner, for classify and ner models
    with a single label, and for classify models whose scores are not a softmax (regression,
    multi-label).

    Raises:
        ModelError: ``BERTCLI_INT8_MARGIN`` is not a number >= 0 (read only where it applies).
    """
    if task not in ("classify", "nsp", "ner") or (task != "nsp" and config.num_labels < 2):
        return 0.0
    if task == "classify" and config.problem_type not in (None, "single_label_classification"):
        return 0.0
    raw = os.environ.get("BERTCLI_INT8_MARGIN", "").strip()
    try:
        margin = float(raw) if raw else INT8_MARGIN
    except ValueError:
        margin = -1.0
    if not margin >= 0:  # also NaN
        raise ModelError(f"BERTCLI_INT8_MARGIN={raw!r} is not a number >= 0",
                         "give a logit gap such as 0.2, or 0 to turn the int8 fallback off")
    return margin


def int8_calibration(tokenizer) -> tuple:
    """:data:`bertcli.native.INT8_CALIBRATION` as the ``(input_ids, attention_mask,
    token_type_ids)`` LongTensors ``(8, L)`` (right-padded) that
    :meth:`bertcli.native.NativeEncoder.prepare` runs once for ``--dtype int8``."""
    from . import native
    from .tasks.base import collate, encode_texts

    feats, _ = encode_texts(tokenizer, list(native.INT8_CALIBRATION), None, 128)
    b = collate(feats, tokenizer.pad_token_id or 0)
    return b["input_ids"], b["attention_mask"], b["token_type_ids"]


def _torch():
    import torch
    return torch


def _auto_class(task: str):
    quiet_transformers()
    import transformers
    return getattr(transformers, TASKS[task][0])


def _auto_config(path: Path):
    """transformers' config of ``path`` (local files, no remote code)."""
    from transformers import AutoConfig

    try:
        return AutoConfig.from_pretrained(str(path), local_files_only=True, trust_remote_code=False)
    except Exception as e:
        raise ModelError(f"cannot read config in '{path}': {_first_line(e)}") from None


def _float32() -> dict:
    """``from_pretrained`` keywords that load the weights as float32 whatever dtype they are
    stored in: transformers 5 loads a float16/bfloat16 checkpoint in that dtype by default
    (``dtype="auto"``), and on CPU that ran half-precision checkpoints in half precision.
    bertcli computes in float32 under ``--dtype auto`` and casts afterwards for the dtype
    asked for (:func:`load_model`), as the native path does."""
    return {"dtype": _torch().float32}


def _load_full(path: Path, task: str):
    config = _auto_config(path)
    cls = _auto_class(task)
    try:
        net, info = cls.from_pretrained(str(path), config=config, local_files_only=True, use_safetensors=True,
                                        trust_remote_code=False, output_loading_info=True, **_float32())
    except ValueError as e:
        msg = _first_line(e)
        if "Unrecognized configuration class" in msg:
            raise ModelError(f"'{path}' ({config.model_type}) has no {TASKS[task][1]} architecture in transformers",
                             f"this model type cannot run '{task}'") from None
        raise ModelError(f"cannot load '{path}': {msg}") from None
    except Exception as e:
        raise ModelError(f"cannot load '{path}': {_first_line(e)}") from None
    _check_missing(path, task, net, info.get("missing_keys", ()))
    return net, config


def _check_missing(path: Path, task: str, net, missing) -> None:
    # Tied decoder weights are reported missing by some versions although they are tied
    # to the input embeddings; buffers like position_ids are never stored.
    tied = set()
    try:
        tied = set(getattr(net, "_tied_weights_keys", None) or [])
    except TypeError:
        pass
    real = sorted(k for k in missing if k not in tied and not k.endswith("position_ids")
                  and not k.endswith("decoder.bias")
                  # the encoder task reads hidden states and attention, never the pooler that
                  # AutoModel (AlbertModel, BertModel) adds and an MLM checkpoint lacks
                  and not (task == "encoder" and k.startswith("pooler.")))
    if real:
        head, hint = TASKS[task][1], TASKS[task][2]
        shown = ", ".join(real[:3]) + (", ..." if len(real) > 3 else "")
        raise ModelError(f"'{path}' has no {head} (missing weights: {shown})",
                         f"it is probably a bare encoder; add and train the head with '{hint}'" if hint else None)


def _load_adapter(path: Path, task: str):
    """Load a PEFT adapter folder: base model + adapter, merged into plain weights."""
    try:
        acfg = json.loads((path / "adapter_config.json").read_text(encoding="utf-8"))
    except ValueError as e:
        raise ModelError(f"{path}/adapter_config.json is not valid JSON: {e}") from None
    if not (path / "adapter_model.safetensors").is_file():
        pickles = [p.name for p in path.iterdir() if p.suffix in PICKLE_SUFFIXES]
        raise ModelError(f"adapter folder '{path}' has no adapter_model.safetensors"
                         + (f" (only pickle files: {', '.join(pickles)}; refused)" if pickles else ""))
    base = resolve_base_model(acfg.get("base_model_name_or_path"), path)
    check_folder(base)
    config = _auto_config(path)
    cls = _auto_class(task)
    try:
        net = cls.from_pretrained(str(base), config=config, local_files_only=True, use_safetensors=True,
                                  trust_remote_code=False, **_float32())
    except Exception as e:
        raise ModelError(f"cannot load base model '{base}' of adapter '{path}': {_first_line(e)}") from None
    try:
        from peft import PeftModel
    except ImportError:
        raise ModelError(f"'{path}' is a LoRA adapter and needs the 'peft' package",
                         "pip install 'bertcli[train]'") from None
    try:
        net = PeftModel.from_pretrained(net, str(path), is_trainable=False)
        net = net.merge_and_unload()
    except Exception as e:
        raise ModelError(f"cannot apply adapter '{path}': {_first_line(e)}") from None
    return net, config


def model_max_length(config, tokenizer) -> int:
    """Tokens per sequence the model accepts: the smaller of the tokenizer's
    ``model_max_length`` and the position table (minus the fairseq offset for RoBERTa)."""
    mpe = getattr(config, "max_position_embeddings", None) or 512
    if getattr(config, "model_type", "") in OFFSET_POSITION_TYPES:
        mpe -= (getattr(config, "pad_token_id", 1) or 1) + 1
    tmax = getattr(tokenizer, "model_max_length", None) or mpe
    return int(min(mpe, tmax))


def _first_line(e: BaseException) -> str:
    s = str(e).strip()
    return s.splitlines()[0] if s else type(e).__name__
