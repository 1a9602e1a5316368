"""torch's thread count under other processes' load (bertcli.threads, issue #18).

The decision rule, the CPU accounting it reads (/proc/stat, cgroup quotas, from fake files
here), the governor's effect on torch (set only when needed, restored after), and the fact
that makes changing it mid-run safe: the native encoder gives the same bits at 1 and 2 threads.
"""

from __future__ import annotations

import pytest
import torch

from bertcli import threads


@pytest.mark.parametrize("usable,default,others,want", [
    (2, 2, None, 2), (2, 2, 0.0, 2), (2, 2, 0.5, 2), (2, 2, 0.6, 1), (2, 2, 1.0, 1), (2, 2, 1.9, 1),
    (2, 2, 3.0, 1), (16, 8, 1.0, 8), (16, 16, 1.0, 15), (16, 16, 2.7, 13), (1, 2, 0.0, 1)])
def test_choose(usable, default, others, want):
    assert threads.choose(usable, default, others) == want


def test_others_cores_subtracts_this_process():
    a = threads.Sample(wall=10.0, busy=100.0, own=5.0)
    b = threads.Sample(wall=12.0, busy=104.0, own=7.0)  # 4 busy CPU-seconds in 2 s, 2 of them ours
    assert threads.others_cores(a, b) == pytest.approx(1.0)
    assert threads.others_cores(a, threads.Sample(12.0, None, 7.0)) is None


def test_busy_seconds_reads_the_process_cpus(tmp_path):
    stat = tmp_path / "stat"
    stat.write_text("cpu  900 0 300 5000 10 0 0 0 0 0\n"
                    "cpu0 100 10 50 2000 5 1 2 3 0 0\n"
                    "cpu1 800 0 250 3000 5 0 0 0 0 0\n"
                    "intr 12345\n")
    import os

    hz = os.sysconf("SC_CLK_TCK")
    assert threads._busy_seconds([0], str(stat)) == pytest.approx((100 + 10 + 50 + 1 + 2 + 3) / hz)
    assert threads._busy_seconds([0, 1], str(stat)) == pytest.approx((166 + 1050) / hz)
    assert threads._busy_seconds([0], str(tmp_path / "missing")) is None


def test_cgroup_quota_v2_and_v1(tmp_path):
    root = tmp_path / "cg"
    (root / "user.slice" / "job").mkdir(parents=True)
    (root / "cpu.max").write_text("max 100000\n")
    (root / "user.slice" / "cpu.max").write_text("150000 100000\n")
    (root / "user.slice" / "job" / "cpu.max").write_text("max 100000\n")
    proc = tmp_path / "cgroup"
    proc.write_text("0::/user.slice/job\n")
    assert threads.cgroup_quota(str(root), str(proc)) == pytest.approx(1.5)
    v1 = tmp_path / "v1"
    (v1 / "cpu,cpuacct" / "docker" / "abc").mkdir(parents=True)
    (v1 / "cpu,cpuacct" / "docker" / "abc" / "cpu.cfs_quota_us").write_text("50000\n")
    (v1 / "cpu,cpuacct" / "docker" / "abc" / "cpu.cfs_period_us").write_text("100000\n")
    proc.write_text("4:cpu,cpuacct:/docker/abc\n3:memory:/docker/abc\n")
    assert threads.cgroup_quota(str(v1), str(proc)) == pytest.approx(0.5)
    proc.write_text("0::/\n")
    assert threads.cgroup_quota(str(tmp_path / "none"), str(proc)) is None


def test_governor_sets_only_what_differs_and_restores(monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setenv("BERTCLI_THREADS", "auto")
    before = torch.get_num_threads()
    gov = threads.ThreadGovernor(interval=0.0)
    gov.usable = 2
    calls = []
    monkeypatch.setattr(torch, "set_num_threads", lambda n: calls.append(n))
    monkeypatch.setattr(threads, "others_cores", lambda a, b: 1.0)  # one busy competitor
    assert gov.update(force=True) == 1 and calls == ([1] if before != 1 else [])
    monkeypatch.setattr(threads, "others_cores", lambda a, b: 0.0)
    assert gov.update() == min(2, before)
    gov.restore()
    assert gov.history[0] == (1.0, 1)


@pytest.mark.parametrize("setting,env,expect", [("off", {}, None), ("auto", {"OMP_NUM_THREADS": "2"}, None),
                                                 ("1", {}, 1)])
def test_governor_settings(monkeypatch, setting, env, expect):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setenv("BERTCLI_THREADS", setting)
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    before = torch.get_num_threads()
    gov = threads.ThreadGovernor()
    try:
        assert gov.update(force=True) == expect
        if expect is not None:
            assert torch.get_num_threads() == expect
    finally:
        gov.restore()
    assert torch.get_num_threads() == before


@pytest.mark.parametrize("dtype", ["float32", "bfloat16", "int8"])
def test_results_do_not_depend_on_the_thread_count(cls_dir, ner_dir, mlm_dir, dtype):
    """What makes adapting the count mid-run safe: the same bits at 1 and 2 threads, in every
    CPU precision (the last layer's few-query attention once broke this on an AMD EPYC:
    SDPA's flash kernel splits a short query block's keys across threads)."""
    from bertcli import native

    if dtype == "int8" and not native.int8_available():
        pytest.skip("this torch build has no oneDNN int8 linear")
    from bertcli.loading import load_model
    from bertcli.tasks import classify, fill_mask, ner

    texts = [f"The food was terrible and the service number {i} was worse than ever before." * (1 + i % 3)
             for i in range(40)]
    runs = {}
    before = torch.get_num_threads()
    try:
        for n in (1, 2):
            torch.set_num_threads(n)
            runs[n] = (classify.classify(load_model(cls_dir, "classify", "cpu", dtype), texts, top_k=None),
                       ner.ner(load_model(ner_dir, "ner", "cpu", dtype), texts),
                       fill_mask.fill_mask(load_model(mlm_dir, "fill-mask", "cpu", dtype),
                                           [t.replace("food", "[MASK]", 1) for t in texts]))
    finally:
        torch.set_num_threads(before)
    assert runs[1] == runs[2]


@pytest.mark.parametrize("option, want", [("1", [1]), ("2", [2])])
def test_threads_option_fixes_the_count_for_the_run(cls_dir, monkeypatch, option, want):
    """``--threads N``: torch computes with exactly N threads during the run (set once after
    the model loads), and the count torch had is put back afterwards; the output is the same
    as with auto."""
    from click.testing import CliRunner

    from bertcli.cli.main import cli

    monkeypatch.setenv("BERTCLI_FASTPATH", "0")
    before = torch.get_num_threads()
    seen = []
    real = torch.set_num_threads

    def spy(n):
        seen.append(n)
        real(n)
    monkeypatch.setattr(torch, "set_num_threads", spy)
    args = ["classify", "-m", str(cls_dir), "-f", "jsonl", "-q", "a b c", "d e"]
    res = CliRunner().invoke(cli, [*args, "--threads", option])
    assert res.exit_code == 0, res.output
    if before != want[0]:
        assert seen[0] == want[0] and seen[-1] == before  # set for the run, then restored
    else:
        assert seen == []  # nothing to change
    assert torch.get_num_threads() == before
    auto = CliRunner().invoke(cli, args)
    assert auto.stdout == res.stdout


def test_threads_option_is_checked():
    from click.testing import CliRunner

    from bertcli.cli.main import cli

    res = CliRunner().invoke(cli, ["classify", "--threads", "0", "x"])
    assert res.exit_code == 2 and "not a thread count" in res.stderr


def test_attention_threads_option_is_restored_after_the_run(cls_dir, monkeypatch):
    from click.testing import CliRunner

    from bertcli.cli.main import cli

    before = torch.get_num_threads()
    want = 1 if before != 1 else 2
    seen = []
    real = torch.set_num_threads
    monkeypatch.setattr(torch, "set_num_threads", lambda n: (seen.append(n), real(n)))
    res = CliRunner().invoke(cli, ["attention", "-m", str(cls_dir), "-f", "jsonl", "-q", "--threads", str(want), "a b"])
    assert res.exit_code == 0, res.output
    assert seen == [want, before] and torch.get_num_threads() == before
