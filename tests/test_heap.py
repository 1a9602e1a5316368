"""bertcli/heap.py: on glibc, loading a model on CPU keeps large temporaries on the heap, so
a block of the encoder's size freed and allocated again is not mapped and zero-filled afresh
each time (a minor page fault per 4 KiB page); ``BERTCLI_MALLOC=0`` leaves malloc as it is."""

from __future__ import annotations

import ctypes
import json
import os
import subprocess
import sys

import pytest

_GLIBC = sys.platform.startswith("linux") and hasattr(ctypes.CDLL(None), "gnu_get_libc_version")
pytestmark = pytest.mark.skipif(not _GLIBC, reason="mallopt's thresholds are glibc's")

# the second of two identical int8 ner runs on the shipped default (the int8 path allocates the
# most temporaries: quantized copies, outlier columns, dequantized outputs), batches of varied size
CHILD = """
import json, random, resource
from bertcli import heap
from bertcli.loading import load_model
from bertcli.tasks import ner
from bertcli.tasks.base import StreamOptions
lm = load_model(None, "ner", "cpu", "int8")
rnd = random.Random(0)
words = "the bank of England said on Monday that John Smith will visit Paris and Berlin next week".split()
texts = [" ".join(rnd.choice(words) for _ in range(rnd.randint(5, 60))) for _ in range(256)]
ner.ner(lm, texts, opts=StreamOptions(batch_size=64))
f0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
ner.ner(lm, texts, opts=StreamOptions(batch_size=64))
print(json.dumps({"on": heap.keep_temporaries(), "faults": resource.getrusage(resource.RUSAGE_SELF).ru_minflt - f0}))
"""


def _child(env_extra: dict) -> dict:
    env = dict(os.environ, **env_extra)
    p = subprocess.run([sys.executable, "-c", CHILD], capture_output=True, text=True, env=env, timeout=120)
    assert p.returncode == 0, p.stderr[-2000:]
    return json.loads(p.stdout.strip().splitlines()[-1])


def test_a_second_run_reuses_the_heap_instead_of_faulting_pages_in(minilm_dir):
    from bertcli import native

    if not native.int8_available():
        pytest.skip("this torch build has no oneDNN int8 linear")
    # pure int8 (no float32 recomputation of near-tie lines, whose few small batches made the
    # plain run's count swing 8-25 k and the ratio with it)
    tuned = _child({"BERTCLI_MALLOC": "1", "BERTCLI_INT8_MARGIN": "0"})
    plain = _child({"BERTCLI_MALLOC": "0", "BERTCLI_INT8_MARGIN": "0"})
    assert tuned["on"] is True and plain["on"] is False
    # measured: 2,919 vs 41,257 minor faults (one per 4 KiB page mapped afresh)
    assert tuned["faults"] * 4 < plain["faults"], (tuned, plain)


def test_load_model_on_cpu_applies_it(monkeypatch, cls_dir):
    from bertcli import heap
    from bertcli.loading import load_model

    calls = []
    monkeypatch.setattr(heap, "keep_temporaries", lambda: calls.append(1) or True)
    load_model(cls_dir, "classify", "cpu", "float32")
    assert calls == [1]
