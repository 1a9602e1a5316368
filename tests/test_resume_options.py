"""``--resume FILE`` with other output options than the interrupted run: a file whose scores
were rounded to another ``--precision`` is refused before the model is loaded, instead of
being completed into a file with mixed roundings."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from bertcli.cli.main import cli
from bertcli.io.resume import written_precision


def run(args):
    return CliRunner().invoke(cli, [str(a) for a in args])


@pytest.fixture()
def texts(tmp_path):
    src = tmp_path / "in.jsonl"
    src.write_text("".join(json.dumps({"id": i, "text": f"sentence number {i} is here"}) + "\n" for i in range(30)))
    return src


def interrupted(cls_dir, src, tmp_path, *opts):
    """The first 12 lines of a run with ``opts``, as a run stopped by Ctrl-C leaves them."""
    full = tmp_path / "full.jsonl"
    assert run(["classify", "-m", cls_dir, "-i", src, "-o", full, "--top-k", "all", *opts]).exit_code == 0
    part = tmp_path / "part.jsonl"
    part.write_text("".join(full.read_text().splitlines(keepends=True)[:12]))
    return full, part


@pytest.mark.parametrize("written, resumed", [(4, 6), (6, 3)])
def test_resume_with_another_precision_is_refused(cls_dir, texts, tmp_path, written, resumed):
    _, part = interrupted(cls_dir, texts, tmp_path, "--precision", str(written))
    before = part.read_bytes()
    res = run(["classify", "-m", tmp_path / "not-loaded", "-i", texts, "--resume", part, "--top-k", "all",
               "--precision", str(resumed)])
    assert res.exit_code == 1 and res.stdout == ""
    # (the model path does not exist: the refusal comes before the model load)
    assert res.stderr == (f"Error: cannot resume '{part}': its scores were written with --precision {written} but "
                          f"this run uses --precision {resumed}; resume with --precision {written}, the options of "
                          "the interrupted run\n")
    assert part.read_bytes() == before


def test_resume_with_the_same_precision_completes_the_file(cls_dir, texts, tmp_path):
    full, part = interrupted(cls_dir, texts, tmp_path, "--precision", "4")
    res = run(["classify", "-m", cls_dir, "-i", texts, "--resume", part, "--top-k", "all", "--precision", "4"])
    assert res.exit_code == 0, res.output
    assert part.read_bytes() == full.read_bytes()


def test_written_precision_reads_decimal_places(tmp_path):
    f = tmp_path / "o.jsonl"
    f.write_text('{"text": "0.1234567 in a string", "score": 0.5, "labels": [{"score": 1e-06}, {"score": 1.0}]}\n'
                 '{"score": 0.25, "n": 3}\n{"score": 0.12')  # a torn last line is not read
    assert written_precision(f) == (6, 3)  # 0.5, 1e-06, 0.25; integral values and strings do not count
    f.write_text('{"score": 1.0, "other": 0.0}\n')
    assert written_precision(f) == (None, 0)
