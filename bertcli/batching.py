"""Bounded windows, length sorting, token-budget batches and order restoration.

The streaming shape (after sentence-transformers' ``encode``): read at most ``window``
records, sort them by token length, cut the sorted list into batches bounded both by
``batch_size`` sequences and by ``max_tokens`` padded tokens, run each batch, and give
the results back in input order. Memory is bounded by the window whatever the input
size, and sorting keeps padding small (unsorted batches of mixed-length text can pad
2-3x more tokens than they hold).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import TypeVar

T = TypeVar("T")
R = TypeVar("R")

DEFAULT_BATCH_SIZE = 64
#: padded tokens per batch; 1-4k was the measured sweet spot on CPU (see benchmarks/).
DEFAULT_MAX_TOKENS = 4096
DEFAULT_WINDOW = 1024


def windows(items: Iterable[T], size: int, is_barrier: Callable[[T], bool] = lambda _: False,
            start: int = 1) -> Iterator[list[T]]:
    """Cut a stream into lists of at most ``size`` items.

    Windows grow from ``start`` items, doubling up to ``size``, so that the first results
    of a slow stream (``tail -f | bertcli ...``) or of a long run come out at once, and an
    interrupted run has written something; later windows are full-size for good sorting.

    A *barrier* item (e.g. an input error) ends the current window and is yielded as a
    window of its own, so that everything read before it is processed and written
    before the barrier is handled. Nothing is read ahead of the barrier.
    """
    buf: list[T] = []
    cap = max(1, min(start, size))
    for it in items:
        if is_barrier(it):
            if buf:
                yield buf
                buf = []
            yield [it]
            continue
        buf.append(it)
        if len(buf) >= cap:
            yield buf
            buf = []
            cap = min(size, cap * 2)
    if buf:
        yield buf


def plan_batches(lengths: Sequence[int], batch_size: int = DEFAULT_BATCH_SIZE,
                 max_tokens: int | None = DEFAULT_MAX_TOKENS) -> list[list[int]]:
    """Group indices into batches of similar length.

    Args:
        lengths: token count of each item (padded length of a batch = its longest item).
        batch_size: at most this many items per batch.
        max_tokens: at most this many padded tokens (``len(batch) * max(length)``) per
            batch; a single longer item still gets a batch of its own. None: no bound.

    Returns:
        Lists of indices into ``lengths``; every index appears exactly once. Batches are
        ordered longest first (an out-of-memory error shows on the first batch).
    """
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    batches: list[list[int]] = []
    cur: list[int] = []
    cur_max = 0
    for i in order:
        n = max(1, lengths[i])
        new_max = max(cur_max, n)
        if cur and (len(cur) >= batch_size or (max_tokens and new_max * (len(cur) + 1) > max_tokens)):
            batches.append(cur)
            cur, new_max = [], n
        cur.append(i)
        cur_max = new_max
    if cur:
        batches.append(cur)
    return batches


def is_out_of_memory(e: BaseException) -> bool:
    """True for CUDA/MPS out-of-memory errors and CPU allocation failures."""
    if isinstance(e, MemoryError):
        return True
    name = type(e).__name__
    msg = str(e).lower()
    return name == "OutOfMemoryError" or "out of memory" in msg or "can't allocate memory" in msg \
        or "cannot allocate memory" in msg


def run_sorted(items: Sequence[T], lengths: Sequence[int], run: Callable[[list[T]], list[R]],
               batch_size: int = DEFAULT_BATCH_SIZE, max_tokens: int | None = DEFAULT_MAX_TOKENS) -> list[R]:
    """Run ``run`` over length-sorted batches of ``items``; results in input order.

    ``run`` takes a list of items and returns one result per item, in the same order.
    A batch that runs out of memory is split in halves and retried (down to single
    items); only a single item that still does not fit raises.
    """
    out: list = [None] * len(items)
    for idx in plan_batches(lengths, batch_size, max_tokens):
        for sub, res in _run_splitting(items, idx, run):
            for i, r in zip(sub, res):
                out[i] = r
    return out


def _run_splitting(items, idx: list[int], run):
    oom = False
    try:
        res = run([items[i] for i in idx])
    except (RuntimeError, MemoryError) as e:
        if len(idx) == 1 or not is_out_of_memory(e):
            raise
        oom = True
    if oom:
        # split outside the except block: inside it, the exception's traceback keeps the
        # failed batch's frames and their tensors alive, so on CUDA the halves would start
        # with the failed attempt's activations still allocated
        _free_cache()
        half = len(idx) // 2
        yield from _run_splitting(items, idx[:half], run)
        yield from _run_splitting(items, idx[half:], run)
        return
    if len(res) != len(idx):
        raise RuntimeError(f"batch function returned {len(res)} results for {len(idx)} items")
    yield idx, res


def _free_cache() -> None:
    import sys

    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available():
        torch.cuda.empty_cache()
