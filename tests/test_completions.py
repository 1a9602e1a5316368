"""The shipped completion scripts must match the current Click tree."""

from pathlib import Path

import pytest

from bertcli.cli.completion import render_all

COMPLETIONS = Path(__file__).resolve().parents[1] / "completions"


@pytest.mark.parametrize("name,text", sorted(render_all().items()))
def test_completion_script_is_current(name, text):
    path = COMPLETIONS / name
    assert path.is_file(), f"{path} missing: run python -m bertcli.cli.completion completions"
    assert path.read_text(encoding="utf-8") == text, \
        f"{path} is stale: run python -m bertcli.cli.completion completions"


def test_bash_script_completes_commands_and_choices(tmp_path):
    import shutil
    import subprocess

    bash = shutil.which("bash")
    if bash is None:
        pytest.skip("bash not installed")
    script = COMPLETIONS / "bertcli.bash"

    def complete(*words):
        words = ["bertcli", *words]
        cmd = (f"source {script}; COMP_WORDS=({' '.join(repr(w) for w in words)}); "
               f"COMP_CWORD={len(words) - 1}; _bertcli; printf '%s\\n' \"${{COMPREPLY[@]}}\"")
        return subprocess.run([bash, "-c", cmd], capture_output=True, text=True, check=True).stdout.split()

    assert {"fill-mask", "nsp", "classify", "sentiment", "ner"} <= set(complete(""))
    assert complete("ner", "--aggregation", "") == ["none", "simple", "first", "average", "max"]
    assert "--top-k" in complete("fill-mask", "--to")
