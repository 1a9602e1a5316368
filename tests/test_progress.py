"""Progress at a terminal (issue #13 items 6-7): stdout stays the results' own, a total and an
ETA when the input size is known, the spinner never shares a line with a table, training's
bar moves on every step, evaluate shows a bar, an interrupted run says how to resume.

The terminal is a real pseudo-terminal (``pty``): rich decides what to draw from isatty()."""

from __future__ import annotations

import json
import os
import pty
import re
import select
import subprocess
import sys

import pytest

from test_train_run import opts, run_quiet, train_classify, write_sentiment

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def run_on_tty(args, *, stdout_tty: bool, tmp_path, columns=120):
    """Run ``python -m bertcli ARGS`` with stderr (and stdout when ``stdout_tty``) on a pty.

    Returns (stdout bytes when it is a pipe, everything the terminal showed, exit code)."""
    master, slave = pty.openpty()
    env = dict(os.environ, COLUMNS=str(columns), LINES="40", TERM="xterm-256color", BERTCLI_MODEL="")
    env.pop("NO_COLOR", None)
    proc = subprocess.Popen([sys.executable, "-m", "bertcli", *map(str, args)], stdin=subprocess.DEVNULL,
                            stdout=slave if stdout_tty else subprocess.PIPE, stderr=slave, env=env, cwd=tmp_path)
    os.close(slave)
    screen = b""
    while True:
        r, _, _ = select.select([master], [], [], 0.1)
        if r:
            try:
                chunk = os.read(master, 65536)
            except OSError:  # EIO: the child closed the terminal
                break
            if not chunk:
                break
            screen += chunk
        elif proc.poll() is not None:
            break
    out = proc.stdout.read() if proc.stdout else b""
    proc.wait(timeout=120)
    os.close(master)
    return out, screen.decode("utf-8", "replace"), proc.returncode


def screen_lines(screen: str) -> list[str]:
    """What each redraw put on a line: split at CR/LF, escape codes dropped."""
    return [ANSI.sub("", x) for x in re.split(r"[\r\n]", screen)]


@pytest.fixture()
def lines_file(tmp_path):
    p = tmp_path / "in.txt"
    p.write_text("I loved this movie.\nThe food was terrible.\nIt was fine.\n", encoding="utf-8")
    return p


def test_results_go_to_the_pipe_when_stderr_is_a_terminal(cls_dir, lines_file, tmp_path):
    """`bertcli classify -i x | jq` at a terminal: rich's live display used to redirect stdout
    into the terminal, so the pipe got nothing."""
    out, screen, rc = run_on_tty(["classify", "-m", cls_dir, "-i", lines_file], stdout_tty=False, tmp_path=tmp_path)
    assert rc == 0, screen
    recs = [json.loads(x) for x in out.decode().splitlines()]
    assert [r["text"] for r in recs] == lines_file.read_text().splitlines()
    assert '"label"' not in screen  # no result on the terminal
    # the input size is known: a total (and an ETA) on the progress line
    assert any("of 3 records" in ln and "eta" in ln for ln in screen_lines(screen)), screen


def test_the_spinner_never_shares_a_line_with_the_table(cls_dir, lines_file, tmp_path):
    out, screen, rc = run_on_tty(["classify", "-m", cls_dir, "-i", lines_file], stdout_tty=True, tmp_path=tmp_path)
    assert rc == 0, screen
    lines = screen_lines(screen)
    assert any("I loved this movie." in ln and "│" in ln for ln in lines)  # the table is there
    for ln in lines:
        assert not ("records" in ln and "│" in ln), f"progress and table on one line: {ln!r}"


def test_texts_as_arguments_count_as_the_total(cls_dir, tmp_path):
    _, screen, rc = run_on_tty(["classify", "-m", cls_dir, "a", "b"], stdout_tty=False, tmp_path=tmp_path)
    assert rc == 0 and any("of 2 records" in ln for ln in screen_lines(screen)), screen


def test_count_records():
    from bertcli.cli.output import count_records

    assert count_records(["a", "b", "c"], None) == 3
    assert count_records(["a.", "b.", "c.", "d."], None, pairs=True) == 2  # nsp: A B pairs
    assert count_records((), "-") is None


def test_count_records_of_a_file(tmp_path):
    from bertcli.cli.output import count_records

    (tmp_path / "a.txt").write_bytes(b"x\ny\nz")  # no final newline
    (tmp_path / "b.txt").write_bytes(b"x\ny\n")
    (tmp_path / "c.txt").write_bytes(b"")
    assert [count_records((), str(tmp_path / n)) for n in ("a.txt", "b.txt", "c.txt")] == [3, 2, 0]


def test_training_emits_every_step(encoder_dir, tmp_path):
    train, dev = write_sentiment(tmp_path / "data", n_train=32, n_dev=8)
    res, events, _ = run_quiet(train_classify, encoder_dir, train, tmp_path / "out",
                               options=opts(epochs=1, logging_steps=100))
    steps = [e["step"] for e in events if e["event"] == "step"]
    assert steps == list(range(1, res.global_step + 1)) and res.global_step == 4
    logs = [e["step"] for e in events if e["event"] == "log"]
    assert len(logs) < len(steps)  # a bar fed by log events alone would have skipped steps


def test_training_bar_moves_on_steps_and_rows_print_clear_of_it(encoder_dir, tmp_path):
    train, dev = write_sentiment(tmp_path / "data", n_train=32, n_dev=8)
    out, screen, rc = run_on_tty(["train", "classify", "-m", encoder_dir, "--train", train, "--eval", dev,
                                  "-o", tmp_path / "run", "--epochs", "1", "-b", "8", "--logging-steps", "100",
                                  "-f", "jsonl", "--device", "cpu"], stdout_tty=True, tmp_path=tmp_path)
    assert rc == 0, screen
    lines = screen_lines(screen)
    seen = {int(m.group(1)) for ln in lines for m in [re.search(r"train .*?(\d+)/4", ln)] if m}
    assert {1, 2, 3} <= seen, screen  # every step, not only log events (only step 1 logs here)
    row = [ln for ln in lines if ln.startswith('{"step"')]
    assert row and json.loads(row[0])["step"] == 4


def test_evaluate_shows_a_bar(cls_dir, tmp_path):
    data = tmp_path / "dev.tsv"
    data.write_text("sentence\tlabel\n" + "".join(f"text number {i}\t{['NEGATIVE', 'POSITIVE'][i % 2]}\n"
                                                   for i in range(40)), encoding="utf-8")
    _, screen, rc = run_on_tty(["evaluate", "-m", cls_dir, "--data", data, "-b", "8", "-f", "json"],
                               stdout_tty=False, tmp_path=tmp_path)
    assert rc == 0, screen
    assert any(re.search(r"evaluate .*40/40", ln) for ln in screen_lines(screen)), screen
