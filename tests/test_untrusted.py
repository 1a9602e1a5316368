"""Untrusted model folders: every damaged or hostile folder is refused with one clean line.

Each case builds a copy of the tiny classifier (``cls_dir``) with one fault and checks, for
both backends (``BERTCLI_BACKEND=native`` and ``=transformers``):

* the CLI prints exactly one ``Error: ...`` line on stderr, nothing on stdout, exit 1,
  no traceback;
* the Python API (``load_model``) raises :class:`ModelError` with the same text;
* the refusal comes before any inference, indeed before any model is built: no
  ``torch.nn.Module`` is constructed while loading;
* traps (a pickle whose ``__reduce__`` creates a file, a custom-code module that creates
  a file on import) never fire.

Cases whose faults ask for absurd sizes run under an address-space cap, so that a
regression fails with MemoryError instead of exhausting the machine.
"""

from __future__ import annotations

import contextlib
import json
import os
import pickle
import random
import resource
import shutil
import struct
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from bertcli import classify
from bertcli.cli.main import cli, format_error
from bertcli.errors import ModelError
from bertcli.loading import load_model

BACKENDS = ["native", "transformers"]
CORRUPT = "re-download or re-save the model"
MISMATCH = "the config does not belong to these weights"
CUSTOM_CODE = ("asks for custom code (auto_map); bertcli never runs code from a model folder; "
               "use a checkpoint of a built-in transformers architecture")
NOT_BERT = "the config is damaged or not a BERT-family config"


class Trap:
    """Unpickling this creates the folder ``path`` (as any code a pickle names would run)."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return (os.mkdir, (self.path,))


def evil_module(flag: Path) -> str:
    """Source of a module that creates the folder ``flag`` when imported."""
    return f"import os\nos.mkdir({str(flag)!r})\n"


def copy_model(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def edit_config(d: Path, **changes) -> None:
    cfg = json.loads((d / "config.json").read_text())
    cfg.update(changes)
    (d / "config.json").write_text(json.dumps(cfg))


def vocab_rows(d: Path) -> int:
    return json.loads((d / "config.json").read_text())["vocab_size"]


# ---------------------------------------------------------------- the faults
# Each builder gets (model folder copy, a scratch folder outside it) and returns the
# expected error line; a line ending in "..." is matched as a prefix. "{d}" is the folder.

def pickle_only(d, scratch):
    (d / "model.safetensors").unlink()
    (d / "pytorch_model.bin").write_bytes(pickle.dumps(Trap(scratch / "unpickled")))
    return ("Error: model folder '{d}' has only pickle weights (pytorch_model.bin); bertcli loads safetensors only, "
            "because unpickling can run arbitrary code; on a machine where you trust the file, convert it with "
            "the model's own class ...")


def corrupt_header(d, scratch):
    f = d / "model.safetensors"
    data = bytearray(f.read_bytes())
    (n,) = struct.unpack("<Q", data[:8])
    data[8:8 + n] = random.Random(0).randbytes(n)  # same length, random bytes
    f.write_bytes(bytes(data))
    return f"Error: weights file '{{d}}/model.safetensors' is corrupt or truncated: Error while deserializing header: ..."


def header_length_beyond_file(d, scratch):
    f = d / "model.safetensors"
    data = f.read_bytes()
    f.write_bytes(struct.pack("<Q", len(data) * 4) + data[8:])
    return "Error: weights file '{d}/model.safetensors' is corrupt or truncated: Error while deserializing header: ..."


def truncated_weights(d, scratch):
    f = d / "model.safetensors"
    data = f.read_bytes()
    f.write_bytes(data[: len(data) // 2])
    return ("Error: weights file '{d}/model.safetensors' is corrupt or truncated: Error while deserializing header: "
            f"incomplete metadata, file not fully covered; {CORRUPT}")


def wrong_vocab_size(d, scratch):
    rows = vocab_rows(d)
    edit_config(d, vocab_size=rows + 7)
    return (f"Error: {{d}}/config.json says vocab_size={rows + 7} but the weights' "
            f"bert.embeddings.word_embeddings.weight has {rows} rows; {MISMATCH}")


def vocab_size_not_a_number(d, scratch):
    edit_config(d, vocab_size="many")
    return f"Error: {{d}}/config.json: vocab_size='many' is not a sane value (expected 1..4194304); {NOT_BERT}"


def tokenizer_json_larger_than_embeddings(d, scratch):
    rows = vocab_rows(d)
    tj = json.loads((d / "tokenizer.json").read_text())
    vocab = tj["model"]["vocab"]
    for i in range(50):
        vocab[f"extra{i}"] = rows + i
    (d / "tokenizer.json").write_text(json.dumps(tj))
    return (f"Error: the tokenizer in '{{d}}' has {rows + 50} tokens but the model's vocab_size is {rows}; "
            "the tokenizer does not belong to this model")


def vocab_txt_larger_than_embeddings(d, scratch):
    rows = vocab_rows(d)
    (d / "tokenizer.json").unlink()  # the tokenizer is built from vocab.txt
    with open(d / "vocab.txt", "a", encoding="utf-8") as f:
        f.write("".join(f"extra{i}\n" for i in range(50)))
    return (f"Error: the tokenizer in '{{d}}' has {rows + 50} tokens but the model's vocab_size is {rows}; "
            "the tokenizer does not belong to this model")


def tokenizer_json_garbage(d, scratch):
    (d / "tokenizer.json").write_text("{garbage")
    return "Error: cannot load the tokenizer in '{d}': ..."


def auto_map_in_config(d, scratch):
    edit_config(d, auto_map={"AutoConfig": "evil.EvilConfig",
                             "AutoModelForSequenceClassification": "evil.EvilModel"})
    (d / "evil.py").write_text(evil_module(scratch / "imported"))
    return f"Error: {{d}}/config.json {CUSTOM_CODE}"


def auto_map_in_tokenizer_config(d, scratch):
    tc = json.loads((d / "tokenizer_config.json").read_text())
    tc["auto_map"] = {"AutoTokenizer": ["evil.EvilTokenizer", None]}
    (d / "tokenizer_config.json").write_text(json.dumps(tc))
    (d / "evil.py").write_text(evil_module(scratch / "imported"))
    return f"Error: {{d}}/tokenizer_config.json {CUSTOM_CODE}"


def symlink_to_etc_passwd(d, scratch):
    (d / "model.safetensors").unlink()
    (d / "model.safetensors").symlink_to("/etc/passwd")
    return ("Error: '{d}/model.safetensors' is a symlink to '/etc/passwd', outside the model folder; "
            "refusing to load it; copy the file into the folder if you trust it")


def symlink_to_another_folder(d, scratch):
    # valid weights, but in another (temporary) folder
    elsewhere = scratch / "elsewhere.safetensors"
    shutil.move(d / "model.safetensors", elsewhere)
    (d / "model.safetensors").symlink_to(elsewhere)
    return (f"Error: '{{d}}/model.safetensors' is a symlink to '{elsewhere.resolve()}', outside the model folder; "
            "refusing to load it; copy the file into the folder if you trust it")


def symlinked_tokenizer(d, scratch):
    elsewhere = scratch / "tokenizer.json"
    shutil.move(d / "tokenizer.json", elsewhere)
    (d / "tokenizer.json").symlink_to(elsewhere)
    return (f"Error: '{{d}}/tokenizer.json' is a symlink to '{elsewhere.resolve()}', outside the model folder; "
            "refusing to load it; copy the file into the folder if you trust it")


def fifo_tokenizer(d, scratch):
    (d / "tokenizer.json").unlink()
    os.mkfifo(d / "tokenizer.json")  # reading it would block forever
    return ("Error: '{d}/tokenizer.json' in the model folder is not a regular file (a FIFO, socket or device); "
            "refusing to load it; a model folder holds plain files only")


def absurd_max_positions(d, scratch):
    edit_config(d, max_position_embeddings=10**12)
    return (f"Error: {{d}}/config.json: max_position_embeddings={10**12} is not a sane value "
            f"(expected 1..65536); {NOT_BERT}")


def absurd_hidden_size(d, scratch):
    edit_config(d, hidden_size=10**9)
    return f"Error: {{d}}/config.json: hidden_size={10**9} is not a sane value (expected 1..65536); {NOT_BERT}"


def hidden_size_wider_than_weights(d, scratch):
    edit_config(d, hidden_size=4096, num_attention_heads=32)  # within bounds: 64 GiB of attention weights
    return ("Error: {d}/config.json says hidden_size=4096 but the weights' bert.embeddings.word_embeddings.weight "
            f"has 32 columns; {MISMATCH}")


def more_layers_than_weights(d, scratch):
    edit_config(d, num_hidden_layers=1000)
    return f"Error: {{d}}/config.json says num_hidden_layers=1000 but the weights hold 2 layers; {MISMATCH}"


def huge_intermediate_size(d, scratch):
    edit_config(d, intermediate_size=200_000)  # in bounds, but far more than the weights hold
    return "Error: {d}/config.json describes a model of about ..."


def config_not_json(d, scratch):
    (d / "config.json").write_text("{not json")
    return ("Error: {d}/config.json is not valid JSON: Expecting property name enclosed in double quotes: "
            "line 1 column 2 (char 1)")


def config_not_an_object(d, scratch):
    (d / "config.json").write_text("[1, 2]")
    return "Error: {d}/config.json is not valid JSON: not a JSON object"


def unknown_model_type(d, scratch):
    edit_config(d, model_type="frobnicator")
    return ("Error: {d}/config.json: unknown model_type 'frobnicator'; bertcli runs architectures built into "
            "transformers (bert, roberta, distilbert, ...)")


def model_type_not_a_string(d, scratch):
    edit_config(d, model_type=["bert"])
    return "Error: {d}/config.json: model_type=['bert'] is not a model type name; is this a Hugging Face transformers config?"


def adapter_with_pickle_weights(d, scratch):
    base = scratch / "base"
    shutil.copytree(d, base)
    (d / "model.safetensors").unlink()
    (d / "adapter_config.json").write_text(json.dumps({"peft_type": "LORA", "r": 2, "lora_alpha": 4,
                                                       "target_modules": ["query", "value"],
                                                       "base_model_name_or_path": str(base)}))
    (d / "adapter_model.bin").write_bytes(pickle.dumps(Trap(scratch / "unpickled")))
    return ("Error: adapter folder '{d}' has no adapter_model.safetensors (only pickle weights: adapter_model.bin; "
            "bertcli never unpickles); save the adapter with safetensors (peft's save_pretrained does by default)")


def adapter_config_wider_than_base(d, scratch):
    from safetensors.torch import save_file

    base = scratch / "base"
    shutil.copytree(d, base)
    (d / "model.safetensors").unlink()
    (d / "adapter_config.json").write_text(json.dumps({"peft_type": "LORA", "r": 2, "lora_alpha": 4,
                                                       "target_modules": ["query", "value"],
                                                       "base_model_name_or_path": str(base)}))
    save_file({"base_model.model.bert.encoder.layer.0.attention.self.query.lora_A.weight": torch.zeros(2, 32),
               "base_model.model.bert.encoder.layer.0.attention.self.query.lora_B.weight": torch.zeros(32, 2)},
              str(d / "adapter_model.safetensors"))
    edit_config(d, hidden_size=4096, num_attention_heads=32)  # the adapter's config builds the model
    return ("Error: {d}/config.json says hidden_size=4096 but the weights' bert.embeddings.word_embeddings.weight "
            f"has 32 columns; {MISMATCH}")


CASES = [pickle_only, corrupt_header, header_length_beyond_file, truncated_weights, wrong_vocab_size,
         vocab_size_not_a_number, tokenizer_json_larger_than_embeddings, vocab_txt_larger_than_embeddings,
         tokenizer_json_garbage, auto_map_in_config, auto_map_in_tokenizer_config, symlink_to_etc_passwd,
         symlink_to_another_folder, symlinked_tokenizer, fifo_tokenizer, absurd_max_positions, absurd_hidden_size,
         hidden_size_wider_than_weights, more_layers_than_weights, huge_intermediate_size, config_not_json,
         config_not_an_object, unknown_model_type, model_type_not_a_string, adapter_with_pickle_weights,
         adapter_config_wider_than_base]


# ---------------------------------------------------------------- helpers

@contextlib.contextmanager
def address_space_cap(extra_gib: int = 4):
    """Cap this process's address space at its current size + ``extra_gib`` while inside:
    a loader that allocates what an absurd config asks for fails fast instead of taking
    the machine's memory (and other processes with it)."""
    with open("/proc/self/status") as f:
        vm = next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmSize:"))
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    cap = vm + extra_gib * (1 << 30)
    if hard != resource.RLIM_INFINITY:
        cap = min(cap, hard)
    resource.setrlimit(resource.RLIMIT_AS, (cap, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


@contextlib.contextmanager
def count_modules_built():
    """Count ``torch.nn.Module`` constructions (any model, layer or head) inside."""
    built = []
    orig = torch.nn.Module.__init__

    def init(self, *a, **kw):
        built.append(type(self).__name__)
        orig(self, *a, **kw)

    torch.nn.Module.__init__ = init
    try:
        yield built
    finally:
        torch.nn.Module.__init__ = orig


def assert_line(actual: str, expected: str, d: Path) -> None:
    expected = expected.replace("{d}", str(d))
    if expected.endswith("..."):
        assert actual.startswith(expected[:-3]), f"\n{actual}\n!=\n{expected}"
    else:
        assert actual == expected


# ---------------------------------------------------------------- the tests

def test_the_traps_work(tmp_path):
    """The pickle and custom-code traps really fire when executed (so their absence means
    the refused files were never unpickled/imported)."""
    pickle.loads(pickle.dumps(Trap(tmp_path / "unpickled")))
    assert (tmp_path / "unpickled").is_dir()
    exec(compile(evil_module(tmp_path / "imported"), "evil.py", "exec"), {})
    assert (tmp_path / "imported").is_dir()


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("case", CASES, ids=[c.__name__ for c in CASES])
def test_untrusted_folder_is_refused_before_inference(case, backend, cls_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("BERTCLI_BACKEND", backend)
    monkeypatch.delenv("BERTCLI_MODEL", raising=False)
    monkeypatch.delenv("BERTCLI_BASE_MODEL", raising=False)
    d = copy_model(cls_dir, tmp_path / "model")
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    expected = case(d, scratch)

    with address_space_cap(), count_modules_built() as built:
        res = CliRunner().invoke(cli, ["classify", "-m", str(d), "I loved it", "-f", "jsonl"],
                                 prog_name="bertcli")
        with pytest.raises(ModelError) as err:
            load_model(d, "classify", device="cpu")
    assert res.exception is None or isinstance(res.exception, SystemExit), res.exc_info
    assert res.exit_code == 1
    assert res.stdout == ""  # no output line: nothing was classified
    assert "Traceback" not in res.stderr
    assert res.stderr.endswith("\n") and res.stderr.count("\n") == 1, res.stderr
    line = res.stderr[:-1]
    assert_line(line, expected, d)
    assert format_error(err.value) == line  # the API raises the very same error
    assert built == [], f"a model was built before the refusal: {built[:5]}"
    assert sorted(p.name for p in scratch.iterdir() if p.name in ("unpickled", "imported")) == [], \
        "a pickle was unpickled or custom code was imported"


@pytest.mark.parametrize("backend", BACKENDS)
def test_pickle_beside_safetensors_is_never_opened(backend, cls_dir, tmp_path, monkeypatch):
    """A folder with both weight formats loads the safetensors and leaves the pickle alone."""
    monkeypatch.setenv("BERTCLI_BACKEND", backend)
    d = copy_model(cls_dir, tmp_path / "model")
    (d / "pytorch_model.bin").write_bytes(pickle.dumps(Trap(tmp_path / "unpickled")))
    lm = load_model(d, "classify", device="cpu")
    assert lm.native is (backend == "native")
    assert not (tmp_path / "unpickled").exists()
    ref = load_model(cls_dir, "classify", device="cpu")
    assert classify(lm, ["I loved it"], top_k=None) == classify(ref, ["I loved it"], top_k=None)


def test_symlink_inside_the_folder_is_allowed(cls_dir, tmp_path, monkeypatch):
    """Links that stay inside the folder (as in Hugging Face cache snapshots) are fine."""
    monkeypatch.setenv("BERTCLI_BACKEND", "native")
    d = copy_model(cls_dir, tmp_path / "model")
    (d / "blobs").mkdir()
    shutil.move(d / "model.safetensors", d / "blobs" / "weights")
    (d / "model.safetensors").symlink_to(d / "blobs" / "weights")
    assert load_model(d, "classify", device="cpu").native


def test_every_from_pretrained_is_local_and_refuses_remote_code():
    """Static check of bertcli's sources: each transformers ``from_pretrained`` call passes
    ``local_files_only=True`` and ``trust_remote_code=False`` explicitly (transformers'
    default for the latter is to *ask* on a terminal). peft's ``PeftModel.from_pretrained``
    takes neither; its folder is checked by ``check_folder`` first."""
    import ast

    import bertcli

    calls = []
    for f in sorted(Path(bertcli.__file__).parent.rglob("*.py")):
        for node in ast.walk(ast.parse(f.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) \
                    and node.func.attr == "from_pretrained":
                owner = node.func.value.id if isinstance(node.func.value, ast.Name) else "?"
                kw = {k.arg: k.value.value for k in node.keywords if isinstance(k.value, ast.Constant)}
                calls.append((f"{f.name}:{node.lineno}", owner, kw.get("local_files_only"),
                              kw.get("trust_remote_code")))
    assert len(calls) >= 6
    for where, owner, local, remote in calls:
        if owner == "PeftModel":
            continue
        assert (local, remote) == (True, False), f"{where}: {owner}.from_pretrained"


TRAIN_CASES = [pickle_only, auto_map_in_config, symlink_to_etc_passwd, fifo_tokenizer, more_layers_than_weights,
               tokenizer_json_larger_than_embeddings, unknown_model_type]


@pytest.mark.parametrize("case", TRAIN_CASES, ids=[c.__name__ for c in TRAIN_CASES])
def test_untrusted_base_model_is_refused_before_training(case, cls_dir, tmp_path, monkeypatch):
    """``bertcli train`` checks its base folder the same way, before reading a training step."""
    monkeypatch.delenv("BERTCLI_MODEL", raising=False)
    d = copy_model(cls_dir, tmp_path / "model")
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    expected = case(d, scratch)
    data = tmp_path / "train.tsv"
    data.write_text("sentence\tlabel\n" + "".join(f"text {i}\t{'ab'[i % 2]}\n" for i in range(8)))
    out = tmp_path / "out"
    with address_space_cap(), count_modules_built() as built:
        res = CliRunner().invoke(cli, ["train", "classify", "-m", str(d), "--train", str(data), "-o", str(out),
                                       "--max-steps", "1", "-f", "jsonl"], prog_name="bertcli")
    assert res.exception is None or isinstance(res.exception, SystemExit), res.exc_info
    assert res.exit_code == 1 and res.stdout == ""
    assert res.stderr.count("\n") == 1, res.stderr
    assert_line(res.stderr[:-1], expected, d)
    assert built == [] and not (out / "checkpoints").exists()
    assert not any((scratch / n).exists() for n in ("unpickled", "imported"))
