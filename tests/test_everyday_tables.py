"""Tables in everyday use (issue #13, item 8): no column that is empty on every row.
(The evaluate table's one-line title: tests/test_everyday_evaluate.py.)"""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from bertcli.cli.main import cli


def invoke(args):
    res = CliRunner().invoke(cli, [str(a) for a in args], prog_name="bertcli",
                             env={"BERTCLI_MODEL": None, "BERTCLI_BACKEND": None})
    assert res.exception is None or isinstance(res.exception, SystemExit), res.exc_info
    assert "Traceback" not in res.stderr
    return res


def header(stdout: str) -> list[str]:
    line = next(ln for ln in stdout.splitlines() if ln.startswith("┃"))
    return [c.strip() for c in line.split("┃")[1:-1]]


def cells(stdout: str) -> list[list[str]]:
    return [[c.strip() for c in ln.split("│")[1:-1]] for ln in stdout.splitlines() if ln.startswith("│")]


@pytest.mark.parametrize("cmd, key", [("classify", "label"), ("sentiment", "sentiment")])
def test_top_1_has_no_other_labels_column(cls_dir, cmd, key):
    args = [cmd, "good film", "awful", "-m", cls_dir, "--labels", "negative,positive"]
    res = invoke([*args, "-f", "table"])
    assert res.exit_code == 0
    assert header(res.stdout) == ["text", key, "score"]
    recs = [json.loads(x) for x in invoke([*args, "-f", "jsonl"]).stdout.splitlines()]
    assert cells(res.stdout) == [[r["text"], r[key], f"{r['score']:.4f}"] for r in recs]


def test_top_k_above_1_shows_the_other_labels(cls_dir):
    args = ["sentiment", "good film", "-m", cls_dir, "--labels", "negative,positive", "-k", "2"]
    res = invoke([*args, "-f", "table"])
    assert header(res.stdout) == ["text", "sentiment", "score", "other labels"]
    r = json.loads(invoke([*args, "-f", "jsonl"]).stdout)
    other = r["labels"][1]
    assert cells(res.stdout) == [["good film", r["sentiment"], f"{r['score']:.4f}",
                                  f"{other['label']} {other['score']:.4f}"]]


def test_a_one_label_model_has_no_other_labels_even_with_top_k_all(regression_dir, multilabel_dir):
    res = invoke(["classify", "good film", "-m", regression_dir, "-k", "all", "-f", "table"])
    assert res.exit_code == 0 and header(res.stdout) == ["text", "label", "score"]
    res = invoke(["classify", "good film", "-m", multilabel_dir, "-k", "all", "-f", "table"])
    assert header(res.stdout) == ["text", "label", "score", "other labels"]
    assert len(cells(res.stdout)[0][3].split(", ")) == 2  # the other two of three labels
