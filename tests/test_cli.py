"""The CLI contract: stdout (results only), stderr (messages) and exit codes, asserted separately.

Click >= 8.2's ``CliRunner()`` keeps ``result.stdout`` and ``result.stderr`` apart. Expected
records are computed with bertcli's Python API on the same tiny checkpoints (whose parity
with transformers is tested in test_parity.py), rounded as the writer rounds them.
A few subprocess tests cover what the runner cannot: import cost of --help, a closed
pipe, and SIGINT.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from click.testing import CliRunner

from bertcli.cli.main import cli
from bertcli.io.writers import round_floats

COMMANDS = ["fill-mask", "classify", "sentiment", "nsp"]
MODEL_FIXTURE = {"fill-mask": "mlm_dir", "classify": "cls_dir", "sentiment": "cls_dir", "nsp": "pretraining_dir"}
TASK = {"fill-mask": "fill-mask", "classify": "classify", "sentiment": "classify", "nsp": "nsp"}
# texts with commas, quotes and non-ASCII so that CSV quoting and UTF-8 are exercised
TEXTS = {
    "fill-mask": ["The capital of France is [MASK].", 'Café Müller, in [MASK], serves "crème brûlée".',
                  "[MASK] and [MASK] 😀"],
    "classify": ["I loved this movie, it was wonderful.", 'The food was "terrible".', "東京 は 日本 の 首都 です"],
}
TEXTS["sentiment"] = TEXTS["classify"]
PAIRS = [("He opened the fridge.", "It was empty."), ("The capital, Paris.", 'She said "no".'),
         ("Zürich 😀", "東京")]


# ---------------------------------------------------------------- helpers

def invoke(args, input=None, env=None):
    """Run the CLI in-process; an exception other than SystemExit would be a user-facing traceback."""
    full_env = {"BERTCLI_MODEL": None, "COLUMNS": "200"}
    full_env.update(env or {})
    res = CliRunner().invoke(cli, [str(a) for a in args], input=input, env=full_env, prog_name="bertcli")
    assert res.exception is None or isinstance(res.exception, SystemExit), res.exc_info
    assert "Traceback" not in res.stderr
    return res


def jsonl(stdout: str) -> list[dict]:
    assert stdout == "" or stdout.endswith("\n")
    lines = stdout.splitlines()
    assert all(lines), "blank line in JSONL output"
    return [json.loads(line) for line in lines]


def assert_close(got, want, tol=2e-6):
    """Same structure and keys in the same order; floats within tol (the writer rounds to 1e-6)."""
    if isinstance(want, float):
        assert isinstance(got, (float, int)) and not isinstance(got, bool)
        assert got == pytest.approx(want, abs=tol)
    elif isinstance(want, dict):
        assert list(got) == list(want)
        for k in want:
            assert_close(got[k], want[k], tol)
    elif isinstance(want, list):
        assert isinstance(got, list) and len(got) == len(want)
        for a, b in zip(got, want):
            assert_close(a, b, tol)
    else:
        assert got == want


_LM: dict = {}


def api_results(cmd, model_dir, texts=None, pairs=None, **kw):
    """Results of bertcli's Python API for ``cmd`` (no input fields), rounded like the writer."""
    from bertcli.loading import load_model
    from bertcli.tasks import classify as cl
    from bertcli.tasks import fill_mask as fm
    from bertcli.tasks import nsp as ns

    key = (str(model_dir), TASK[cmd])
    if key not in _LM:
        _LM[key] = load_model(model_dir, TASK[cmd], device="cpu")
    lm = _LM[key]
    if cmd == "fill-mask":
        out = fm.fill_mask(lm, texts, top_k=kw.get("top_k", 5))
    elif cmd == "nsp":
        out = ns.nsp(lm, [a for a, _ in pairs], [b for _, b in pairs])
    else:
        out = cl.classify(lm, texts, [b for _, b in pairs] if pairs else None, top_k=kw.get("top_k", 1))
        if cmd == "sentiment":
            names = cl.label_names(lm.config)
            out = [cl.sentiment_fields(r, names) for r in out]
            out = [{"sentiment": r.pop("sentiment"), **r} for r in out]
            # hand check of the normalisation for this model's labels
            assert all(r["sentiment"] == r["label"].lower() for r in out)
    return [round_floats(r, 6) for r in out]


def expected_records(cmd, model_dir, fields: list[dict]) -> list[dict]:
    """Output records: each input's fields, then the results beside them."""
    if cmd == "nsp":
        res = api_results(cmd, model_dir, pairs=[(f["text"], f["text_pair"]) for f in fields])
    else:
        res = api_results(cmd, model_dir, texts=[f["text"] for f in fields])
    return [{**f, **r} for f, r in zip(fields, res)]


def records_of(cmd):
    if cmd == "nsp":
        return [{"text": a, "text_pair": b} for a, b in PAIRS]
    return [{"text": t} for t in TEXTS[cmd]]


def args_of(cmd):
    if cmd == "nsp":
        return [x for p in PAIRS for x in p]
    return TEXTS[cmd]


@pytest.fixture(params=COMMANDS)
def cmd(request):
    return request.param


@pytest.fixture
def model(cmd, request):
    return request.getfixturevalue(MODEL_FIXTURE[cmd])


# ---------------------------------------------------------------- inputs and formats

def test_texts_as_arguments(cmd, model):
    res = invoke([cmd, *args_of(cmd), "-m", model, "-f", "jsonl"])
    assert res.exit_code == 0
    assert res.stderr == ""
    assert_close(jsonl(res.stdout), expected_records(cmd, model, records_of(cmd)))


def _write_input(path: Path, fmt: str, recs: list[dict]) -> list[dict]:
    """Write ``recs`` (with an ``id``) as ``fmt``; return the fields each output record must echo."""
    keys = ["id", *recs[0]]
    rows = [{"id": i, **r} for i, r in enumerate(recs)]
    if fmt == "text":
        path.write_text("".join("\t".join(r.values()) + "\n" for r in recs), encoding="utf-8")
        return recs
    if fmt == "jsonl":
        path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
        return rows
    buf = io.StringIO()
    if fmt == "csv":
        w = csv.writer(buf, lineterminator="\r\n")
        w.writerow(keys)
        w.writerows([[str(r[k]) for k in keys] for r in rows])
    else:  # tsv: no quoting at all
        buf.write("\t".join(keys) + "\n" + "".join("\t".join(str(r[k]) for k in keys) + "\n" for r in rows))
    path.write_bytes(b"\xef\xbb\xbf" + buf.getvalue().encode("utf-8"))  # with a BOM, as GLUE's MRPC
    return [{k: str(r[k]) for k in keys} for r in rows]


@pytest.mark.parametrize("fmt", ["text", "jsonl", "csv", "tsv"])
def test_input_file_formats_keep_fields(cmd, model, tmp_path, fmt):
    path = tmp_path / f"in.{'txt' if fmt == 'text' else fmt}"
    echoed = _write_input(path, fmt, records_of(cmd))
    res = invoke([cmd, "--input", path, "-m", model])  # format by extension; jsonl is the pipe default
    assert res.exit_code == 0
    assert res.stderr == ""
    assert_close(jsonl(res.stdout), expected_records(cmd, model, echoed))


def test_stdin_lines_one_output_per_record_in_order(cmd, model):
    recs = records_of(cmd) * 4  # 12 records, some repeated: order must still hold
    data = "".join("\t".join(r.values()) + "\n" for r in recs)
    res = invoke([cmd, "-m", model, "-b", "2", "--window", "5"], input=data.encode("utf-8"))
    assert res.exit_code == 0
    assert res.stderr == ""
    assert_close(jsonl(res.stdout), expected_records(cmd, model, recs))


def test_json_array_format(cmd, model):
    res = invoke([cmd, *args_of(cmd), "-m", model, "-f", "json"])
    assert res.exit_code == 0 and res.stderr == ""
    assert res.stdout.startswith("[\n") and res.stdout.endswith("\n]\n")
    assert_close(json.loads(res.stdout), expected_records(cmd, model, records_of(cmd)))
    empty = invoke([cmd, "-m", model, "-f", "json"], input=b"")
    assert (empty.exit_code, empty.stdout, empty.stderr) == (0, "[]\n", "")


def _short(text: str, n: int) -> str:
    """The table's cut of long cells: n - 1 characters and an ellipsis."""
    return text if len(text) <= n else text[: n - 1] + "…"


def _table_cells(stdout: str) -> list[list[str]]:
    return [[c.strip() for c in line.split("│")[1:-1]] for line in stdout.splitlines() if line.startswith("│")]


def test_table_format(cmd, model):
    res = invoke([cmd, *args_of(cmd), "-m", model, "-f", "table"])
    assert res.exit_code == 0 and res.stderr == ""
    exp = expected_records(cmd, model, records_of(cmd))
    cells = _table_cells(res.stdout)
    if cmd == "fill-mask":
        want = [[_short(r["text"], 40) if (m, k) == (0, 0) else "", str(m + 1) if k == 0 else "", p["token_str"],
                 f"{p['score']:.4f}", _short(p["sequence"], 60)]
                for r in exp for m, preds in enumerate(r["predictions"]) for k, p in enumerate(preds)]
    elif cmd == "nsp":
        want = [[r["text"], r["text_pair"], "yes" if r["is_next"] else "no", f"{r['score']:.4f}"] for r in exp]
    else:
        key = "sentiment" if cmd == "sentiment" else "label"
        want = [[r["text"], r[key], f"{r['score']:.4f}"] for r in exp]  # --top-k 1: no "other labels" column
    assert cells == want


def test_table_prints_user_text_literally_not_as_rich_markup(cls_dir):
    # found by this test: '[/x]' raised rich's MarkupError (a traceback), '[bold]' vanished
    texts = ["[/x] closing tag", "[bold]b[/bold] :smile:"]
    res = invoke(["classify", *texts, "-m", cls_dir, "-f", "table"])
    assert res.exit_code == 0 and res.stderr == ""
    assert [row[0] for row in _table_cells(res.stdout)] == texts


def test_classify_pairs_from_arguments_and_jsonl(cls_dir):
    pairs = PAIRS[:2]
    want = [{"text": a, "text_pair": b, **r}
            for (a, b), r in zip(pairs, api_results("classify", cls_dir, [a for a, _ in pairs], pairs, top_k=None))]
    # --text-pair pairs one second text with every argument
    res = invoke(["classify", pairs[0][0], "--text-pair", pairs[0][1], "-m", cls_dir, "--top-k", "all"])
    assert res.exit_code == 0 and res.stderr == ""
    assert_close(jsonl(res.stdout), want[:1])
    data = "".join(json.dumps({"text": a, "text_pair": b}) + "\n" for a, b in pairs)
    res = invoke(["classify", "-m", cls_dir, "--top-k", "all", "--pairs"], input=data)
    assert res.exit_code == 0 and res.stderr == ""
    assert_close(jsonl(res.stdout), want)


def test_explicit_input_format_and_field_override_the_extension(cls_dir, tmp_path):
    path = tmp_path / "reviews.txt"  # .txt would mean plain text
    path.write_text("id\treview\n1\tI loved it\n2\tawful, just awful\n", encoding="utf-8")
    res = invoke(["classify", "-i", path, "--input-format", "tsv", "--field", "review", "-m", cls_dir])
    assert res.exit_code == 0 and res.stderr == ""
    res_api = api_results("classify", cls_dir, ["I loved it", "awful, just awful"])
    assert_close(jsonl(res.stdout), [{"id": "1", "review": "I loved it", **res_api[0]},
                                     {"id": "2", "review": "awful, just awful", **res_api[1]}])
    # the same file read as text: the header is a record like any line
    res = invoke(["classify", "-i", path, "-m", cls_dir])
    assert [r["text"] for r in jsonl(res.stdout)] == ["id\treview", "1\tI loved it", "2\tawful, just awful"]


@pytest.mark.parametrize("name, field_a, field_b", [("rte/dev.tsv", "sentence1", "sentence2"),
                                                    ("mrpc/dev.tsv", "#1 String", "#2 String")])
def test_nsp_on_glue_pair_files(pretraining_dir, shared_data, name, field_a, field_b):
    # real GLUE TSVs: unquoted, MRPC with a BOM before its header; one output row per data row
    path = shared_data / name
    lines = path.read_text(encoding="utf-8-sig").splitlines()
    header = lines[0].split("\t")
    rows = [dict(zip(header, line.split("\t"))) for line in lines[1:]]
    res = invoke(["nsp", "-i", path, "--field-a", field_a, "--field-b", field_b, "-m", pretraining_dir])
    assert res.exit_code == 0
    got = jsonl(res.stdout)
    assert len(got) == len(rows) > 200
    want = api_results("nsp", pretraining_dir, pairs=[(r[field_a], r[field_b]) for r in rows])
    assert_close(got, [{**r, **w} for r, w in zip(rows, want)])
    # pairs longer than the tiny model's 128 tokens: one warning, naming the first one's line
    first = next(i for i, w in enumerate(want) if w["truncated"])
    assert res.stderr == (f"Warning: line {first + 2}: text longer than the model's maximum was truncated "
                          "(records carry truncated: true; further warnings suppressed)\n")


def test_collision_renames_input_key_to_input_key(cls_dir):
    rec = {"text": "I loved it", "label": "gold", "score": 3, "id": "a"}
    res = invoke(["classify", "-m", cls_dir], input=json.dumps(rec) + "\n")
    assert res.exit_code == 0
    r = api_results("classify", cls_dir, ["I loved it"])[0]
    want = {"text": "I loved it", "id": "a", "input_label": "gold", "input_score": 3, **r}
    assert_close(jsonl(res.stdout), [want])
    assert res.stderr == ("Warning: input field(s) label, score renamed to input_<name>: "
                          "the result uses the same key\n")
    quiet = invoke(["classify", "-m", cls_dir, "-q"], input=json.dumps(rec) + "\n")
    assert quiet.stderr == "" and quiet.stdout == res.stdout


# ---------------------------------------------------------------- bad input records

def _bad_jsonl(cmd, path: Path) -> list[dict]:
    """5 lines, line 3 malformed; returns the 4 good records' fields."""
    good = (records_of(cmd) * 2)[:4]
    lines = [json.dumps(r, ensure_ascii=False) for r in good]
    lines.insert(2, '{"text": bad')
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return good


def test_bad_record_fails_after_earlier_results(cmd, model, tmp_path):
    path = tmp_path / "in.jsonl"
    good = _bad_jsonl(cmd, path)
    res = invoke([cmd, "-i", path, "-m", model])
    assert res.exit_code == 1
    assert res.stderr == f"Error: {path}, line 3: malformed JSON: Expecting value at column 10\n"
    assert_close(jsonl(res.stdout), expected_records(cmd, model, good[:2]))


def test_bad_record_fails_json_array_still_closed(cls_dir, tmp_path):
    path = tmp_path / "in.jsonl"
    good = _bad_jsonl("classify", path)
    res = invoke(["classify", "-i", path, "-m", cls_dir, "-f", "json"])
    assert res.exit_code == 1
    assert res.stderr == f"Error: {path}, line 3: malformed JSON: Expecting value at column 10\n"
    assert_close(json.loads(res.stdout), expected_records("classify", cls_dir, good[:2]))


def test_on_error_skip_reports_json_and_goes_on(cmd, model, tmp_path):
    path = tmp_path / "in.jsonl"
    good = _bad_jsonl(cmd, path)
    res = invoke([cmd, "-i", path, "-m", model, "--on-error", "skip"])
    assert res.exit_code == 0
    assert_close(jsonl(res.stdout), expected_records(cmd, model, good))
    err = res.stderr.splitlines()
    assert json.loads(err[0]) == {"error": "malformed JSON: Expecting value at column 10", "line": 3,
                                  "source": str(path)}
    assert err[1:] == ["Warning: skipped 1 bad record(s) (reported above as JSON on stderr)"]


def test_missing_input_file_reported_before_the_model_is_loaded(tmp_path):
    # the model folder does not exist either: the input error, seen without loading, wins
    msg = _one_line_error(invoke(["classify", "-i", tmp_path / "nope.txt", "-m", tmp_path / "no-model"]))
    assert msg == f"Error: input file '{tmp_path / 'nope.txt'}' does not exist"


def test_csv_header_without_the_field(cls_dir, tmp_path):
    path = tmp_path / "in.csv"
    path.write_text("review,label\ngood,1\n", encoding="utf-8")
    msg = _one_line_error(invoke(["classify", "-i", path, "-m", cls_dir]))
    assert msg == f"Error: {path}, line 1: no column 'text' in the header (review, label); choose one with --field"


def test_nsp_odd_number_of_arguments(pretraining_dir):
    # a wrong command line: a usage error (exit 2), found before the model is loaded
    msg = _one_line_error(invoke(["nsp", "A", "B", "C", "-m", "/no/such/model"]), code=2)
    assert msg == ("Error: pairs need an even number of texts, got 3; "
                   "give TEXT_A TEXT_B (or use --input with two fields)")


def test_classify_labels_override_and_precision(cls_dir):
    msg = _one_line_error(invoke(["classify", "x", "-m", cls_dir, "--labels", "a,b,c"]), code=2)
    assert msg == "Error: --labels gives 3 names but the model has 2 outputs"
    res = invoke(["classify", "I loved it", "-m", cls_dir, "--labels", "neg,pos", "--top-k", "all",
                  "--precision", "2"])
    assert res.exit_code == 0 and res.stderr == ""
    api = api_results("classify", cls_dir, ["I loved it"], top_k=None)[0]
    rename = {"NEGATIVE": "neg", "POSITIVE": "pos"}
    labels = [{"label": rename[d["label"]], "score": round(d["score"], 2)} for d in api["labels"]]
    assert jsonl(res.stdout) == [{"text": "I loved it", "label": labels[0]["label"], "score": labels[0]["score"],
                                  "labels": labels, "truncated": False}]


def test_fill_mask_text_without_mask_names_the_line(mlm_dir, tmp_path):
    path = tmp_path / "in.txt"
    path.write_text("The capital of France is [MASK].\nno mask here\nA [MASK].\n", encoding="utf-8")
    res = invoke(["fill-mask", "-i", path, "-m", mlm_dir, "-k", "2"])
    assert res.exit_code == 1
    assert res.stderr == f"Error: {path}, line 2: no [MASK] in the text (write the mask exactly as [MASK])\n"
    first = TEXTS["fill-mask"][0]
    assert_close(jsonl(res.stdout), [{"text": first, **api_results("fill-mask", mlm_dir, [first], top_k=2)[0]}])
    # arguments have no line: the message names the text's position
    res = invoke(["fill-mask", "A [MASK].", "no mask", "-m", mlm_dir])
    assert res.exit_code == 1
    assert res.stderr == "Error: arguments, text 2: no [MASK] in the text (write the mask exactly as [MASK])\n"
    assert len(jsonl(res.stdout)) == 1


def test_fill_mask_targets_not_in_vocabulary(mlm_dir):
    # 'Ωζ' has characters the tiny vocabulary lacks: one [UNK]
    # an option value the model cannot take: a usage error
    res = invoke(["fill-mask", "A [MASK].", "-m", mlm_dir, "--targets", "Paris,Ωζ"])
    assert res.exit_code == 2 and res.stdout == ""
    assert res.stderr == ("Error: target(s) not a single vocabulary token: 'Ωζ' -> [UNK]; "
                          "fill-mask predicts one token per mask; choose whole-token targets\n")
    # a word that is several pieces is refused too, naming its pieces
    res = invoke(["fill-mask", "A [MASK].", "-m", mlm_dir, "--targets", "unbelievable"])
    assert res.exit_code == 2 and res.stdout == ""
    assert re.fullmatch(r"Error: target\(s\) not a single vocabulary token: 'unbelievable' -> \S+( ##\S+)+; "
                        r"fill-mask predicts one token per mask; choose whole-token targets\n", res.stderr)
    ok = invoke(["fill-mask", "A [MASK].", "-m", mlm_dir, "--targets", "Paris,Berlin"])
    assert ok.exit_code == 0
    assert {p["token_str"] for p in jsonl(ok.stdout)[0]["predictions"][0]} == {"Paris", "Berlin"}


def test_usage_error_is_exit_2(cls_dir):
    res = invoke(["classify", "x", "-m", cls_dir, "--format", "xml"])
    assert res.exit_code == 2 and res.stdout == ""
    assert res.stderr.splitlines()[-1] == ("Error: Invalid value for '-f' / '--format': "
                                           "'xml' is not one of 'table', 'jsonl', 'json'.")


# ---------------------------------------------------------------- model folder errors

def _one_line_error(res, code: int = 1) -> str:
    assert res.exit_code == code
    assert res.stdout == ""
    assert res.stderr.endswith("\n") and res.stderr.count("\n") == 1, res.stderr
    assert res.stderr.startswith("Error: ")
    return res.stderr[:-1]


def test_missing_model_folder(tmp_path):
    missing = tmp_path / "nope"
    msg = _one_line_error(invoke(["classify", "x", "-m", missing]))
    assert msg == f"Error: model folder '{missing}' does not exist; pass --model DIR with a local Hugging Face model folder"


def test_missing_relative_model_folder_is_named_by_its_absolute_path(tmp_path, monkeypatch):
    # `-m ./nope` used to be echoed as 'nope' (Path drops the './'): the absolute path says where it looked
    monkeypatch.chdir(tmp_path)
    msg = _one_line_error(invoke(["classify", "x", "-m", "./nope"]))
    assert msg.startswith(f"Error: model folder '{tmp_path / 'nope'}' does not exist;")


def test_folder_without_config(cls_dir, tmp_path):
    for f in cls_dir.iterdir():
        if f.name != "config.json":
            shutil.copy(f, tmp_path / f.name)
    msg = _one_line_error(invoke(["classify", "x", "-m", tmp_path]))
    assert msg == (f"Error: model folder '{tmp_path}' has no config.json; a model folder needs config.json, "
                   "*.safetensors weights and tokenizer files")


@pytest.mark.parametrize("backend", ["native", "transformers"])
def test_bare_encoder_for_fill_mask_names_head_and_train_command(encoder_dir, backend):
    msg = _one_line_error(invoke(["fill-mask", "A [MASK].", "-m", encoder_dir], env={"BERTCLI_BACKEND": backend}))
    assert msg.startswith(f"Error: '{encoder_dir}' has no masked-LM head (missing weights: cls.predictions.")
    assert msg.endswith("; it is probably a bare encoder; add and train the head with 'bertcli train mlm'")


def test_device_cuda_without_gpu_hints_cpu(cls_dir):
    import torch
    if torch.cuda.is_available():
        pytest.skip("this machine has a CUDA GPU")
    msg = _one_line_error(invoke(["classify", "x", "-m", cls_dir, "--device", "cuda"]))
    assert msg == ("Error: device 'cuda' is not available: this torch build or machine has no CUDA GPU; "
                   "try --device cpu")


def test_float16_on_cpu_refused(cls_dir):
    msg = _one_line_error(invoke(["classify", "x", "-m", cls_dir, "--device", "cpu", "--dtype", "float16"]))
    assert msg == "Error: float16 is not supported on CPU; use --dtype bfloat16 or float32 on CPU"


def test_classify_has_no_default_model(cls_dir):
    msg = _one_line_error(invoke(["classify", "x"]))
    assert msg == ("Error: classify has no default model (a generic classifier has no meaningful labels); "
                   "pass --model DIR, use 'bertcli sentiment', or train one with 'bertcli train classify'")
    # BERTCLI_MODEL is the documented alternative to --model
    res = invoke(["classify", "I loved it"], env={"BERTCLI_MODEL": str(cls_dir)})
    assert res.exit_code == 0
    assert_close(jsonl(res.stdout), [{"text": "I loved it", **api_results("classify", cls_dir, ["I loved it"])[0]}])


def test_sentiment_with_model_uses_it(cls_dir):
    res = invoke(["sentiment", "I loved it", "-m", cls_dir, "--top-k", "all"])
    assert res.exit_code == 0 and res.stderr == ""
    (rec,) = jsonl(res.stdout)
    assert list(rec) == ["text", "sentiment", "label", "score", "labels", "truncated"]
    assert [(d["label"], d["sentiment"]) for d in rec["labels"]] == [
        (d["label"], d["label"].lower()) for d in rec["labels"]]
    assert {d["label"] for d in rec["labels"]} == {"NEGATIVE", "POSITIVE"}


# ---------------------------------------------------------------- help

def _all_command_paths(group=cli, prefix=()):
    """Every command as its argument path, nested groups included (e.g. ('train', 'mlm'))."""
    import click

    out = []
    for name in group.list_commands(click.Context(group)):
        sub = group.get_command(click.Context(group), name)
        out.append((*prefix, name))
        if isinstance(sub, click.Group):
            out += _all_command_paths(sub, (*prefix, name))
    return out


def test_every_help_exits_0_with_examples():
    paths = _all_command_paths()
    assert {(c,) for c in COMMANDS} <= set(paths)
    for args in [["--help"]] + [[*p, "--help"] for p in paths]:
        res = invoke(args)
        assert res.exit_code == 0, args
        assert res.stderr == ""
        assert "Examples:" in res.stdout, args
        assert res.stdout.startswith("Usage: bertcli "), args
        # the help's width is set to 100 columns; \b blocks (examples, record layouts) are not
        # rewrapped by Click, so they must fit by themselves
        wide = [ln for ln in res.stdout.splitlines() if len(ln) > 100]
        assert not wide, (args, wide)


_HELP_PROBE = r"""
import contextlib, io, json, sys
import click
from bertcli.cli.main import cli
heavy = lambda: sorted(m for m in ("torch", "transformers") if m in sys.modules)

def paths(group, prefix=()):
    for name in group.list_commands(click.Context(group)):
        sub = group.get_command(click.Context(group), name)
        yield (*prefix, name)
        if isinstance(sub, click.Group):
            yield from paths(sub, (*prefix, name))

out = {}
for args in [["--help"]] + [[*p, "--help"] for p in paths(cli)]:
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        try:
            cli.main(args=args, prog_name="bertcli")
        except SystemExit as e:
            code = e.code
    out[" ".join(args)] = [code, "Examples:" in buf.getvalue(), heavy()]
print(json.dumps(out))
"""


def _env():
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONUNBUFFERED", "BERTCLI_MODEL")}
    env["COLUMNS"] = "200"
    return env


def test_help_imports_neither_torch_nor_transformers():
    proc = subprocess.run([sys.executable, "-c", _HELP_PROBE], capture_output=True, text=True, env=_env(),
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    got = json.loads(proc.stdout)
    assert set(got) >= {"--help"} | {f"{c} --help" for c in COMMANDS}
    assert got == {k: [0, True, []] for k in got}


# ---------------------------------------------------------------- pipes and signals

def test_closed_pipe_ends_quietly(mlm_dir, tmp_path):
    big = tmp_path / "big.txt"
    # ~1500 results of ~190 bytes: far more than a pipe holds once `head` has gone
    big.write_text("".join(f"line {i} of the [MASK] text\n" for i in range(1500)), encoding="utf-8")
    cmd = (f"{shlex.quote(sys.executable)} -m bertcli fill-mask -m {shlex.quote(str(mlm_dir))} -k 1 "
           f"--window 64 --input {shlex.quote(str(big))} 2>{shlex.quote(str(tmp_path / 'err'))} | head -n 1; "
           "echo \"rc=${PIPESTATUS[0]}\"")
    proc = subprocess.run(["bash", "-c", cmd], capture_output=True, text=True, env=_env(), timeout=120)
    first, status = proc.stdout.splitlines()
    text = "line 0 of the [MASK] text"
    assert_close(json.loads(first), {"text": text, **api_results("fill-mask", mlm_dir, [text], top_k=1)[0]})
    assert status in ("rc=0", "rc=141")  # 141: killed by SIGPIPE, like any Unix filter
    assert (tmp_path / "err").read_text() == ""


def test_sigint_leaves_whole_lines_and_exit_130(cls_dir, tmp_path):
    n = 20_000
    src = tmp_path / "many.txt"
    src.write_text("".join(f"review {i}: the food was terrible\n" for i in range(n)), encoding="utf-8")
    with open(src, "rb") as stdin, tempfile.TemporaryFile() as err:
        proc = subprocess.Popen([sys.executable, "-m", "bertcli", "classify", "-m", str(cls_dir), "-b", "1",
                                 "--window", "8", "-f", "jsonl"],
                                stdin=stdin, stdout=subprocess.PIPE, stderr=err, env=_env())
        try:
            first = proc.stdout.readline()  # block-buffered stdout: this arrives mid-run
            proc.send_signal(signal.SIGINT)
            out = first + proc.stdout.read()
            rc = proc.wait(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
        err.seek(0)
        stderr = err.read().decode()
    assert rc == 130, stderr
    assert stderr == "Interrupted: output holds whole records only.\n"
    text = out.decode("utf-8")
    assert text.endswith("\n")
    lines = text.splitlines()
    assert 1 <= len(lines) < n
    want = expected_records("classify", cls_dir, [{"text": f"review {i}: the food was terrible"}
                                                  for i in range(len(lines))])
    assert_close([json.loads(line) for line in lines], want)


def test_json_format_stays_valid_when_the_first_read_fails(cls_dir, tmp_path):
    src = tmp_path / "x.csv"
    src.write_text("sentence,label\nhello,1\n")
    res = invoke(["classify", "-m", cls_dir, "-i", str(src), "--field", "nope", "-f", "json"])
    assert res.exit_code == 1
    assert res.stdout == "[]\n"
    assert res.stderr.startswith("Error: ") and "no column 'nope'" in res.stderr


def test_text_pair_and_pairs_flags_are_not_mixed_up(cls_dir):
    res = invoke(["classify", "-m", cls_dir, "--text-pair", "B"])
    assert res.exit_code == 2 and "use --pairs" in res.stderr
    res = invoke(["classify", "-m", cls_dir, "A", "--pairs"])
    assert res.exit_code == 2 and "use --text-pair" in res.stderr
    a = invoke(["classify", "-m", cls_dir, "A man eats.", "--text-pair", "Someone eats.", "-f", "jsonl"])
    b = invoke(["classify", "-m", cls_dir, "--pairs", "-f", "jsonl"], input="A man eats.\tSomeone eats.\n")
    assert a.exit_code == b.exit_code == 0
    assert json.loads(a.stdout)["labels"] == json.loads(b.stdout)["labels"]


def test_the_loaded_model_is_kept_out_of_the_garbage_collectors_scans(cls_dir):
    """After loading, the command freezes what exists (gc.freeze): a full cyclic-GC scan of
    torch's and the model's objects costs ~0.1 s per 2,000 lines otherwise."""
    import gc

    gc.unfreeze()
    try:
        res = invoke(["classify", "-m", cls_dir, "-f", "jsonl", "a good film"])
        assert res.exit_code == 0 and jsonl(res.stdout)[0]["label"]
        assert gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()
