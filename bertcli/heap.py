"""The C heap's settings for CPU inference: the encoder's large temporaries reuse heap memory
instead of fresh pages from the kernel.

Why: every layer of a CPU forward pass allocates and frees tensors of megabytes (the QKV
projection, the feed-forward activations, int8's quantized copies). glibc's ``malloc`` serves
blocks above ``M_MMAP_THRESHOLD`` (128 KiB at start, raised adaptively to at most 32 MiB) with
a fresh ``mmap`` and gives them back with ``munmap`` on free, and it trims the top of the heap
above ``M_TRIM_THRESHOLD``; so the same few sizes were mapped, zero-filled page by page
(a minor page fault per 4 KiB) and unmapped again in every layer of every batch. On 2,000
real lines at 1 thread (AMD EPYC, torch 2.13, issue #17) that was 130,000-310,000 minor
faults and 0.12-0.66 s of system time per run (int8 the most: 6-11 % of its run time); with
the settings below, 5,000-15,000 faults and 0.01-0.02 s. ONNX Runtime, OpenVINO and
CTranslate2 keep their own arenas for the same reason; PyTorch's CPU tuning guide suggests
an ``LD_PRELOAD``-ed jemalloc or tcmalloc, which a pip-installed command cannot do itself.

The settings: ``mallopt(M_MMAP_THRESHOLD, 256 MiB)`` (blocks up to that come from the heap;
setting it also stops glibc's adaptive changes) and ``mallopt(M_TRIM_THRESHOLD, 1 GiB)``
(freed memory at the top of the heap is kept, up to that much, for the next batch). The cost:
the process keeps up to that much freed memory mapped until it exits, instead of returning it
at once. Only glibc has ``mallopt`` with these meanings; elsewhere (musl, macOS, Windows)
nothing is changed. ``BERTCLI_MALLOC=0`` leaves the heap as it is.
"""

from __future__ import annotations

import ctypes
import os
import sys

#: ``mallopt`` parameters (glibc's malloc.h)
M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
#: blocks up to this many bytes come from the heap, not from a fresh mmap
MMAP_THRESHOLD = 256 << 20
#: freed memory kept at the top of the heap before glibc gives it back
TRIM_THRESHOLD = 1 << 30

_done: bool | None = None


def keep_temporaries() -> bool:
    """Apply the settings of this module's docstring to this process, once; returns whether
    they are in effect (False: not glibc, ``BERTCLI_MALLOC=0``, or ``mallopt`` refused).
    Results do not change, only where the memory of large temporaries comes from."""
    global _done
    if _done is not None:
        return _done
    _done = False
    if os.environ.get("BERTCLI_MALLOC", "1").strip().lower() in ("0", "false", "no", "off"):
        return False
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None)
        libc.gnu_get_libc_version  # glibc only: musl's mallopt does nothing
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    _done = bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD))
    return _done
