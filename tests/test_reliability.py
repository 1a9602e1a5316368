"""Resource faults: out-of-memory batches are split and retried; missing devices are explained."""

from __future__ import annotations

import pytest

from bertcli.batching import is_out_of_memory, run_sorted
from bertcli.device import resolve
from bertcli.errors import DeviceError


def test_oom_batches_are_split_until_they_fit():
    seen = []

    def run(batch):
        seen.append(len(batch))
        if len(batch) > 2:
            raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return [x * 10 for x in batch]

    out = run_sorted(list(range(7)), [1, 2, 3, 4, 5, 6, 7], run, batch_size=8, max_tokens=None)
    assert out == [0, 10, 20, 30, 40, 50, 60]
    assert max(n for n in seen[1:]) <= 4 and seen[0] == 7  # first try whole, then halves


def test_cpu_allocation_failure_is_split_too():
    def run(batch):
        if len(batch) > 1:
            raise RuntimeError("[enforce fail at alloc_cpu.cpp:117] DefaultCPUAllocator: can't allocate memory")
        return batch

    assert run_sorted(["a", "b", "c"], [3, 2, 1], run, batch_size=3, max_tokens=None) == ["a", "b", "c"]


def test_single_item_oom_and_other_errors_propagate():
    def oom(batch):
        raise RuntimeError("CUDA out of memory")

    with pytest.raises(RuntimeError, match="out of memory"):
        run_sorted([1], [1], oom)

    def bug(batch):
        raise RuntimeError("shape mismatch")

    with pytest.raises(RuntimeError, match="shape mismatch"):
        run_sorted([1, 2], [1, 1], bug)


def test_is_out_of_memory_kinds():
    assert is_out_of_memory(MemoryError())
    assert is_out_of_memory(RuntimeError("MPS backend out of memory"))
    assert not is_out_of_memory(RuntimeError("index out of range"))


def test_missing_devices_suggest_cpu():
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    for dev in ("cuda", "cuda:1"):
        with pytest.raises(DeviceError) as e:
            resolve(dev)
        assert e.value.hint == "try --device cpu"
    with pytest.raises(DeviceError, match="float16 is not supported on CPU"):
        resolve("cpu", "float16")
    with pytest.raises(DeviceError, match="unknown device 'tpu'"):
        resolve("tpu")
    dev, dt = resolve("auto", "bf16")
    assert (dev.type, dt) == ("cpu", torch.bfloat16)


def test_the_failed_batch_is_freed_before_the_halves_run():
    """The retry runs after the except block: the failed attempt's frames (and on CUDA its
    activations) are gone when the halves start (a weak reference to a tensor the failed
    call allocated is dead at the first retry)."""
    import gc
    import weakref

    import torch

    refs = []

    def run(batch):
        if refs:
            gc.collect()  # only reference cycles; a live traceback would still hold it
            assert refs[0]() is None, "the failed batch's tensor is still alive at the retry"
        act = torch.ones(len(batch), 1000)
        if len(batch) > 2:
            refs.append(weakref.ref(act))
            raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return list(batch)

    assert run_sorted(list(range(4)), [1, 2, 3, 4], run, batch_size=4, max_tokens=None) == [0, 1, 2, 3]
