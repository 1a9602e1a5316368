"""Bad input through every command and both --on-error modes: the CLI contract, record by record.

The corpus is generated into tmp_path by ``tests/badinput/make_corpus.py`` (one file per
fault class; see its docstring). For each command, file and mode the test derives from the
file's expectations the exact stdout, stderr and exit status (README, "stdout, stderr and
exit codes"):

* every good record before the first bad one (with ``--on-error skip``: every good record
  but those after a fatal one) gives exactly one output line, in order, byte-identical to
  the line it gives when run alone;
* ``fail``: the first bad record ends the run: ``Error: <file>, line N: <why>`` (one line),
  exit 1; ``skip``: one JSON error line per bad record on stderr, exit 0; a fatal record
  (an unclosed CSV quote, a broken JSON array) or a refused header ends both with exit 1;
* never a traceback.

Runs in-process (CliRunner keeps stdout and stderr apart), with torch on one thread:
on a busy 2-core machine that makes a tiny-model run ~20x faster. A few subprocess runs
check real exit statuses.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from badinput.make_corpus import NO_MASK, cases, write
from bertcli.cli.main import cli

# command -> (model fixture, corpus profile)
COMMANDS = {
    "fill-mask": ("mlm_dir", "mask"),
    "nsp": ("pretraining_dir", "pair"),
    "classify": ("cls_dir", "single"),
    "sentiment": ("cls_dir", "single"),
    "ner": ("ner_dir", "single"),
}
CASE_NAMES = [c.name for c in cases("single")]
assert CASE_NAMES == [c.name for c in cases("mask")] == [c.name for c in cases("pair")]
TRUNCATED = ("Warning: line {}: text longer than the model's maximum was truncated "
             "(records carry truncated: true; further warnings suppressed)")
SKIPPED = "Warning: skipped {} bad record(s) (reported above as JSON on stderr)"


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """profile -> case name -> (Case, path), written by the generator."""
    root = tmp_path_factory.mktemp("badinput")
    return {p: {c.name: (c, path) for c, path in write(root / p, p)} for p in ("single", "mask", "pair")}


def invoke(args, input=None):
    """The CLI in-process; anything but a clean exit would be a traceback for the user."""
    res = CliRunner().invoke(cli, [str(a) for a in args], input=input, env={"BERTCLI_MODEL": None, "BERTCLI_BACKEND": None},
                             prog_name="bertcli")
    assert res.exception is None or isinstance(res.exception, SystemExit), res.exc_info
    assert "Traceback" not in res.stderr
    return res


_ALONE: dict = {}


def alone(cmd: str, model, fields: dict) -> str:
    """The output line of one record run on its own (as a one-line JSONL input)."""
    key = (cmd, json.dumps(fields, ensure_ascii=False))
    if key not in _ALONE:
        res = invoke([cmd, "-m", model, "-i", "-", "--input-format", "jsonl", "-f", "jsonl"],
                     input=json.dumps(fields, ensure_ascii=False) + "\n")
        assert res.exit_code == 0, res.stderr
        assert res.stdout.count("\n") == 1 and res.stdout.endswith("\n")
        _ALONE[key] = res.stdout
    return _ALONE[key]


def expected_run(case, path, cmd, model, mode, source=None):
    """(stdout, stderr, exit status) that the case's expectations imply."""
    source = source or str(path)
    out, err, skipped = [], [], 0
    warned = False
    for e in case.expect:
        bad = e.kind != "ok"
        if e.kind == "ok" and e.message is None:
            line = alone(cmd, model, e.fields)
            out.append(line)
            if json.loads(line).get("truncated") and not warned:
                warned = True
                err.append(TRUNCATED.format(e.line))
            continue
        assert bad
        if mode == "fail" or e.kind in ("fatal", "header"):
            err.append(f"Error: {source}, line {e.line}: {e.message}")
            return "".join(out), "".join(x + "\n" for x in err), 1
        skipped += 1
        err.append(json.dumps({"error": e.message, "line": e.line, "source": source}, ensure_ascii=False))
    if skipped:
        err.append(SKIPPED.format(skipped))
    return "".join(out), "".join(x + "\n" for x in err), 0


@pytest.fixture(params=list(COMMANDS))
def cmd(request):
    return request.param


@pytest.fixture
def model(cmd, request):
    return request.getfixturevalue(COMMANDS[cmd][0])


@pytest.mark.parametrize("mode", ["fail", "skip"])
@pytest.mark.parametrize("name", CASE_NAMES)
def test_corpus_file(cmd, model, corpus, name, mode):
    case, path = corpus[COMMANDS[cmd][1]][name]
    args = [cmd, "-m", model, "-i", path, "-f", "jsonl", "--on-error", mode]
    if case.input_format:
        args += ["--input-format", case.input_format]
    res = invoke(args)
    want_out, want_err, want_code = expected_run(case, path, cmd, model, mode)
    assert res.stdout == want_out
    assert res.stderr == want_err
    assert res.exit_code == want_code


def _stdin_cases():
    # content sniffing on stdin sees a first line starting with "{" as JSONL, else text
    keep = []
    for c in cases("single"):
        first = c.data.lstrip(b"\xef\xbb\xbf").split(b"\n", 1)[0]
        if c.name.endswith(".txt") and not first.startswith(b"{") or \
                c.name.endswith(".jsonl") and first.startswith(b"{"):
            keep.append(c.name)
    return keep


@pytest.mark.parametrize("name", _stdin_cases())
def test_corpus_through_stdin(corpus, cls_dir, name):
    # the same contract when the records come from a pipe ("<stdin>"), format sniffed
    case, path = corpus["single"][name]
    res = invoke(["classify", "-m", cls_dir, "-f", "jsonl", "--on-error", "skip"], input=case.data)
    want_out, want_err, want_code = expected_run(case, path, "classify", cls_dir, "skip", source="<stdin>")
    assert (res.stdout, res.stderr, res.exit_code) == (want_out, want_err, want_code)


def test_corpus_has_every_fault_class():
    faults = {c.fault for c in cases("single")}
    for f in ("malformed JSON line", "JSON that is not an object", "missing field",
              "null/number/list instead of a string", "invalid UTF-8 bytes", "a UTF-8 BOM", "CRLF line ends",
              "NUL and other control characters", "zero-width and bidi characters", "emoji and CJK",
              "a 100,000-character line", "an empty file", "a file of only blank lines", "no trailing newline",
              "a CSV with a ragged row", "a TSV with quotes (no quoting: literal)",
              "a CSV with an unterminated quote", "a JSON array of objects"):
        assert f in faults, f
    # the command-level verdicts differ by profile: a blank text line is a record for
    # classify, a bad record for fill-mask (no mask), and no record for nsp (no pair: skipped,
    # as a blank JSONL line is)
    by = {p: {c.name: c for c in cases(p)} for p in ("single", "mask", "pair")}
    assert [e.kind for e in by["single"]["blank-lines.txt"].expect] == ["ok"] * 3
    assert [e.message for e in by["mask"]["blank-lines.txt"].expect] == [NO_MASK] * 3
    assert by["pair"]["blank-lines.txt"].expect == []


# ---------------------------------------------------------------- arguments and usage errors

def test_argument_that_is_not_utf8_is_a_bad_record(cls_dir):
    # Python hands undecodable argv bytes over as lone surrogates (surrogateescape)
    bad = b"bad \xff text".decode("utf-8", "surrogateescape")
    res = invoke(["classify", "-m", cls_dir, "fine [MASK]", bad, "also fine", "-f", "jsonl"])
    assert res.exit_code == 1
    assert res.stderr == "Error: arguments, text 2: invalid UTF-8 in the text\n"
    assert res.stdout == alone("classify", cls_dir, {"text": "fine [MASK]"})
    res = invoke(["classify", "-m", cls_dir, "fine [MASK]", bad, "also fine", "-f", "jsonl", "--on-error", "skip"])
    assert res.exit_code == 0
    assert res.stdout == alone("classify", cls_dir, {"text": "fine [MASK]"}) + \
        alone("classify", cls_dir, {"text": "also fine"})
    assert res.stderr == ('{"error": "invalid UTF-8 in the text", "text": 2, "source": "arguments"}\n'
                          + SKIPPED.format(1) + "\n")


@pytest.mark.parametrize("args, message", [
    (["x", "-i", "{input}"], "Error: give texts as arguments or --input, not both"),
    (["-i", "{input}", "-o", "{input}"],
     "Error: the output file '{input}' is the input file; write the results to another file"),
])
def test_usage_errors_exit_2_for_every_command(cmd, model, tmp_path, args, message):
    f = tmp_path / "in.jsonl"
    f.write_text('{"text": "a [MASK]", "text_pair": "b"}\n', encoding="utf-8")
    res = invoke([cmd, "-m", model, *[a.format(input=f) for a in args]])
    assert res.exit_code == 2
    assert res.stdout == ""
    assert res.stderr == message.format(input=f) + "\n"
    assert f.read_text(encoding="utf-8") == '{"text": "a [MASK]", "text_pair": "b"}\n'
    # Click's own usage errors: exit 2 as well
    res = invoke([cmd, "-m", model, "x", "y", "--on-error", "ignore"])
    assert res.exit_code == 2 and res.stdout == ""
    assert res.stderr.splitlines()[-1] == ("Error: Invalid value for '--on-error': 'ignore' is not one of "
                                           "'fail', 'skip'.")


@pytest.mark.parametrize("cmd_args, message", [
    (["nsp", "A", "B", "C"], "Error: pairs need an even number of texts, got 3; "
                             "give TEXT_A TEXT_B (or use --input with two fields)"),
    (["ner", "Paris", "--stride", "500"], "Error: stride must be an integer from 0 to 125 (the model takes 128 "
                                          "tokens, 2 of them special), got 500; use a stride below 126, e.g. 32"),
    (["classify", "x", "--labels", "a,b,c"], "Error: --labels gives 3 names but the model has 2 outputs"),
    (["fill-mask", "a [MASK]", "--targets", ","], "Error: --targets is empty"),
])
def test_option_values_the_model_refuses_are_usage_errors(request, cmd_args, message):
    model = request.getfixturevalue(COMMANDS[cmd_args[0]][0])
    res = invoke([*cmd_args, "-m", model])
    assert (res.exit_code, res.stdout, res.stderr) == (2, "", message + "\n")


# ---------------------------------------------------------------- real processes

def _bertcli(*args, input: bytes | None = None):
    env = {k: v for k, v in os.environ.items() if k not in ("BERTCLI_MODEL", "BERTCLI_BACKEND")}
    env["OMP_NUM_THREADS"] = "1"
    return subprocess.run([sys.executable, "-m", "bertcli", *args], input=input, capture_output=True, env=env,
                          timeout=300)


def test_exit_statuses_of_real_processes(corpus, cls_dir, pretraining_dir):
    case, path = corpus["single"]["unterminated-quote.csv"]
    # a fatal record stops even --on-error skip: exit 1, the rows before it written
    p = _bertcli("classify", "-m", str(cls_dir), "-i", str(path), "--on-error", "skip")
    assert p.returncode == 1
    assert p.stdout.decode() == "".join(alone("classify", cls_dir, e.fields) for e in case.expect[:2])
    assert p.stderr.decode() == f"Error: {path}, line 4: {case.expect[2].message}\n"
    # skip over a bad record: exit 0, every good record out; a bad argv byte is a bad record too
    p = _bertcli("classify", "-m", str(cls_dir), "ok [MASK]", b"caf\xe9", "--on-error", "skip")
    assert p.returncode == 0
    assert p.stdout.decode() == alone("classify", cls_dir, {"text": "ok [MASK]"})
    assert p.stderr.decode().splitlines() == [
        '{"error": "invalid UTF-8 in the text", "text": 2, "source": "arguments"}', SKIPPED.format(1)]
    # a usage error: exit 2, nothing on stdout
    p = _bertcli("nsp", "-m", str(pretraining_dir), "A", "B", "C")
    assert p.returncode == 2 and p.stdout == b""
    assert p.stderr.decode().count("\n") == 1 and p.stderr.startswith(b"Error: pairs need an even number")
