"""Guards found by trying bertcli as a new user: data-loss, wrong-head and traceback cases."""

from __future__ import annotations

from click.testing import CliRunner

from bertcli.batching import windows
from bertcli.cli.main import cli


def run(args, **kw):
    return CliRunner().invoke(cli, args, **kw)


def test_output_onto_the_input_file_is_refused_and_input_kept(cls_dir, tmp_path):
    f = tmp_path / "same.jsonl"
    f.write_text('{"text": "a"}\n{"text": "b"}\n')
    res = run(["classify", "-m", str(cls_dir), "-i", str(f), "-o", str(f)])
    assert res.exit_code == 2  # a wrong command line: a usage error
    assert res.stderr == f"Error: the output file '{f}' is the input file; write the results to another file\n"
    assert f.read_text() == '{"text": "a"}\n{"text": "b"}\n'
    res = run(["classify", "-m", str(cls_dir), "-i", str(f), "-o", str(tmp_path / "nope" / "o.jsonl")])
    assert res.exit_code == 1 and "does not exist" in res.stderr


def test_a_model_for_another_task_is_refused(cls_dir, ner_dir):
    res = run(["ner", "-m", str(cls_dir), "fine"])
    assert res.exit_code == 1
    assert res.stderr == (f"Error: '{cls_dir}' is a BertForSequenceClassification checkpoint: it has no "
                          "token-classification head; use it with 'bertcli classify' or 'bertcli sentiment'\n")
    res = run(["classify", "-m", str(ner_dir), "fine"])
    assert res.exit_code == 1 and "use it with 'bertcli ner'" in res.stderr


def test_table_shows_text_from_any_field(cls_dir, tmp_path):
    f = tmp_path / "d.tsv"
    f.write_text("sentence\tlabel\nwonderful film\t1\n")
    res = run(["classify", "-m", str(cls_dir), "-i", str(f), "--field", "sentence", "-f", "table"])
    assert res.exit_code == 0
    assert "wonderful film" in res.stdout


def test_first_windows_are_small_so_results_stream():
    sizes = [len(w) for w in windows(range(100), 16)]
    assert sizes[:5] == [1, 2, 4, 8, 16] and set(sizes[5:-1]) == {16} and sum(sizes) == 100
    sizes = [len(w) for w in windows(range(10), 16, is_barrier=lambda x: x == 3)]
    assert sizes == [1, 2, 1, 4, 2]  # the barrier is its own window; growth goes on after it


def test_train_option_ranges_are_usage_errors(encoder_dir, tmp_path):
    for opt in (["--lr", "-1"], ["--epochs", "0"], ["--warmup", "-1"]):
        res = run(["train", "classify", "-m", str(encoder_dir), "--train", "x.jsonl", "-o", str(tmp_path / "o"), *opt])
        assert res.exit_code == 2 and "Traceback" not in res.stderr, opt
