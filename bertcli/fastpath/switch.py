"""Which runs take the fast path: small inputs, read ahead to find out.

A run whose whole input is at most :data:`MAX_RECORDS` records (and :data:`MAX_TOKENS`
tokens) runs on the numpy encoder; anything longer keeps the normal path (torch, the native
encoder's bit-identical batching), which is faster per record once its start-up (~1.2 s of
``import torch``) is paid. To know, the first records are read ahead: texts given as
arguments and regular files are read at once; a pipe or a terminal is read by a helper
thread for at most :data:`WAIT_S` seconds, so that ``tail -f log | bertcli ...`` still gets
its first result without waiting for more lines or an end of input.

Only runs that would compute on the CPU in float32 qualify (``--device auto|cpu``,
``--dtype auto|float32``; the normal path under ``--device auto`` uses a GPU where there is
one: for a few records, loading torch and CUDA costs far more than the CPU forward pass).
``BERTCLI_BACKEND=native|transformers`` and ``BERTCLI_FASTPATH=0`` turn the fast path off.
"""

from __future__ import annotations

import itertools
import os
import queue
import stat
import sys
import threading
import time
from collections.abc import Iterable, Iterator

#: most records a run may have to take the fast path (see benchmarks/RESULTS.md, issue #18)
MAX_RECORDS = 32
#: most tokens (the tokenizer's count, special tokens included) of those records, scaled to a
#: model of MiniLM-L6's per-token cost; a larger model gets proportionally fewer
MAX_TOKENS = 2048
#: per-token cost (2 * layers * (4 H^2 + 2 H I), FLOPs) that MAX_TOKENS is given for: all-MiniLM-L6-v2
_REF_FLOPS = 2 * 6 * (4 * 384 * 384 + 2 * 384 * 1536)
#: how long a pipe or terminal may take to end its input before the run takes the normal path
WAIT_S = 0.3
_END = object()


def enabled(params: dict) -> bool:
    """True when the run's options and environment allow the fast path (CPU, float32, no
    backend forced, ``BERTCLI_FASTPATH`` not 0/off/no/false)."""
    if os.environ.get("BERTCLI_FASTPATH", "auto").strip().lower() in ("0", "off", "no", "false"):
        return False
    if os.environ.get("BERTCLI_BACKEND", "auto").strip().lower() not in ("", "auto"):
        return False
    device = (params.get("device") or "auto").lower()
    dtype = (params.get("dtype") or "auto").lower()
    return device in ("auto", "cpu") and dtype in ("auto", "float32")


def _blocking(source: str, input_path: str | None) -> bool:
    """Whether reading the input may wait on another process (a pipe, FIFO or terminal)."""
    if source == "arguments":
        return False
    try:
        st = os.fstat(sys.stdin.fileno()) if input_path in (None, "-") else os.stat(input_path)
    except (OSError, ValueError, AttributeError):
        return True
    return not stat.S_ISREG(st.st_mode)


def _size(rec) -> int:
    return len(rec.text or "") + len(getattr(rec, "text_pair", None) or "")


def read_ahead(records: Iterable, blocking: bool, max_records: int | None = None,
               wait_s: float | None = None) -> tuple[list | None, Iterator]:
    """``(small, records)``: ``small`` is the list of all the records when the input ends within
    ``max_records`` (default :data:`MAX_RECORDS`), else None; ``records`` yields every record
    from the first, in order, in both cases.

    An exception the reader raises (a CSV header without the field, ...) ends the input too:
    ``records`` raises it after the records before it, where it happened, so the caller meets
    it where it would have without the read-ahead (for ``-f json``, after the ``[``).
    ``blocking``: the input may wait on another process; a helper thread then reads it, and
    if it has not ended after ``wait_s`` seconds (default :data:`WAIT_S`) ``small`` is None;
    the thread goes on reading at most 1024 records ahead of ``records``.
    """
    max_records = MAX_RECORDS if max_records is None else max_records
    wait_s = WAIT_S if wait_s is None else wait_s
    it = iter(records)

    def replay(buf, err=None, more=()):
        yield from buf
        yield from more
        if err is not None:
            raise err

    if not blocking:
        buf: list = []
        try:
            for r in it:
                buf.append(r)
                if len(buf) > max_records:
                    return None, replay(buf, more=it)
        except Exception as e:  # the reader's own error: raised in its place by ``records``
            return buf, replay(buf, e)
        return buf, iter(buf)
    q: queue.Queue = queue.Queue(maxsize=1024)

    def pump():
        try:
            for r in it:
                q.put((r, None))
            q.put((_END, None))
        except BaseException as e:  # handed to the consumer, raised where it happened
            q.put((_END, e))

    threading.Thread(target=pump, name="bertcli-read-ahead", daemon=True).start()
    buf = []
    deadline = time.monotonic() + wait_s
    while len(buf) <= max_records:
        left = deadline - time.monotonic()
        try:
            item, err = q.get(timeout=left) if left > 0 else q.get_nowait()
        except queue.Empty:
            break
        if item is _END:
            return buf, replay(buf, err)
        buf.append(item)

    def drain():
        while True:
            item, err = q.get()
            if item is _END:
                if err is not None:
                    raise err
                return
            yield item

    return None, replay(buf, more=drain())


def token_budget(cfg: dict) -> int:
    """:data:`MAX_TOKENS` scaled to the model's per-token cost (a BERT-base gets ~1/6 of MiniLM's)."""
    from ..families import native_config

    c = native_config(cfg)
    h, i, n = c.get("hidden_size", 384), c.get("intermediate_size", 1536), c.get("num_hidden_layers", 6)
    per_token = max(1, 2 * n * (4 * h * h + 2 * h * i))
    return max(1, int(MAX_TOKENS * _REF_FLOPS / per_token))


def small_run(records: Iterable, source: str, task: str, params: dict, default: str | None = None):
    """``(lm, records)``: a :class:`bertcli.fastpath.model.FastModel` and the run's records when the
    run takes the fast path, else ``(None, records)`` with the same records in the same order.

    Raises:
        ModelError: as :func:`bertcli.loading.load_model` for a missing or unsafe model folder
            (checked the same way on both paths).
    """
    if not enabled(params):
        return None, records
    buf, records = read_ahead(records, _blocking(source, params.get("input_path")))
    if buf is None:
        return None, records
    from .model import load_fast

    lm = load_fast(params.get("model"), task, default=default, revision=params.get("revision"))
    if lm is None:
        return None, records
    texts = [r.text for r in buf if r.error is None and r.text]
    pairs = [r.text_pair or "" for r in buf if r.error is None and r.text]
    if texts:
        enc = lm.tokenizer(texts, pairs if any(pairs) else None, return_token_type_ids=False,
                           return_attention_mask=False)
        if sum(len(ids) for ids in enc["input_ids"]) > token_budget(lm.model.cfg):
            return None, records
    return lm, records
