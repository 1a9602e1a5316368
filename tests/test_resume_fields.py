"""``--resume FILE`` checks the last written record against the input by the field(s) the
text(s) came from (``--field review``, ``--field sentence``, ``--field-a/--field-b``), not
only by ``id``/``text``/``text_pair``: resuming with another input is refused with one
``Error:`` line (exit 1), whatever the text field is named, for every command with
``--resume``; the same input completes the file into what an uninterrupted run writes."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from bertcli.cli.main import cli

HINT = "; is this the same input?\n"


def run(args):
    return CliRunner().invoke(cli, [str(a) for a in args])


def jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def cut(full, part, n):
    """``part``: the first ``n`` lines of ``full``, as an interrupted run leaves them."""
    part.write_text("".join(full.read_text().splitlines(keepends=True)[:n]))
    return part


def refused(res, out, n, written_key, written, input_key, wanted):
    assert res.exit_code == 1, res.output
    assert res.stderr == (f"Error: cannot resume '{out}': its record {n} has {written_key}={json.dumps(written)} "
                          f"but input record {n} has {input_key}={json.dumps(wanted)}" + HINT)
    assert "Traceback" not in res.output


# command, model fixture, extra options, text template (fill-mask needs a mask)
COMMANDS = [
    ("sentiment", "cls_dir", [], "{}"),
    ("classify", "cls_dir", [], "{}"),
    ("ner", "ner_dir", [], "{}"),
    ("fill-mask", "mlm_dir", [], "{} [MASK] here"),
]


@pytest.mark.parametrize("cmd, model, opts, tpl", COMMANDS, ids=[c[0] for c in COMMANDS])
def test_custom_field_another_input_is_refused(cmd, model, opts, tpl, request, tmp_path):
    """The tester's case: ``--field review`` JSONL, no id; another input was accepted."""
    m = request.getfixturevalue(model)
    a = jsonl(tmp_path / "rv1.jsonl", [{"review": tpl.format(t)} for t in ("great film", "awful")])
    b = jsonl(tmp_path / "rv2.jsonl", [{"review": tpl.format(t)} for t in ("boring", "lovely")])
    full = tmp_path / "full.jsonl"
    assert run([cmd, "-m", m, "-i", a, "--field", "review", "-o", full, *opts]).exit_code == 0
    part = cut(full, tmp_path / "p.jsonl", 1)
    before = part.read_bytes()
    res = run([cmd, "-m", m, "-i", b, "--field", "review", "-f", "jsonl", "--resume", part, *opts])
    refused(res, part, 1, "review", tpl.format("great film"), "review", tpl.format("boring"))
    assert part.read_bytes() == before  # nothing appended


@pytest.mark.parametrize("cmd, model, opts, tpl", COMMANDS, ids=[c[0] for c in COMMANDS])
def test_custom_field_same_input_completes_byte_for_byte(cmd, model, opts, tpl, request, tmp_path):
    m = request.getfixturevalue(model)
    src = jsonl(tmp_path / "in.jsonl", [{"n": i, "review": tpl.format(f"sentence number {i} is here")}
                                        for i in range(12)])
    full = tmp_path / "full.jsonl"
    assert run([cmd, "-m", m, "-i", src, "--field", "review", "-o", full, *opts]).exit_code == 0
    part = cut(full, tmp_path / "part.jsonl", 5)
    res = run([cmd, "-m", m, "-i", src, "--field", "review", "--resume", part, "-b", "3", *opts])
    assert res.exit_code == 0, res.output
    assert part.read_bytes() == full.read_bytes()


def test_tsv_sentence_field_another_input_is_refused(cls_dir, tmp_path):
    """The tester's TSV case (SST-2 layout: ``sentence<TAB>label``)."""
    dev, train = tmp_path / "dev.tsv", tmp_path / "train.tsv"
    dev.write_text("sentence\tlabel\nit 's a charming journey . \t1\nunflinchingly bleak \t0\n")
    train.write_text("sentence\tlabel\nhide new secretions \t0\ncontains no wit \t0\n")
    out = tmp_path / "p.jsonl"
    base = ["sentiment", "-m", cls_dir, "--input-format", "tsv", "--field", "sentence"]
    assert run([*base, "-i", dev, "-o", out]).exit_code == 0
    cut(out, out, 1)
    res = run([*base, "-i", train, "--resume", out])
    refused(res, out, 1, "sentence", "it 's a charming journey . ", "sentence", "hide new secretions ")
    # the same input completes the file
    full = tmp_path / "full.jsonl"
    assert run([*base, "-i", dev, "-o", full]).exit_code == 0
    res = run([*base, "-i", dev, "--resume", out])
    assert res.exit_code == 0, res.output
    assert out.read_bytes() == full.read_bytes()


def test_tsv_with_shared_sst2_heads(cls_dir, shared_data, tmp_path):
    """The same with the first rows of the real SST-2 dev and train files."""
    heads = {}
    for name in ("dev", "train"):
        with open(shared_data / "sst2" / f"{name}.tsv", encoding="utf-8") as f:
            heads[name] = tmp_path / f"{name}.tsv"
            heads[name].write_text("".join(next(f) for _ in range(6)))
    out = tmp_path / "p.jsonl"
    base = ["sentiment", "-m", cls_dir, "--input-format", "tsv", "--field", "sentence"]
    assert run([*base, "-i", heads["dev"], "-o", out]).exit_code == 0
    cut(out, out, 2)
    res = run([*base, "-i", heads["train"], "--resume", out])
    assert res.exit_code == 1
    assert res.stderr.startswith(f"Error: cannot resume '{out}': its record 2 has sentence=")
    assert res.stderr.endswith(HINT) and res.stderr.count("\n") == 1


def test_id_is_compared_before_the_text_field(cls_dir, tmp_path):
    a = jsonl(tmp_path / "a.jsonl", [{"id": i, "review": "same"} for i in range(3)])
    b = jsonl(tmp_path / "b.jsonl", [{"id": i + 7, "review": "same"} for i in range(3)])
    out = tmp_path / "o.jsonl"
    assert run(["classify", "-m", cls_dir, "-i", a, "--field", "review", "-o", out]).exit_code == 0
    cut(out, out, 2)
    res = run(["classify", "-m", cls_dir, "-i", b, "--field", "review", "--resume", out])
    refused(res, out, 2, "id", 1, "id", 8)


PAIRS = [
    ("nsp", "pretraining_dir", []),
    ("classify", "cls_dir", ["--pairs"]),
    ("sentiment", "cls_dir", ["--pairs"]),
]


@pytest.mark.parametrize("cmd, model, opts", PAIRS, ids=[f"{c[0]}{'-pairs' if c[2] else ''}" for c in PAIRS])
def test_pairs_fields_are_both_checked(cmd, model, opts, request, tmp_path):
    m = request.getfixturevalue(model)
    a = jsonl(tmp_path / "a.jsonl", [{"premise": f"the man eats {i}", "hypothesis": f"someone eats {i}"}
                                     for i in range(6)])
    b_rows = [{"premise": f"the man eats {i}", "hypothesis": f"nobody eats {i}"} for i in range(6)]
    b = jsonl(tmp_path / "b.jsonl", b_rows)  # same first texts, other second texts
    c = jsonl(tmp_path / "c.jsonl", [{**r, "premise": f"a dog runs {i}"} for i, r in enumerate(b_rows)])
    base = [cmd, "-m", m, *opts, "--field-a", "premise", "--field-b", "hypothesis"]
    full = tmp_path / "full.jsonl"
    assert run([*base, "-i", a, "-o", full]).exit_code == 0
    part = cut(full, tmp_path / "part.jsonl", 3)
    before = part.read_bytes()
    refused(run([*base, "-i", b, "--resume", part]), part, 3,
            "hypothesis", "someone eats 2", "hypothesis", "nobody eats 2")
    refused(run([*base, "-i", c, "--resume", part]), part, 3, "premise", "the man eats 2", "premise", "a dog runs 2")
    assert part.read_bytes() == before
    res = run([*base, "-i", a, "--resume", part, "-b", "2"])
    assert res.exit_code == 0, res.output
    assert part.read_bytes() == full.read_bytes()


def test_field_renamed_by_a_result_key_is_compared_under_its_written_name(cls_dir, tmp_path):
    """``--field label`` with classify: the input ``label`` is written as ``input_label``."""
    a = jsonl(tmp_path / "a.jsonl", [{"label": f"good movie {i}"} for i in range(6)])
    b = jsonl(tmp_path / "b.jsonl", [{"label": f"bad movie {i}"} for i in range(6)])
    full = tmp_path / "full.jsonl"
    base = ["classify", "-m", cls_dir, "--field", "label", "-q"]
    assert run([*base, "-i", a, "-o", full]).exit_code == 0
    assert "input_label" in json.loads(full.read_text().splitlines()[0])
    part = cut(full, tmp_path / "part.jsonl", 4)
    refused(run([*base, "-i", b, "--resume", part]), part, 4, "input_label", "good movie 3", "label", "bad movie 3")
    res = run([*base, "-i", a, "--resume", part])
    assert res.exit_code == 0, res.output
    assert part.read_bytes() == full.read_bytes()


def test_written_record_without_the_field_is_refused(cls_dir, tmp_path):
    """A file written from plain text (a ``text`` key) is not continued from ``--field review``."""
    txt = tmp_path / "in.txt"
    txt.write_text("great film\nawful\n")
    out = tmp_path / "o.jsonl"
    assert run(["classify", "-m", cls_dir, "-i", txt, "-o", out]).exit_code == 0
    cut(out, out, 1)
    rv = jsonl(tmp_path / "rv.jsonl", [{"review": "great film"}, {"review": "awful"}])
    res = run(["classify", "-m", cls_dir, "-i", rv, "--field", "review", "--resume", out])
    assert res.exit_code == 1
    assert res.stderr == (f"Error: cannot resume '{out}': its record 1 has no review but input record 1 has "
                          f'review="great film"' + HINT)


def test_default_text_field_message_unchanged(cls_dir, tmp_path):
    a, b = tmp_path / "a.txt", tmp_path / "b.txt"
    a.write_text("one\ntwo\nthree\n")
    b.write_text("one\nzwei\ndrei\n")
    out = tmp_path / "o.jsonl"
    assert run(["classify", "-m", cls_dir, "-i", a, "-o", out]).exit_code == 0
    cut(out, out, 2)
    refused(run(["classify", "-m", cls_dir, "-i", b, "--resume", out]), out, 2, "text", "two", "text", "zwei")


def test_field_renamed_past_an_existing_input_name_resumes_the_same_input(cls_dir, tmp_path):
    """Input with both ``label`` and ``input_label``: the text field ``label`` is written as
    ``input_input_label``; resuming the same input must find it there (it was refused)."""
    recs = [{"label": f"good movie {i}", "input_label": f"gold {i}"} for i in range(6)]
    a = jsonl(tmp_path / "a.jsonl", recs)
    b = jsonl(tmp_path / "b.jsonl", [dict(r, label=f"bad movie {i}") for i, r in enumerate(recs)])
    full = tmp_path / "full.jsonl"
    base = ["classify", "-m", cls_dir, "--field", "label", "-q"]
    assert run([*base, "-i", a, "-o", full]).exit_code == 0
    first = json.loads(full.read_text().splitlines()[0])
    assert (first["input_label"], first["input_input_label"]) == ("gold 0", "good movie 0")
    part = cut(full, tmp_path / "part.jsonl", 4)
    res = run([*base, "-i", a, "--resume", part])
    assert res.exit_code == 0, res.output
    assert part.read_bytes() == full.read_bytes()
    part = cut(full, tmp_path / "part2.jsonl", 4)
    refused(run([*base, "-i", b, "--resume", part]), part, 4, "input_input_label", "good movie 3", "label",
            "bad movie 3")


@pytest.mark.parametrize("cmd, model, args", [
    ("classify", "cls_dir", ["x"]), ("sentiment", "cls_dir", ["x"]), ("ner", "ner_dir", ["Paris"]),
    ("fill-mask", "mlm_dir", ["a [MASK] b"]), ("nsp", "pretraining_dir", ["A", "B"]),
])
def test_declared_result_keys_are_what_each_command_writes(request, cmd, model, args):
    """--resume predicts renamed input fields from RESULT_KEYS: it must be exactly what is written."""
    from bertcli.cli.run import RESULT_KEYS

    res = run([cmd, *args, "-m", request.getfixturevalue(model), "-f", "jsonl"])
    assert res.exit_code == 0, res.output
    rec = json.loads(res.stdout.splitlines()[0])
    assert tuple(k for k in rec if k not in ("text", "text_pair")) == RESULT_KEYS[cmd]
