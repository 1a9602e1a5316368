"""Conformance suite (issue #12): bertcli runs the model folders its users already have.

Every layout of ``tests/hub_layouts.py`` (a shrunk, faithful copy of a real Hub repository:
its config.json, weight names, tokenizer files and stray extra files) is built once per
session, run through the CLI (``CliRunner``, ``-f jsonl``) and compared with
``transformers.pipeline`` on the same folder: the same tokens/labels/entity groups and
offsets, scores within 1e-4.

Each comparison computes the transformers reference *first*: a failure there is a fixture
bug, one after it is bertcli's. ``test_fixture_*`` check the folders themselves.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from click.testing import CliRunner

import hub_layouts as H
from bertcli.cli.main import cli

TOL = 1e-4
pytestmark = pytest.mark.filterwarnings("ignore:Tokenizer does not support real words")

EN_MASK = ["The capital of France is {mask}.", "She opened the {mask} and walked into the room."]
ZH_MASK = ["北京是中国的首{mask}。", "今天天气很{mask}，我们去公园散步吧。"]
TEXTS = ["I loved this movie, it was wonderful!", "The food was terrible and the service was even worse.",
         "Café Müller in Zürich serves crème brûlée."]
TWEETS = ["@USER I can't believe it's Monday again 😩 #mondays", "@USER Loving the new album !! 😍 HTTPURL",
          "worst customer service ever"]
PAIRS = [("A man is playing a guitar.", "A man is playing a flute."),
         ("What is the capital of France?", "Paris is the capital of France."),
         ("The hotel room was clean.", "The food was cold and the waiter was rude.")]
NER_TEXTS = ["Angela Merkel visited Paris on Tuesday with Emmanuel Macron.",
             "Microsoft and Google announced new products in San Francisco yesterday.",
             "Reuters reported that the European Union rejected the German proposal.",
             "Schwarzenegger flew from Kalamazoo to Reykjavik with Volkswagen executives.",  # rare words: pieces
             "FC Liverpool signed Xabi Alonso from Real Sociedad in 2004.",  # XLM-R: a lone ▁ before F, X, 2
             "The UEFA final in 東京 was won by FC Porto."]


# ---------------------------------------------------------------- fixtures and helpers

@pytest.fixture(scope="session")
def layout(tmp_path_factory):
    """``layout(name)`` -> the model folder of that layout, built once per session."""
    root = tmp_path_factory.mktemp("hub_layouts")
    built: dict[str, Path] = {}

    def get(name: str) -> Path:
        if name not in built:
            built[name] = H.build(name, root / name)
        return built[name]

    return get


@pytest.fixture(scope="session")
def hub_cache(tmp_path_factory):
    """(HF_HUB_CACHE folder, :func:`hub_layouts.build_hub_cache`'s description of it)."""
    root = tmp_path_factory.mktemp("hf_home")
    cache = root / "hub"
    return cache, H.build_hub_cache(cache, root / "work")


def run_cli(args, env=None, input=None):
    full_env = {"BERTCLI_MODEL": None, "BERTCLI_BACKEND": None, "COLUMNS": "200"}
    full_env.update(env or {})
    res = CliRunner().invoke(cli, [str(a) for a in args], input=input, env=full_env, prog_name="bertcli")
    assert res.exception is None or isinstance(res.exception, SystemExit), \
        f"bertcli raised {type(res.exception).__name__}: {res.exception}"
    return res


def cli_records(args, env=None, input=None) -> list[dict]:
    """Run bertcli with ``-f jsonl``; its records, or a one-line failure with its error."""
    res = run_cli(list(args) + ["-f", "jsonl", "--precision", "8", "-q"], env=env, input=input)
    err = res.stderr.strip().splitlines()
    assert res.exit_code == 0, f"bertcli exited {res.exit_code}: {err[-1] if err else '(no message)'}"
    return [json.loads(line) for line in res.stdout.splitlines()]


def pairs_input(pairs) -> str:
    return "".join(json.dumps({"text": a, "text_pair": b}, ensure_ascii=False) + "\n" for a, b in pairs)


def pipe(task: str, model, **kw):
    """The transformers pipeline on ``model`` in float32 on CPU."""
    import torch
    from transformers import pipeline

    return pipeline(task, model=str(model) if isinstance(model, Path) else model, dtype=torch.float32,
                    device="cpu", **kw)


def assert_ranked(ours: list[dict], ref: list[dict], key: str, what: str) -> None:
    """Same ``key`` at each rank (two entries may swap only when their scores tie), scores within TOL."""
    assert len(ours) == len(ref), f"{what}: {len(ours)} results, transformers {len(ref)}"
    ref_score = {r[key]: r["score"] for r in ref}
    for i, (o, r) in enumerate(zip(ours, ref)):
        if o[key] != r[key]:
            tie = o[key] in ref_score and abs(ref_score[o[key]] - r["score"]) < 1e-6
            assert tie, (f"{what}: rank {i + 1} is {o[key]!r} ({o['score']:.6f}), "
                         f"transformers {r[key]!r} ({r['score']:.6f})")
        assert o["score"] == pytest.approx(r["score"], abs=TOL), \
            f"{what}: {key} {r[key]!r} scored {o['score']:.6f}, transformers {r['score']:.6f}"


# ---------------------------------------------------------------- fill-mask

FILL_MASK = {
    "bert-base-uncased": EN_MASK,
    "bert-base-cased": EN_MASK,
    "bert-base-chinese": ZH_MASK,
    "roberta-base": EN_MASK,
    "distilroberta-base": EN_MASK,
    "albert-base-v2": EN_MASK,
    "modernbert-base": EN_MASK + ["I loved this {mask}, it was wonderful!",
                                  "The food was {mask} and the service was even worse."],
}
TOP_K = 10


def fill_mask_reference(folder, texts, k):
    """The fill-mask pipeline's top ``k`` per text among the ids that have a token.

    Where the embedding matrix has more rows than the tokenizer has tokens (ModernBERT pads
    it to a multiple of 64), the pipeline also ranks the spare rows and returns them with an
    empty ``token_str``; they stand for no token, so they are left out here (their scores
    still count in every softmax, as in the pipeline). Returns (texts with the model's mask,
    predictions per text, how many spare ids the pipeline had put in a top-k).
    """
    p = pipe("fill-mask", folder)
    known = set(p.tokenizer.get_vocab().values())
    spare = max(0, p.model.config.vocab_size - len(known))
    texts = [t.format(mask=p.tokenizer.mask_token) for t in texts]
    refs, dropped = [], 0
    for t in texts:
        r = p(t, top_k=k + spare)
        dropped += sum(1 for x in r[:k] if x["token"] not in known)
        refs.append([x for x in r if x["token"] in known][:k])
    return texts, refs, dropped


@pytest.mark.parametrize("name", list(FILL_MASK))
def test_fill_mask(name, layout):
    d = layout(name)
    texts, ref, _ = fill_mask_reference(d, FILL_MASK[name], TOP_K)
    ours = cli_records(["fill-mask", *texts, "-m", d, "-k", TOP_K])
    assert len(ours) == len(texts)
    for text, rec, r in zip(texts, ours, ref):
        assert rec["text"] == text
        assert len(rec["predictions"]) == 1
        preds = rec["predictions"][0]
        assert_ranked(preds, r, "token", f"{name} {text!r}")
        by_id = {p["token"]: p for p in r}
        for p in preds:
            if p["token"] in by_id:
                assert p["token_str"] == by_id[p["token"]]["token_str"], f"{name}: token {p['token']}"


def test_fixture_modernbert_spare_rows_reach_the_top_k(layout):
    """Fixture check: the pipeline ranks some of ModernBERT's spare rows in a top-k above."""
    _, _, dropped = fill_mask_reference(layout("modernbert-base"), FILL_MASK["modernbert-base"], TOP_K)
    assert dropped > 0


# ---------------------------------------------------------------- nsp

def test_nsp_bert_base_uncased(layout):
    """bert-base-uncased says BertForMaskedLM but carries the NSP head (cls.seq_relationship):
    bertcli nsp must give BertForNextSentencePrediction's softmax, index 0 = IsNext."""
    import torch
    from transformers import AutoTokenizer, BertForNextSentencePrediction

    d = layout("bert-base-uncased")
    tok = AutoTokenizer.from_pretrained(str(d))
    model, info = BertForNextSentencePrediction.from_pretrained(str(d), output_loading_info=True)
    assert not info["missing_keys"], f"fixture: transformers misses {info['missing_keys']}"
    model.eval()
    ref = []
    with torch.inference_mode():
        for a, b in PAIRS:
            p = model(**tok(a, b, return_tensors="pt")).logits.softmax(-1)[0, 0].item()
            ref.append(p)
    args = [x for pair in PAIRS for x in pair]
    ours = cli_records(["nsp", *args, "-m", d])
    assert len(ours) == len(PAIRS)
    for rec, p, (a, b) in zip(ours, ref, PAIRS):
        assert (rec["text"], rec["text_pair"]) == (a, b)
        assert rec["score"] == pytest.approx(p, abs=TOL), f"P(IsNext) {rec['score']:.6f}, transformers {p:.6f}"
        assert rec["is_next"] == (p >= 0.5)


# ---------------------------------------------------------------- classify / sentiment

def _normalised(label: str) -> str:
    """The sentiment each imitated model's card gives its labels."""
    table = {"NEGATIVE": "negative", "POSITIVE": "positive", "1 star": "negative", "2 stars": "negative",
             "3 stars": "neutral", "4 stars": "positive", "5 stars": "positive", "LABEL_0": "negative",
             "LABEL_1": "neutral", "LABEL_2": "positive", "NEG": "negative", "NEU": "neutral", "POS": "positive"}
    return table[label]


#: layout -> (command, texts or sentence pairs, pipeline kwargs)
CLASSIFY = {
    "distilbert-sst2": ("sentiment", TEXTS, {}),
    "nlptown-sentiment": ("sentiment", TEXTS, {}),
    "cardiffnlp-twitter-roberta": ("sentiment", TWEETS, {}),
    "bertweet-sentiment": ("sentiment", TWEETS, {}),
    "electra-emotion": ("classify", TEXTS, {}),
    "modernbert-classifier": ("classify", TEXTS, {}),
    "roberta-go-emotions": ("classify", TEXTS, {}),  # multi-label: sigmoid per label
    "trainer-checkpoint": ("classify", TEXTS, {}),
    "fp16": ("classify", TEXTS, {}),
    "deberta-v3-nli": ("classify", PAIRS, {}),
    "deberta-v3-spm-only": ("classify", PAIRS, {}),
    "bert-stsb-regression": ("classify", PAIRS, {}),  # problem_type regression: the raw value
    # one output, no problem_type: bertcli reports the raw logit (README); the pipeline
    # would apply a sigmoid by default, so it is asked for the raw value
    "cross-encoder-msmarco": ("classify", PAIRS, {"function_to_apply": "none"}),
    "modernbert-reranker-fp16": ("classify", PAIRS, {"function_to_apply": "none"}),
}


@pytest.mark.parametrize("name", list(CLASSIFY))
def test_classify(name, layout):
    command, items, kw = CLASSIFY[name]
    d = layout(name)
    paired = isinstance(items[0], tuple)
    ref_pipe = pipe("text-classification", d, top_k=None, **kw)
    ref = [ref_pipe({"text": t[0], "text_pair": t[1]} if paired else t) for t in items]
    ref = [r[0] if r and isinstance(r[0], list) else r for r in ref]  # one text: [[...]] in transformers 5
    if paired:
        ours = cli_records([command, "-m", d, "--pairs", "-i", "-", "--input-format", "jsonl", "-k", "all"],
                           input=pairs_input(items))
    else:
        ours = cli_records([command, *items, "-m", d, "-k", "all"])
    assert len(ours) == len(items)
    for item, rec, r in zip(items, ours, ref):
        assert_ranked(rec["labels"], r, "label", f"{name} {item!r}")
        assert rec["label"] == rec["labels"][0]["label"]
        assert rec["score"] == pytest.approx(r[0]["score"], abs=TOL)
        if command == "sentiment":
            assert rec["sentiment"] == _normalised(r[0]["label"]), f"{name}: {r[0]['label']} -> {rec['sentiment']}"
            for x in rec["labels"]:
                assert x["sentiment"] == _normalised(x["label"]), f"{name}: {x}"


@pytest.mark.parametrize("name", ["fp16", "modernbert-reranker-fp16"])
def test_fixture_fp16_loads_in_its_own_dtype(name, layout):
    """Fixture check: the float16 checkpoints also run in transformers with their own dtype."""
    import torch
    from transformers import pipeline

    p = pipeline("text-classification", model=str(layout(name)), device="cpu")
    assert p.model.dtype in (torch.float16, torch.float32)
    assert p(TEXTS[0])[0]["label"] in p.model.config.id2label.values()


# ---------------------------------------------------------------- ner

def _span(text: str, start: int, end: int) -> tuple[int, int]:
    """An entity's offsets without surrounding whitespace (bertcli's cover the word itself:
    ``word == text[start:end]``)."""
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return start, end


METASPACE = "\u2581"


def ner_reference(folder, texts, agg):
    """The token-classification pipeline's entities, where its own offsets are right.

    One place where they are not: SentencePiece's word marker as a token of its own (``▁``
    before ``F`` in ``▁ F C``: XLM-R, DeBERTa-v3, CamemBERT make one before a word whose
    first piece has no ``▁``). The tokenizer maps it onto the next token's first character,
    so the pipeline reports ``▁`` and ``F`` at the same offsets, and its fallback word
    heuristic makes the marker a word of its own. The marker stands for the space before
    the word and covers none of its characters; the tokenizer's ``word_ids`` put it in the
    word after it. So the pipeline's own code runs here with that token's span made empty
    (at the next token's start) and the next token made its word's continuation; the
    pipeline's aggregation does the rest. Entities left empty are dropped, spans trimmed of
    whitespace (:func:`_span`).
    """
    p = pipe("token-classification", folder, aggregation_strategy=agg)
    gather = p.gather_pre_entities

    def gather_fixed(sentence, *args, **kw):
        pre = gather(sentence, *args, **kw)
        for i, e in enumerate(pre):
            if e["word"] == METASPACE:
                nxt = pre[i + 1] if i + 1 < len(pre) else None
                s = nxt["start"] if nxt is not None and nxt["start"] is not None else e["start"]
                if e["start"] == s or sentence[e["start"]:e["end"]].isspace():
                    e["start"] = e["end"] = s
                    if nxt is not None:
                        nxt["is_subword"] = True
        return pre

    p.gather_pre_entities = gather_fixed
    out = []
    key = "entity" if agg == "none" else "entity_group"
    for text in texts:
        ents = []
        for e in p(text):
            start, end = _span(text, e["start"], e["end"])
            if end > start:
                ents.append(dict(e, start=start, end=end, key=e[key]))
        out.append(ents)
    return out


NER = [
    ("dslim-bert-base-NER", "simple"),
    ("dslim-bert-base-NER", "first"),
    ("dslim-bert-base-NER", "none"),
    ("xlmr-ner", "simple"),
    ("xlmr-ner", "first"),
    ("xlmr-ner", "average"),
    ("xlmr-ner", "none"),
    ("sharded", "max"),
]


def _compare_ner(name, agg, texts, ours, ref):
    assert len(ours) == len(texts)
    key = "entity" if agg == "none" else "entity_group"
    for text, rec, r in zip(texts, ours, ref):
        want = [(e["key"], e["start"], e["end"]) for e in r]
        got = [(e[key], e["start"], e["end"]) for e in rec["entities"]]
        assert got == want, f"{name} ({agg}) {text!r}: entities {got}, transformers {want}"
        for e, w in zip(rec["entities"], r):
            assert e["score"] == pytest.approx(w["score"], abs=TOL), f"{name} ({agg}): {e}, transformers {w}"
            assert e["word"] == text[e["start"]:e["end"]]
            if agg == "none":
                assert e["index"] == w["index"]


@pytest.mark.parametrize("name,agg", NER)
def test_ner(name, agg, layout):
    d = layout(name)
    ref = ner_reference(d, NER_TEXTS, agg)
    ours = cli_records(["ner", *NER_TEXTS, "-m", d, "--aggregation", agg])
    _compare_ner(name, agg, NER_TEXTS, ours, ref)


#: layouts whose family gets a token-classification head in :func:`test_ner_every_family`
#: (each family's own config, tokenizer files and weight names; the head added with random
#: weights by transformers' own ``...ForTokenClassification`` class).
NER_FAMILIES = ["bert-base-cased", "distilbert-sst2", "roberta-base", "albert-base-v2", "electra-emotion",
                "deberta-v3-nli", "modernbert-base"]


@pytest.mark.parametrize("name", NER_FAMILIES)
def test_ner_every_family(name, layout, tmp_path):
    """``ner`` on a token classifier of every family bertcli runs (native or transformers'
    classes), against the pipeline with ``simple`` aggregation."""
    import shutil

    import torch
    from transformers import AutoConfig, AutoModelForTokenClassification

    src = layout(name)
    d = tmp_path / f"{name}-ner"
    d.mkdir()
    for f in src.iterdir():
        if f.is_file() and not f.name.endswith((".safetensors", ".json")) or f.name.startswith("tokenizer") \
                or f.name in ("special_tokens_map.json", "added_tokens.json", "vocab.json"):
            shutil.copy(f, d / f.name)
    cfg = AutoConfig.from_pretrained(str(src))
    cfg.id2label = dict(enumerate(H.HRL_LABELS))
    cfg.label2id = {v: k for k, v in cfg.id2label.items()}
    cfg.problem_type = None
    torch.manual_seed(0)
    AutoModelForTokenClassification.from_config(cfg).save_pretrained(str(d))
    for stub in ("pytorch_model.bin", "tf_model.h5", "flax_model.msgpack", "rust_model.ot", "model.onnx",
                 "training_args.bin"):
        (d / stub).unlink(missing_ok=True)
    from transformers import AutoTokenizer

    # Where several tokens share a character (byte-level BPE cuts 東 into byte pieces), the
    # pipeline reports overlapping entities on it; bertcli gives each character to one entity
    # (README). Those texts are checked for that, the others against the pipeline.
    tok = AutoTokenizer.from_pretrained(str(d))
    shared = [t for t in NER_TEXTS if _tokens_share_a_character(tok, t)]
    texts = [t for t in NER_TEXTS if t not in shared]
    ref = ner_reference(d, texts, "simple")
    ours = cli_records(["ner", *texts, "-m", d, "--aggregation", "simple"])
    _compare_ner(name, "simple", texts, ours, ref)
    for t, rec in zip(shared, cli_records(["ner", *shared, "-m", d, "--aggregation", "simple"]) if shared else []):
        spans = [(e["start"], e["end"]) for e in rec["entities"]]
        assert all(a[1] <= b[0] for a, b in zip(spans, spans[1:])), (t, spans)
        assert all(e["word"] == t[e["start"]:e["end"]] and e["word"].strip() == e["word"] for e in rec["entities"])


def _tokens_share_a_character(tok, text: str) -> bool:
    offs = [o for o in tok(text, return_offsets_mapping=True)["offset_mapping"] if o[1] > o[0]]
    return any(b[0] < a[1] for a, b in zip(offs, offs[1:]))


def test_fixture_xlmr_has_bare_word_markers(layout):
    """Fixture check: the XLM-R tokenizer makes a lone ``▁`` in the NER texts (the case above)."""
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(layout("xlmr-ner")))
    assert any(METASPACE in tok.tokenize(t) for t in NER_TEXTS)


# ---------------------------------------------------------------- HF cache, addressed by hub id

SST2 = "distilbert/distilbert-base-uncased-finetuned-sst-2-english"
NER_REPO = "dslim/bert-base-NER"


def _hub_env(monkeypatch, cache: Path) -> dict:
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return {"HF_HUB_CACHE": str(cache), "HF_HUB_OFFLINE": "1"}


def test_fixture_hub_cache_is_what_huggingface_hub_writes(hub_cache):
    """Fixture check: huggingface_hub and transformers read the cache by hub id and revision."""
    from huggingface_hub import scan_cache_dir, try_to_load_from_cache
    from transformers import AutoConfig

    cache, repos = hub_cache
    info = scan_cache_dir(cache)
    assert not info.warnings, info.warnings
    found = {r.repo_id: r for r in info.repos}
    assert set(found) == set(repos)
    assert len(found[SST2].revisions) == 2
    assert {rev.commit_hash for rev in found[SST2].revisions if rev.refs} == {repos[SST2]["main"]}
    for repo_id, desc in repos.items():
        for commit, snap in desc["snapshots"].items():
            p = try_to_load_from_cache(repo_id, "config.json", cache_dir=str(cache), revision=commit)
            assert p == str(snap / "config.json")
            for f in snap.iterdir():
                assert f.is_symlink() and not os.path.isabs(os.readlink(f))
                assert f.resolve().parent == cache / ("models--" + repo_id.replace("/", "--")) / "blobs"
    old = AutoConfig.from_pretrained(SST2, cache_dir=str(cache), revision=repos[SST2]["old"], local_files_only=True)
    new = AutoConfig.from_pretrained(SST2, cache_dir=str(cache), local_files_only=True)
    assert old.id2label == {0: "LABEL_0", 1: "LABEL_1"} and new.id2label == {0: "NEGATIVE", 1: "POSITIVE"}


def test_hub_id_classify(hub_cache, monkeypatch):
    cache, repos = hub_cache
    env = _hub_env(monkeypatch, cache)
    snap = repos[SST2]["snapshots"][repos[SST2]["main"]]
    ref = pipe("text-classification", snap, top_k=None)(TEXTS)
    ours = cli_records(["classify", *TEXTS, "-m", SST2, "-k", "all"], env=env)
    assert len(ours) == len(TEXTS)
    for t, rec, r in zip(TEXTS, ours, ref):
        assert_ranked(rec["labels"], r, "label", f"{SST2} {t!r}")


def test_hub_snapshot_folder(hub_cache):
    """A snapshot folder passed as a path (its files link to ``../../blobs``, outside it but
    inside the cache repo)."""
    cache, repos = hub_cache
    snap = repos[NER_REPO]["snapshots"][repos[NER_REPO]["main"]]
    ref = ner_reference(snap, NER_TEXTS, "first")
    ours = cli_records(["ner", *NER_TEXTS, "-m", snap, "--aggregation", "first"])
    _compare_ner(NER_REPO, "first", NER_TEXTS, ours, ref)


def test_hub_id_revision(hub_cache, monkeypatch):
    """``--revision <older commit>`` runs that snapshot (other weights, LABEL_0/LABEL_1), not refs/main."""
    cache, repos = hub_cache
    env = _hub_env(monkeypatch, cache)
    old = repos[SST2]["old"]
    ref = pipe("text-classification", repos[SST2]["snapshots"][old], top_k=None)(TEXTS)
    ours = cli_records(["classify", *TEXTS, "-m", SST2, "--revision", old, "-k", "all"], env=env)
    assert len(ours) == len(TEXTS)
    for t, rec, r in zip(TEXTS, ours, ref):
        assert {x["label"] for x in rec["labels"]} == {"LABEL_0", "LABEL_1"}
        assert_ranked(rec["labels"], r, "label", f"{SST2}@{old[:8]} {t!r}")


def test_hub_id_ner(hub_cache, monkeypatch):
    cache, repos = hub_cache
    env = _hub_env(monkeypatch, cache)
    snap = repos[NER_REPO]["snapshots"][repos[NER_REPO]["main"]]
    ref = ner_reference(snap, NER_TEXTS, "simple")
    ours = cli_records(["ner", *NER_TEXTS, "-m", NER_REPO, "--aggregation", "simple"], env=env)
    _compare_ner(NER_REPO, "simple", NER_TEXTS, ours, ref)


def test_hub_id_missing(hub_cache, monkeypatch, tmp_path):
    """A hub id that is not in the cache: exit 1, one line saying where bertcli looked."""
    cache, _ = hub_cache
    env = _hub_env(monkeypatch, cache)
    monkeypatch.chdir(tmp_path)  # no ./org/absent folder either
    res = run_cli(["classify", "some text", "-m", "org/absent", "-f", "jsonl"], env=env)
    lines = res.stderr.strip().splitlines()
    assert res.exit_code == 1, f"exit {res.exit_code}: {lines[-1] if lines else ''}"
    assert res.stdout == ""
    assert len(lines) == 1 and lines[0].startswith("Error: "), res.stderr
    assert "org/absent" in lines[0] and str(cache) in lines[0], lines[0]


# ---------------------------------------------------------------- the fixtures themselves

def _header(path: Path) -> dict:
    with open(path, "rb") as f:
        n = int.from_bytes(f.read(8), "little")
        return json.loads(f.read(n))


def test_fixture_weight_names(layout):
    """Fixture check: the real repos' weight names and dtypes are what the files hold."""
    h = _header(layout("bert-base-uncased") / "model.safetensors")
    assert "bert.embeddings.LayerNorm.gamma" in h and "bert.embeddings.LayerNorm.weight" not in h
    assert {"cls.seq_relationship.weight", "cls.predictions.decoder.weight", "cls.predictions.bias"} <= set(h)
    cfg = json.loads((layout("bert-base-uncased") / "config.json").read_text())
    assert cfg["architectures"] == ["BertForMaskedLM"]
    h = _header(layout("fp16") / "model.safetensors")
    assert {v["dtype"] for k, v in h.items() if k != "__metadata__"} == {"F16"}
    assert json.loads((layout("fp16") / "config.json").read_text())["torch_dtype"] == "float16"
    d = layout("sharded")
    index = json.loads((d / "model.safetensors.index.json").read_text())
    shards = sorted(set(index["weight_map"].values()))
    assert shards == ["model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"]
    assert not (d / "model.safetensors").exists()
    assert set(index["weight_map"]) == {k for s in shards for k in _header(d / s) if k != "__metadata__"}
    cfg = json.loads((layout("deberta-v3-spm-only") / "config.json").read_text())
    assert cfg["type_vocab_size"] == 0
    spm_only = layout("deberta-v3-spm-only")
    assert sorted(p.name for p in spm_only.iterdir() if "token" in p.name or p.suffix == ".model") \
        == ["spm.model", "tokenizer_config.json"]
    c = layout("trainer-checkpoint")
    assert c.name == "checkpoint-500"
    assert {"optimizer.pt", "scheduler.pt", "rng_state.pth", "trainer_state.json", "training_args.bin",
            "model.safetensors"} <= {p.name for p in c.iterdir()}
    assert not (layout("bertweet-sentiment") / "tokenizer.json").exists()
    from tokenizers import Tokenizer

    mb = layout("modernbert-base")
    n = Tokenizer.from_file(str(mb / "tokenizer.json")).get_vocab_size(with_added_tokens=True)
    assert json.loads((mb / "config.json").read_text())["vocab_size"] >= n + 64


def test_fixture_weights_load_completely(layout):
    """Fixture check: transformers finds every weight of each layout's own architecture (a
    missing one would be drawn at random on each load and make the reference meaningless)."""
    import transformers

    for name in H.LAYOUTS:
        d = layout(name)
        arch = json.loads((d / "config.json").read_text())["architectures"][0]
        _, info = getattr(transformers, arch).from_pretrained(str(d), output_loading_info=True)
        assert not info["missing_keys"] and not info["mismatched_keys"], (name, info)


def test_fixture_tokenizers(layout):
    """Fixture check: every layout's tokenizer, as transformers loads it, knows the test words
    (no [UNK]), finds its mask token, and splits rare words into several pieces."""
    from transformers import AutoTokenizer

    for name in H.LAYOUTS:
        tok = AutoTokenizer.from_pretrained(str(layout(name)))
        ids = tok("The capital of France is " + tok.mask_token)["input_ids"]
        assert tok.unk_token_id not in ids and tok.mask_token_id in ids and len(ids) <= 10, \
            (name, tok.convert_ids_to_tokens(ids))
        assert len(tok.tokenize("Kalamazoo Reykjavik")) > 2, name


def test_fixture_stubs_are_never_loadable(layout):
    """Fixture check: the pickle stubs fail if anything unpickles them (so a pass proves nothing did)."""
    import pickle

    with pytest.raises(ModuleNotFoundError):
        pickle.loads((layout("bert-base-uncased") / "pytorch_model.bin").read_bytes())
