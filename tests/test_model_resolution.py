"""Which folder a model name means, and which heads a folder has.

Hub ids resolve offline from the Hugging Face cache (its real layout: refs/, blobs/ and
snapshots/ of relative symlinks, as huggingface_hub writes it); the heads a checkpoint
carries are read from the safetensors header where config.json's ``architectures``
understates them (bert-base-uncased says BertForMaskedLM and carries the NSP head)."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from bertcli.cli.main import cli
from bertcli.errors import ModelError
from bertcli.loading import (check_architecture, heads_in_weights, hub_cache_snapshot, inspect_folder, load_model,
                             looks_like_hub_id, resolve_model_dir, tasks_of_checkpoint)

COMMIT_OLD = "1" * 40
COMMIT_NEW = "a3" + "0" * 38


def cache_repo(cache: Path, repo_id: str, snapshots: dict[str, Path], main: str) -> Path:
    """Lay out ``models--ORG--NAME`` as huggingface_hub does: each file's bytes in
    ``blobs/<sha256>``, ``snapshots/<commit>/<file>`` a relative link to ``../../blobs/<sha>``,
    ``refs/main`` holding the commit of the main branch."""
    repo = cache / ("models--" + repo_id.replace("/", "--"))
    (repo / "blobs").mkdir(parents=True, exist_ok=True)
    (repo / "refs").mkdir(exist_ok=True)
    for commit, src in snapshots.items():
        snap = repo / "snapshots" / commit
        snap.mkdir(parents=True)
        for f in sorted(src.iterdir()):
            data = f.read_bytes()
            sha = hashlib.sha256(data).hexdigest()
            (repo / "blobs" / sha).write_bytes(data)
            os.symlink(f"../../blobs/{sha}", snap / f.name)
    (repo / "refs" / "main").write_text(main)
    return repo


@pytest.fixture()
def hub_cache(tmp_path, cls_dir, multilabel_dir, monkeypatch):
    cache = tmp_path / "hub"
    cache_repo(cache, "org/tiny-sst2", {COMMIT_OLD: multilabel_dir, COMMIT_NEW: cls_dir}, main=COMMIT_NEW)
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    return cache


def test_hub_id_shapes():
    assert looks_like_hub_id("dslim/bert-base-NER") and looks_like_hub_id("bert-base-uncased")
    for not_id in ("./model", "/abs/model", "a/b/c", "../x", "org/..", "~/model", ""):
        assert not looks_like_hub_id(not_id), not_id


def test_hub_id_resolves_to_the_main_snapshot(hub_cache):
    snap = resolve_model_dir("org/tiny-sst2", "classify")
    assert snap == hub_cache / "models--org--tiny-sst2" / "snapshots" / COMMIT_NEW
    assert (snap / "config.json").is_symlink()
    lm = load_model("org/tiny-sst2", "classify")
    assert lm.id2label == {0: "NEGATIVE", 1: "POSITIVE"}


def test_revision_picks_another_snapshot(hub_cache):
    lm = load_model("org/tiny-sst2", "classify", revision=COMMIT_OLD)
    assert lm.id2label == {0: "sports", 1: "politics", 2: "tech"}
    assert hub_cache_snapshot("org/tiny-sst2", COMMIT_OLD[:8]).name == COMMIT_OLD  # a unique prefix


def test_cli_hub_id_and_revision(hub_cache):
    r = CliRunner().invoke(cli, ["classify", "-m", "org/tiny-sst2", "-f", "jsonl", "I loved it"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["label"] in ("NEGATIVE", "POSITIVE")
    r = CliRunner().invoke(cli, ["classify", "-m", "org/tiny-sst2", "--revision", COMMIT_OLD, "-f", "jsonl",
                                 "I loved it"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["label"] in ("sports", "politics", "tech")


def test_miss_says_where_it_looked(hub_cache):
    r = CliRunner().invoke(cli, ["classify", "-m", "org/absent", "x"])
    assert r.exit_code == 1
    line = r.stderr.strip()
    assert "\n" not in line and "Traceback" not in r.output
    assert "org/absent" in line and str(hub_cache) in line and "hf download org/absent" in line
    r = CliRunner().invoke(cli, ["classify", "-m", "org/tiny-sst2", "--revision", "v9", "x"])
    assert r.exit_code == 1
    assert "revision 'v9'" in r.stderr and "main" in r.stderr and COMMIT_NEW[:12] in r.stderr
    # the hint quotes the whole command, --revision included
    assert "run 'hf download org/tiny-sst2 --revision v9' and copy" in r.stderr


def test_cache_location_from_hf_home(tmp_path, cls_dir, monkeypatch):
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    monkeypatch.delenv("HUGGINGFACE_HUB_CACHE", raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hfhome"))
    cache_repo(tmp_path / "hfhome" / "hub", "tiny-cls", {COMMIT_NEW: cls_dir}, main=COMMIT_NEW)
    assert resolve_model_dir("tiny-cls", "classify").name == COMMIT_NEW


def test_a_folder_wins_over_the_cache(hub_cache, cls_dir, tmp_path, monkeypatch):
    local = tmp_path / "org" / "tiny-sst2"
    shutil.copytree(cls_dir, local)
    monkeypatch.chdir(tmp_path)
    assert resolve_model_dir("org/tiny-sst2", "classify") == Path("org/tiny-sst2")


def test_links_leaving_the_cache_repo_are_refused(hub_cache, tmp_path):
    snap = hub_cache / "models--org--tiny-sst2" / "snapshots" / COMMIT_NEW
    secret = tmp_path / "elsewhere.json"
    secret.write_text("{}")
    (snap / "tokenizer_config.json").unlink()
    os.symlink(secret, snap / "tokenizer_config.json")
    with pytest.raises(ModelError, match="outside the Hugging Face cache repo"):
        load_model("org/tiny-sst2", "classify")


def test_bert_base_uncased_layout_runs_nsp(pretraining_dir, tmp_path):
    """bert-base-uncased: architectures ["BertForMaskedLM"], weights with cls.seq_relationship."""
    d = tmp_path / "bert-base-uncased"
    shutil.copytree(pretraining_dir, d)
    cfg = json.loads((d / "config.json").read_text())
    cfg["architectures"] = ["BertForMaskedLM"]
    (d / "config.json").write_text(json.dumps(cfg))
    _, shapes = inspect_folder(d)
    assert tasks_of_checkpoint(cfg, shapes) == ["fill-mask", "nsp"]
    from transformers import BertForNextSentencePrediction, AutoTokenizer

    ref = BertForNextSentencePrediction.from_pretrained(str(d)).eval()
    tok = AutoTokenizer.from_pretrained(str(d))
    with torch.no_grad():
        p = ref(**tok("He opened the fridge.", "It was empty.", return_tensors="pt")).logits.softmax(-1)[0, 0]
    for backend in ("native", "transformers"):
        os.environ["BERTCLI_BACKEND"] = backend
        try:
            r = CliRunner().invoke(cli, ["nsp", "-m", str(d), "-f", "jsonl", "He opened the fridge.",
                                         "It was empty."])
        finally:
            del os.environ["BERTCLI_BACKEND"]
        assert r.exit_code == 0, r.output
        rec = json.loads(r.stdout)
        assert rec["score"] == pytest.approx(float(p), abs=1e-4), backend
        assert rec["is_next"] == (float(p) >= 0.5)


def test_refusals_name_a_command_that_accepts_the_folder(ner_dir, cls_dir, mlm_dir, tmp_path):
    with pytest.raises(ModelError) as e:
        load_model(ner_dir, "classify")
    assert e.value.hint == "use it with 'bertcli ner'"
    with pytest.raises(ModelError) as e:
        load_model(cls_dir, "fill-mask")
    assert e.value.hint == "use it with 'bertcli classify' or 'bertcli sentiment'"
    with pytest.raises(ModelError) as e:
        load_model(mlm_dir, "nsp")  # BertForMaskedLM without the NSP weights
    assert e.value.hint == "use it with 'bertcli fill-mask'"


def test_electra_discriminator_is_refused_with_an_honest_hint(tmp_path, cls_dir):
    import transformers as tf

    d = tmp_path / "electra-small-discriminator"
    d.mkdir()
    shutil.copy(cls_dir / "vocab.txt", d / "vocab.txt")
    n = sum(1 for _ in open(d / "vocab.txt", encoding="utf-8"))
    tf.ElectraForPreTraining(tf.ElectraConfig(vocab_size=n, embedding_size=16, hidden_size=32, num_hidden_layers=1,
                                              num_attention_heads=2, intermediate_size=32)).save_pretrained(d)
    for task, head in (("classify", "sequence-classification head"), ("fill-mask", "masked-LM head"),
                       ("nsp", "next-sentence-prediction head")):
        with pytest.raises(ModelError) as e:
            load_model(d, task)
        assert f"ElectraForPreTraining checkpoint: it has no {head}" in e.value.message
        assert "replaced-token detection" in e.value.hint and "use it with" not in e.value.hint


def test_head_names_of_each_family():
    assert heads_in_weights(["bert.pooler.dense.weight", "cls.predictions.bias", "cls.seq_relationship.weight"]) \
        == {"fill-mask", "nsp"}
    assert heads_in_weights(["predictions.decoder.bias", "sop_classifier.classifier.weight"]) == {"fill-mask", "sop"}
    assert heads_in_weights(["model.layers.0.attn.Wqkv.weight", "head.dense.weight", "decoder.bias"]) == {"fill-mask"}
    assert heads_in_weights(["model.layers.0.attn.Wqkv.weight", "head.dense.weight", "classifier.weight"]) \
        == {"classifier"}
    assert heads_in_weights(["distilbert.embeddings.word_embeddings.weight", "vocab_projector.bias"]) == {"fill-mask"}
    assert heads_in_weights(["embeddings.word_embeddings.weight", "encoder.layer.0.output.dense.weight"]) == set()
    # a bare encoder passes the architecture check: the loader names the missing head
    check_architecture({"architectures": ["BertModel"]}, "classify", Path("x"), ["embeddings.word_embeddings.weight"])


def test_half_precision_checkpoint_runs_in_float32(cls_dir, tmp_path):
    """Weights stored float16 with torch_dtype float16: scores equal the float32 model's."""
    from safetensors.torch import load_file, save_file

    d = tmp_path / "fp16"
    shutil.copytree(cls_dir, d)
    sd = load_file(str(d / "model.safetensors"))
    save_file({k: v.half() for k, v in sd.items()}, str(d / "model.safetensors"), metadata={"format": "pt"})
    cfg = json.loads((d / "config.json").read_text())
    cfg["torch_dtype"] = cfg["dtype"] = "float16"
    (d / "config.json").write_text(json.dumps(cfg))
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    ref = AutoModelForSequenceClassification.from_pretrained(str(d), dtype=torch.float32).eval()
    tok = AutoTokenizer.from_pretrained(str(d))
    text = "I loved this movie, it was wonderful."
    with torch.no_grad():
        want = ref(**tok([text], return_tensors="pt")).logits.float()
    for backend in ("native", "transformers"):
        os.environ["BERTCLI_BACKEND"] = backend
        try:
            lm = load_model(d, "classify")
        finally:
            del os.environ["BERTCLI_BACKEND"]
        assert next(iter(lm.model.parameters())).dtype == torch.float32, backend
        from bertcli.tasks.base import collate, encode_texts

        feats, _ = encode_texts(lm.tokenizer, [text], None, lm.max_length)
        got = lm.forward(collate(feats, lm.tokenizer.pad_token_id or 0))
        assert torch.allclose(got, want, atol=1e-5), (backend, got, want)


@pytest.fixture(scope="module")
def phobert_like(tmp_path_factory):
    """A PhoBERT-style folder: fastBPE vocab.txt ("token count" lines) + bpe.codes, a slow-only
    tokenizer (PhobertTokenizer has no fast version), RoBERTa weights with a masked-LM head."""
    import transformers as tf

    d = tmp_path_factory.mktemp("phobert-base")
    words = "the food was great and terrible service movie loved it i a n d e r t h o s w g".split()
    vocab = list(dict.fromkeys(words)) + ["th@@", "e@@", "go@@", "od"]
    (d / "vocab.txt").write_text("".join(f"{w} 1\n" for w in vocab), encoding="utf-8")
    (d / "bpe.codes").write_text("t h 10\nth e</w> 9\ng o 8\n", encoding="utf-8")
    tok = tf.PhobertTokenizer(str(d / "vocab.txt"), str(d / "bpe.codes"))
    tok.save_pretrained(str(d))
    cfg = tf.RobertaConfig(vocab_size=len(tok), hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                           intermediate_size=32, max_position_embeddings=258, type_vocab_size=1, pad_token_id=1,
                           bos_token_id=0, eos_token_id=2, tokenizer_class="PhobertTokenizer", initializer_range=0.5)
    torch.manual_seed(0)
    tf.RobertaForMaskedLM(cfg).save_pretrained(str(d))
    return d


def test_slow_only_tokenizer_runs_fill_mask_and_ner_says_why(phobert_like):
    from transformers import pipeline

    text = "the food <mask> great"
    r = CliRunner().invoke(cli, ["fill-mask", "-m", str(phobert_like), "-k", "3", "-f", "jsonl", text])
    assert r.exit_code == 0, r.output
    ours = json.loads(r.stdout)["predictions"][0]
    ref = pipeline("fill-mask", model=str(phobert_like), top_k=3)(text)
    assert [p["token"] for p in ours] == [p["token"] for p in ref]
    for o, p in zip(ours, ref):
        assert o["score"] == pytest.approx(p["score"], abs=1e-4)
        assert o["sequence"].startswith("the food ") and o["sequence"].endswith(" great")
    with pytest.raises(ModelError) as e:
        from bertcli.loading import load_tokenizer
        load_tokenizer(phobert_like, offsets=True)
    assert "PhobertTokenizer" in e.value.message and "offsets" in e.value.message


def test_old_hub_sentencepiece_file_reads_as_the_pipeline_does(tmp_path):
    """xlm-roberta-base's tokenizer.json predates transformers 5 and has a Metaspace-only
    pre-tokenizer; transformers 5 rebuilds WhitespaceSplit + Metaspace from the class. bertcli
    must read the same ids and offsets as the pipeline (not the file's: a run of spaces would
    become '▁' tokens and an entity would start at the space)."""
    from tiny_spm import build_xlmr_ner
    from transformers import AutoTokenizer, pipeline

    d = build_xlmr_ner(tmp_path / "xlm-roberta-ner")
    tj = json.loads((d / "tokenizer.json").read_text(encoding="utf-8"))
    tj["pre_tokenizer"] = {"type": "Metaspace", "replacement": "\u2581", "prepend_scheme": "always", "split": True}
    (d / "tokenizer.json").write_text(json.dumps(tj), encoding="utf-8")
    text = "Hello  FC Liverpool won in  Köln"
    ref_tok = AutoTokenizer.from_pretrained(str(d))
    lm = load_model(d, "ner")
    ours = lm.tokenizer([text], return_offsets_mapping=True)
    ref = ref_tok([text], return_offsets_mapping=True)
    assert ours["input_ids"] == ref["input_ids"]
    assert [list(map(tuple, o)) for o in ours["offset_mapping"]] == [list(map(tuple, o)) for o in ref["offset_mapping"]]
    r = CliRunner().invoke(cli, ["ner", "-m", str(d), "-a", "none", "-f", "jsonl", text])
    assert r.exit_code == 0, r.output
    got = [(e["start"], e["end"], e["entity"]) for e in json.loads(r.stdout)["entities"]]
    want = [(e["start"], e["end"], e["entity"]) for e in pipeline("token-classification", model=str(d))(text)
            if e["word"] != "\u2581"]  # a lone '▁' takes no character in bertcli (tests/test_xlmr_ner.py)
    assert got == want


def test_revision_without_a_hub_id_is_a_usage_error(hub_cache, cls_dir):
    r = CliRunner().invoke(cli, ["classify", "-m", str(cls_dir), "--revision", "main", "x"])
    assert r.exit_code == 2 and "--revision main needs a hub id" in r.stderr and "folder path" in r.stderr
    r = CliRunner().invoke(cli, ["sentiment", "--revision", "main", "x"], env={"BERTCLI_MODEL": None})
    assert r.exit_code == 2 and "shipped default has no revisions" in r.stderr
