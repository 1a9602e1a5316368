"""How many threads torch computes with: the CPUs this process may use, less those that other
processes keep busy, re-read while a run goes on.

Why: torch's OpenMP threads (GNU libgomp) spin up to ``GOMP_SPINCOUNT`` (300,000 pauses,
milliseconds) at every barrier before sleeping. Alone on the machine that is the fastest
choice; beside one other busy process, two threads on a 2-core machine get about one core
between them (Linux shares the CPU between sessions first, ``sched_autogroup``), the thread
that is switched out holds up every parallel region, and its partner spins on: issue #18
measured classify at 317 lines/s alone and 93 with one busy-loop competitor (3.4x).
``OMP_WAIT_POLICY=PASSIVE`` recovers 1.8x of that but costs 13 % alone, and a fixed
single thread costs ~40 % alone. So the count adapts: :class:`ThreadGovernor` reads how much
CPU the other processes used (``/proc/stat``'s busy time of this process's CPUs, less this
process's own CPU time) since the last look, and gives torch the CPUs they left free, at
least one, at most torch's own default. Alone the count is never touched (no
``torch.set_num_threads`` call at all); results do not depend on it (the native encoder's
products and attention give the same bits at 1 and 2 threads, tests/test_threads.py).

Usable CPUs: ``os.sched_getaffinity`` (taskset, cpusets), capped by a cgroup CPU quota
(v2 ``cpu.max``, v1 ``cpu.cfs_quota_us``/``cpu.cfs_period_us``) on the way up from the
process's own cgroup. ``BERTCLI_THREADS``: ``auto`` (the default), ``off`` (torch's own
default, never changed: bertcli before issue #18), or a number of threads (the CLI's
``--threads`` takes the same values); a user-set ``OMP_NUM_THREADS`` also turns the adaptation
off.
"""

from __future__ import annotations

import math
import os
import sys
import time
from dataclasses import dataclass

#: seconds between two looks at the CPU usage during a run
INTERVAL_S = 1.0
#: cores' worth of the others' usage counted as one busy CPU: a competitor that keeps a core
#: 60 % busy takes that core away, a short burst of 30 % does not
BUSY_CORE = 0.6


def _affinity() -> list[int]:
    try:
        return sorted(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return list(range(os.cpu_count() or 1))


def cgroup_quota(root: str = "/sys/fs/cgroup", proc: str = "/proc/self/cgroup") -> float | None:
    """The CPU quota (in CPUs) of this process's cgroup or any cgroup above it, the smallest;
    None when there is none (or no cgroup file system to read)."""
    quotas = []
    try:
        lines = open(proc, encoding="ascii").read().splitlines()
    except OSError:
        lines = []
    for ln in lines:
        parts = ln.split(":", 2)
        if len(parts) != 3:
            continue
        hier, ctrls, rel = parts
        rel = rel.strip("/")
        steps = rel.split("/") if rel else []
        for k in range(len(steps), -1, -1):
            sub = "/".join(steps[:k])
            if hier == "0":  # cgroup v2
                f = os.path.join(root, sub, "cpu.max")
                try:
                    q, p = open(f, encoding="ascii").read().split()[:2]
                    if q != "max":
                        quotas.append(int(q) / int(p))
                except (OSError, ValueError):
                    pass
            elif "cpu" in ctrls.split(","):  # cgroup v1
                d = os.path.join(root, "cpu,cpuacct" if "cpuacct" in ctrls else "cpu", sub)
                try:
                    q = int(open(os.path.join(d, "cpu.cfs_quota_us"), encoding="ascii").read())
                    p = int(open(os.path.join(d, "cpu.cfs_period_us"), encoding="ascii").read())
                    if q > 0 and p > 0:
                        quotas.append(q / p)
                except (OSError, ValueError):
                    pass
    return min(quotas) if quotas else None


def usable_cpus() -> int:
    """CPUs this process may run on: its affinity set, capped by the cgroup quota (rounded up)."""
    n = len(_affinity())
    q = cgroup_quota()
    if q is not None:
        n = min(n, max(1, math.ceil(q - 1e-9)))
    return max(1, n)


@dataclass
class Sample:
    """CPU accounting at one moment: ``busy`` seconds of the process's CPUs (all processes),
    ``own`` CPU seconds of this process (all its threads), ``wall`` a monotonic clock."""

    wall: float
    busy: float | None
    own: float


def _busy_seconds(cpus: list[int], path: str = "/proc/stat") -> float | None:
    """Busy time (user + nice + system + irq + softirq + steal) of ``cpus`` in seconds, from
    /proc/stat; None where there is no /proc/stat (macOS, Windows)."""
    try:
        lines = open(path, encoding="ascii").read().splitlines()
    except OSError:
        return None
    want = {f"cpu{i}" for i in cpus}
    hz = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
    total = 0
    for ln in lines:
        f = ln.split()
        if f and f[0] in want:
            v = [int(x) for x in f[1:9]] + [0] * 8
            total += v[0] + v[1] + v[2] + v[5] + v[6] + v[7]  # user nice system [idle iowait] irq softirq steal
    return total / hz


def sample(cpus: list[int] | None = None) -> Sample:
    return Sample(time.monotonic(), _busy_seconds(cpus if cpus is not None else _affinity()), time.process_time())


def others_cores(a: Sample, b: Sample) -> float | None:
    """Cores' worth of CPU that other processes used between two samples (None: unknown)."""
    dt = b.wall - a.wall
    if a.busy is None or b.busy is None or dt <= 0:
        return None
    return max(0.0, ((b.busy - a.busy) - (b.own - a.own)) / dt)


def choose(usable: int, default: int, others: float | None) -> int:
    """Threads to use: the usable CPUs less the ones others keep busy (:data:`BUSY_CORE`), at
    least 1, at most ``default`` (torch's own count: physical cores)."""
    busy = 0 if others is None else int(others + (1 - BUSY_CORE))
    return max(1, min(default, usable - min(busy, usable)))


class ThreadGovernor:
    """Adapts torch's intra-op thread count to the CPUs other processes leave free.

    Create it before the slow part of a run starts (the torch import and model load are the
    first measured interval), call :meth:`update` once the model is loaded and then as the
    run goes on (it looks again at most every :data:`INTERVAL_S` seconds), and :meth:`restore`
    at the end (the count torch had is put back: in-process callers see no change).
    Changes nothing when torch is not imported, under ``BERTCLI_THREADS=off`` or a user-set
    ``OMP_NUM_THREADS``; ``BERTCLI_THREADS=N`` fixes N threads.
    """

    def __init__(self, interval: float = INTERVAL_S, setting: str | None = None):
        """``setting``: ``auto``, ``off`` or a number of threads (``--threads``); None reads
        ``BERTCLI_THREADS`` (default auto)."""
        setting = (os.environ.get("BERTCLI_THREADS", "auto") if setting is None else str(setting)).strip().lower()
        self.fixed = int(setting) if setting.isdigit() and int(setting) > 0 else None
        self.enabled = self.fixed is not None or (setting in ("", "auto") and not os.environ.get("OMP_NUM_THREADS"))
        self.interval = interval
        self.cpus = _affinity()
        self.usable = usable_cpus()
        self.last = sample(self.cpus)
        self.original: int | None = None
        self.history: list[tuple[float | None, int]] = []  # (others' cores, threads) per decision

    def update(self, force: bool = False) -> int | None:
        """Look at the CPU usage since the last look and set torch's thread count; returns
        the count set, or None when nothing was decided (too soon, disabled, no torch)."""
        torch = sys.modules.get("torch")
        if not self.enabled or torch is None:
            return None
        now = time.monotonic()
        if not force and now - self.last.wall < self.interval:
            return None
        cur = torch.get_num_threads()
        if self.original is None:
            self.original = cur
        if self.fixed is not None:
            want = self.fixed
            others = None
        else:
            s = sample(self.cpus)
            others = others_cores(self.last, s)
            self.last = s
            want = choose(self.usable, self.original, others)
        self.history.append((others, want))
        if want != cur:
            torch.set_num_threads(want)
        return want

    def restore(self) -> None:
        """Put back the thread count torch had before the first :meth:`update`."""
        torch = sys.modules.get("torch")
        if torch is not None and self.original is not None and torch.get_num_threads() != self.original:
            torch.set_num_threads(self.original)

    def progress(self, callback=None):
        """A progress callback (``StreamOptions.progress``) that calls :meth:`update` first."""
        def cb(done: int) -> None:
            self.update()
            if callback is not None:
                callback(done)
        return cb
