"""-o/--output and --resume: an interrupted run is completed into the file an uninterrupted
run writes, byte for byte; a torn last line is cut; a different input is refused."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

from click.testing import CliRunner

from bertcli.cli.main import cli


def run(args, **kw):
    return CliRunner().invoke(cli, args, **kw)


def test_resume_after_torn_line_equals_full_run(cls_dir, tmp_path):
    src = tmp_path / "in.jsonl"
    src.write_text("".join(json.dumps({"id": i, "text": f"sentence number {i} is here"}) + "\n" for i in range(40)))
    full = tmp_path / "full.jsonl"
    assert run(["classify", "-m", str(cls_dir), "-i", str(src), "-o", str(full), "-b", "8"]).exit_code == 0
    data = full.read_bytes()
    part = tmp_path / "part.jsonl"
    cut = data.index(b"\n", len(data) // 3) + 25  # mid-line: a torn record
    part.write_bytes(data[:cut])
    res = run(["classify", "-m", str(cls_dir), "-i", str(src), "--resume", str(part), "-b", "3"])
    assert res.exit_code == 0, res.output
    assert res.stdout == ""  # results went to the file
    assert part.read_bytes() == data


def test_resume_refuses_another_input(cls_dir, tmp_path):
    a, b = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    a.write_text("".join(json.dumps({"id": i, "text": "x"}) + "\n" for i in range(5)))
    b.write_text("".join(json.dumps({"id": i + 100, "text": "x"}) + "\n" for i in range(5)))
    out = tmp_path / "o.jsonl"
    assert run(["classify", "-m", str(cls_dir), "-i", str(a), "-o", str(out)]).exit_code == 0
    lines = out.read_text().splitlines()
    out.write_text("\n".join(lines[:3]) + "\n")
    res = run(["classify", "-m", str(cls_dir), "-i", str(b), "--resume", str(out)])
    assert res.exit_code == 1
    assert res.stderr == (f"Error: cannot resume '{out}': its record 3 has id=2 but input record 3 has id=102; "
                          "is this the same input?\n")
    short = tmp_path / "short.jsonl"
    short.write_text(a.read_text().splitlines()[0] + "\n")
    res = run(["classify", "-m", str(cls_dir), "-i", str(short), "--resume", str(out)])
    assert res.exit_code == 1 and "it holds 3 records but the input has only 1" in res.stderr
    res = run(["classify", "-m", str(cls_dir), "-i", str(a), "--resume", str(out), "-f", "json"])
    assert res.exit_code == 2 and "--resume continues a JSONL file" in res.stderr


def test_sigterm_then_resume_equals_uninterrupted(cls_dir, tmp_path):
    src = tmp_path / "in.txt"
    src.write_text("".join(f"line {i} of a long input file\n" for i in range(3000)))
    full = tmp_path / "full.jsonl"
    base = [sys.executable, "-m", "bertcli", "classify", "-m", str(cls_dir), "-i", str(src)]
    subprocess.run(base + ["-o", str(full)], check=True, capture_output=True)
    part = tmp_path / "part.jsonl"
    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}
    # The interrupted run goes one text at a time (slow enough to interrupt); the others
    # use default batches: results do not depend on the batch size.
    p = subprocess.Popen(base + ["-b", "1", "--window", "4", "-o", str(part)], stderr=subprocess.PIPE, env=env)
    deadline = time.time() + 60
    while time.time() < deadline and (not part.exists() or part.stat().st_size < 2000):
        time.sleep(0.05)
    p.send_signal(signal.SIGTERM)
    _, err = p.communicate(timeout=60)
    assert p.returncode == 143, err
    assert b"Traceback" not in err
    written = part.read_bytes()
    assert written.endswith(b"\n") and 0 < written.count(b"\n") < 3000
    for line in written.splitlines():
        json.loads(line)  # whole, valid lines only
    r = subprocess.run(base + ["--resume", str(part)], capture_output=True)
    assert r.returncode == 0, r.stderr
    assert part.read_bytes() == full.read_bytes()
