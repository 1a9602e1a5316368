"""Fixture folders that reproduce the layouts of real Hugging Face Hub repositories, shrunk.

Each builder writes one model folder as a user has it after downloading the repo it imitates
(named in its docstring): the real repo's ``config.json`` fields and values (architectures,
model_type, labels, token ids, dtype, version, task parameters, ...) with only the sizes
shrunk (hidden 32, 2 layers, 2 heads, a vocabulary of one to three thousand tokens); the real weight
names, written with the ``safetensors`` library (converted from a transformers model's
``state_dict`` where the real names differ, e.g. bert-base-uncased's ``LayerNorm.gamma``);
the real repo's tokenizer files, trained small on a few hundred lines (``../shared/data``
when present, else the lines below); and the extra files the repo carries (README.md,
.gitattributes, pickle/TF/Flax weight stubs that a loader must ignore and never unpickle,
Trainer state, ...).

Weights are random but drawn with a large standard deviation (``INIT_STD``; config.json keeps
the real ``initializer_range``) so that scores are peaked and rankings are not decided by
rounding noise. Everything is deterministic: same files on every run.

Entry points: :data:`LAYOUTS` (name -> builder), :func:`build` (one layout into a folder) and
:func:`build_hub_cache` (a ``HF_HUB_CACHE`` holding some of them, addressed by hub id).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
from collections import Counter
from functools import lru_cache
from pathlib import Path

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"

#: std of the random weights (real checkpoints say initializer_range 0.02: scores would be
#: nearly uniform and top-k orders decided by float noise).
INIT_STD = 0.5

# ---------------------------------------------------------------- corpus

#: Always part of the corpus: the words the conformance tests use, tweets, accents, Chinese.
BUILTIN_LINES = [
    "The capital of France is Paris and the capital of Germany is Berlin.",
    "Angela Merkel visited Paris on Tuesday with Emmanuel Macron.",
    "Angela Merkel met Emmanuel Macron in Berlin on Monday.",
    "I loved this movie, it was wonderful and moving.",
    "I loved it! The best film I have seen this year.",
    "The food was terrible and the service was even worse.",
    "The food was cold and the waiter was rude.",
    "He opened the fridge. It was empty.",
    "She opened the door and walked into the room.",
    "She opened the window and looked at the garden.",
    "Barack Obama was born in Hawaii and studied at Columbia University.",
    "The quick brown fox jumps over the lazy dog near the river bank.",
    "Microsoft and Google announced new products in San Francisco yesterday.",
    "Apple opened a new office in London and Tokyo.",
    "Café Müller in Zürich serves crème brûlée to naïve tourists.",
    "Reuters reported that the European Union rejected the German proposal.",
    "The United Nations met in New York to discuss the crisis.",
    "It was the best of times, it was the worst of times.",
    "Alice was beginning to get very tired of sitting by her sister on the bank.",
    "A man is playing a guitar. A man is playing a flute.",
    "A woman is slicing an onion. Someone is cutting an onion.",
    "How many people live in Berlin? Berlin has about four million inhabitants.",
    "What is the capital of France? Paris is the capital of France.",
    "The new phone is great, the battery lasts all day.",
    "Worst purchase ever, it broke after two days.",
    "The hotel room was clean and the staff were friendly.",
    "Not bad, but not great either.",
    "This is absolutely fantastic news for everyone!",
    "I am so angry and sad about what happened.",
    "Thank you so much, I really appreciate your help!",
    "@USER I can't believe it's Monday again 😩 #mondays",
    "@USER @USER Loving the new album !! 😍 HTTPURL",
    "Just landed in New York , so excited !! #travel HTTPURL",
    "worst customer service ever @USER fix your app 😡",
    "good morning everyone ☀️ have a great day",
    "lol this is the best thing I have seen all week 😂😂",
    "The weather in London is cold and rainy today.",
    "Der Vertrag wurde in Berlin unterzeichnet.",
    "La ville de Paris est la capitale de la France.",
    "El presidente viajó a Madrid el lunes.",
    "東京 は 日本 の 首都 です 。",
    "北京是中国的首都，上海是中国最大的城市。",
    "今天天气很好，我们去公园散步吧。",
    "这家酒店的服务很好，房间也很干净。",
    "房间太小了，服务员态度也很差。",
    "我喜欢这部电影，演员的表演非常精彩。",
    "unbelievable unhappiness internationalization tokenization preprocessing",
    "Emoji 😀 and symbols ™ © appear in tweets from New York.",
]


def _gutenberg_body(path: Path, n: int) -> list[str]:
    lines = path.read_text(encoding="utf-8-sig").splitlines()
    start = next((i for i, ln in enumerate(lines) if ln.startswith("*** START OF")), 0) + 1
    return [ln.strip() for ln in lines[start:start + 4 * n] if ln.strip()][:n]


@lru_cache(maxsize=None)
def corpus() -> tuple[str, ...]:
    """The training lines of every tokenizer: :data:`BUILTIN_LINES` (three times, so their
    words make the vocabulary) plus a few hundred lines of ``../shared/data`` when present."""
    lines = list(BUILTIN_LINES) * 3
    if not SHARED.is_dir():
        return tuple(lines)
    book = SHARED / "books" / "pg11_carroll_alices_adventures_in_wonderland.txt"
    if book.is_file():
        lines += _gutenberg_body(book, 300)
    conll = SHARED / "conll2003" / "train.txt"
    if conll.is_file():
        sent, n = [], 0
        with open(conll, encoding="utf-8") as f:
            for ln in f:
                if ln.strip() and not ln.startswith("-DOCSTART-"):
                    sent.append(ln.split()[0])
                elif sent:
                    lines.append(" ".join(sent))
                    sent, n = [], n + 1
                    if n >= 300:
                        break
    sst = SHARED / "sst2" / "train.tsv"
    if sst.is_file():
        with open(sst, encoding="utf-8") as f:
            next(f)
            lines += [next(f).split("\t")[0].strip() for _ in range(200)]
    zh = SHARED / "chnsenticorp_htl" / "ChnSentiCorp_htl_all.csv"
    if zh.is_file():
        with open(zh, encoding="utf-8") as f:
            next(f)
            lines += [ln.split(",", 1)[1].strip().strip('"')[:80] for _, ln in zip(range(150), f)]
    return tuple(lines)


def english_lines() -> list[str]:
    return [ln for ln in corpus() if not re.search(r"[\u3040-\u9fff]", ln)]


# ---------------------------------------------------------------- small file helpers

def write_json(path: Path, obj, indent: int = 2) -> None:
    path.write_text(json.dumps(obj, indent=indent, ensure_ascii=False) + "\n", encoding="utf-8")


GITATTRIBUTES = """*.7z filter=lfs diff=lfs merge=lfs -text
*.arrow filter=lfs diff=lfs merge=lfs -text
*.bin filter=lfs diff=lfs merge=lfs -text
*.bz2 filter=lfs diff=lfs merge=lfs -text
*.ckpt filter=lfs diff=lfs merge=lfs -text
*.ftz filter=lfs diff=lfs merge=lfs -text
*.gz filter=lfs diff=lfs merge=lfs -text
*.h5 filter=lfs diff=lfs merge=lfs -text
*.joblib filter=lfs diff=lfs merge=lfs -text
*.lfs.* filter=lfs diff=lfs merge=lfs -text
*.model filter=lfs diff=lfs merge=lfs -text
*.msgpack filter=lfs diff=lfs merge=lfs -text
*.onnx filter=lfs diff=lfs merge=lfs -text
*.ot filter=lfs diff=lfs merge=lfs -text
*.parquet filter=lfs diff=lfs merge=lfs -text
*.pb filter=lfs diff=lfs merge=lfs -text
*.pt filter=lfs diff=lfs merge=lfs -text
*.pth filter=lfs diff=lfs merge=lfs -text
*.safetensors filter=lfs diff=lfs merge=lfs -text
*.tflite filter=lfs diff=lfs merge=lfs -text
*.tgz filter=lfs diff=lfs merge=lfs -text
*.xz filter=lfs diff=lfs merge=lfs -text
*.zip filter=lfs diff=lfs merge=lfs -text
*tfevents* filter=lfs diff=lfs merge=lfs -text
"""

#: A pickle that names a module which does not exist: unpickling it fails loudly instead of
#: running anything, so a loader that opens one is caught; a loader that ignores it is fine.
PICKLE_STUB = b"\x80\x02cbertcli_fixture_stub\nnever_unpickle_this\nq\x00)Rq\x01."
STUBS = {
    "pytorch_model.bin": PICKLE_STUB,
    "training_args.bin": PICKLE_STUB,
    "optimizer.pt": PICKLE_STUB,
    "scheduler.pt": PICKLE_STUB,
    "rng_state.pth": PICKLE_STUB,
    "tf_model.h5": b"\x89HDF\r\n\x1a\n" + b"\0" * 56 + b"stub: TF weights are never read",
    "flax_model.msgpack": b"\x81\xa4stub\xc0",
    "rust_model.ot": b"PK\x03\x04stub: rust-bert weights are never read",
    "model.onnx": b"\x08\x07stub: ONNX export is never read",
}


def add_extras(folder: Path, repo: str, *stubs: str, card: str = "", tags=("transformers",),
               pipeline_tag: str | None = None, language: str = "en", license: str = "apache-2.0") -> None:
    """README.md (model card with YAML front matter), .gitattributes and stub files."""
    meta = [f"language: {language}", f"license: {license}", "tags:"] + [f"- {t}" for t in tags]
    if pipeline_tag:
        meta.append(f"pipeline_tag: {pipeline_tag}")
    (folder / "README.md").write_text("---\n" + "\n".join(meta) + "\n---\n\n" + f"# {repo}\n\n"
                                      + (card or f"Fixture imitating the layout of `{repo}`: random weights.")
                                      + "\n", encoding="utf-8")
    (folder / ".gitattributes").write_text(GITATTRIBUTES, encoding="utf-8")
    for name in stubs:
        (folder / name).write_bytes(STUBS[name])


# ---------------------------------------------------------------- weights

_META_KEYS = ("architectures", "transformers_version", "torch_dtype", "_name_or_path", "_num_labels",
              "model_type", "dtype")


def random_state(cfg: dict, arch: str, seed: int = 0) -> dict:
    """The ``state_dict`` of a randomly initialised transformers ``arch`` built from the
    config dict ``cfg`` (as written to config.json), weights of std :data:`INIT_STD`."""
    import torch
    import transformers as tf

    kw = {k: v for k, v in cfg.items() if k not in _META_KEYS}
    kw["initializer_range"] = INIT_STD
    config = tf.AutoConfig.for_model(cfg["model_type"], **kw)
    torch.manual_seed(seed)
    model = getattr(tf, arch)(config)
    model.eval()
    return {k: v.detach().clone().contiguous() for k, v in model.state_dict().items()}


def save_weights(path: Path, sd: dict, dtype=None) -> None:
    """Write ``sd`` with the safetensors library (``format: pt`` metadata, as transformers does)."""
    from safetensors.torch import save_file

    out = {k: (v.to(dtype) if dtype is not None and v.is_floating_point() else v).contiguous() for k, v in sd.items()}
    save_file(out, str(path), metadata={"format": "pt"})


def legacy_layernorm_names(sd: dict) -> dict:
    """``LayerNorm.weight/bias`` -> ``LayerNorm.gamma/beta``: the names in the checkpoints
    converted from Google's TF BERT by pytorch-pretrained-bert (bert-base-uncased, -cased, ...)."""
    out = {}
    for k, v in sd.items():
        k = re.sub(r"LayerNorm\.weight$", "LayerNorm.gamma", k)
        k = re.sub(r"LayerNorm\.bias$", "LayerNorm.beta", k)
        out[k] = v
    return out


def drop(sd: dict, *names: str) -> dict:
    """``sd`` without the tensors ``names`` (weights a repo does not store, e.g. tied copies)."""
    return {k: v for k, v in sd.items() if k not in names}


# ---------------------------------------------------------------- tokenizers: WordPiece

def bert_words(lines, lowercase: bool) -> Counter:
    """Words as BERT's basic tokenizer splits them (tokenizers' BertNormalizer + BertPreTokenizer)."""
    from tokenizers import normalizers, pre_tokenizers

    norm = normalizers.BertNormalizer(clean_text=True, handle_chinese_chars=True, strip_accents=None,
                                      lowercase=lowercase)
    pre = pre_tokenizers.BertPreTokenizer()
    return Counter(w for ln in lines for w, _ in pre.pre_tokenize_str(norm.normalize_str(ln)))


def wordpiece_vocab(lines, lowercase: bool, n_words: int = 700, head: str = "bert") -> list[str]:
    """A deterministic WordPiece vocabulary with the real BERT id layout.

    ``head="bert"``: ``[PAD]`` 0, ``[unused0..98]`` 1-99, ``[UNK]`` 100, ``[CLS]`` 101,
    ``[SEP]`` 102, ``[MASK]`` 103 (bert-base-uncased; the cased/multilingual/Chinese vocabs
    number their unused tokens from 1, ``head="bert1"``). Then every character alone and as a
    ``##`` piece, frequent word endings as ``##`` pieces and the ``n_words`` most frequent
    words (count, then alphabetical order), so rare words split into several pieces.
    """
    words = bert_words(lines, lowercase)
    first = 0 if head == "bert" else 1
    vocab = ["[PAD]"] + [f"[unused{i}]" for i in range(first, first + 99)] + ["[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    chars = Counter(c for w, n in words.items() for c in w for _ in range(n))
    ordered_chars = [c for c, _ in sorted(chars.items(), key=lambda kv: (-kv[1], kv[0]))]
    vocab += ordered_chars
    frequent = [w for w, _ in sorted(words.items(), key=lambda kv: (-kv[1], kv[0])) if len(w) > 1][:n_words]
    ends = Counter()
    for w, n in words.items():
        if w not in frequent and len(w) > 4:
            for k in (2, 3, 4):
                ends[w[-k:]] += n
    vocab += [w for w in frequent]
    vocab += ["##" + e for e, n in sorted(ends.items(), key=lambda kv: (-kv[1], kv[0]))[:80] if n >= 2]
    vocab += ["##" + c for c in ordered_chars]
    return list(dict.fromkeys(vocab))


def write_vocab_txt(folder: Path, vocab: list[str]) -> None:
    (folder / "vocab.txt").write_text("\n".join(vocab) + "\n", encoding="utf-8")


def bert_tokenizer_json(folder: Path, lowercase: bool, strip_accents=None) -> None:
    """tokenizer.json as the fast BERT tokenizer writes it (BertNormalizer, BertPreTokenizer,
    WordPiece, the [CLS] $A [SEP] $B:1 [SEP]:1 template)."""
    from tokenizers import BertWordPieceTokenizer

    tok = BertWordPieceTokenizer(str(folder / "vocab.txt"), lowercase=lowercase, strip_accents=strip_accents)
    tok.save(str(folder / "tokenizer.json"))


BERT_SPECIALS = {"unk_token": "[UNK]", "sep_token": "[SEP]", "pad_token": "[PAD]", "cls_token": "[CLS]",
                 "mask_token": "[MASK]"}


# ---------------------------------------------------------------- tokenizers: byte-level BPE

@lru_cache(maxsize=None)
def bytelevel_bpe(vocab_size: int, specials: tuple[str, ...]) -> tuple[dict, tuple[str, ...]]:
    """A byte-level BPE (GPT-2/RoBERTa style) trained on the corpus: (vocab, merges)."""
    import tempfile

    from tokenizers import ByteLevelBPETokenizer

    tok = ByteLevelBPETokenizer(add_prefix_space=False)
    tok.train_from_iterator(english_lines(), vocab_size=vocab_size, min_frequency=2, special_tokens=list(specials),
                            show_progress=False)
    with tempfile.TemporaryDirectory() as d:
        tok.save_model(d)
        vocab = json.loads(Path(d, "vocab.json").read_text(encoding="utf-8"))
        merges = Path(d, "merges.txt").read_text(encoding="utf-8").splitlines()
    merges = [m for m in merges if m and not m.startswith("#version")]
    return vocab, tuple(merges)


def write_roberta_bpe(folder: Path, vocab_size: int = 1000) -> dict:
    """vocab.json + merges.txt as fairseq's GPT-2 BPE for RoBERTa: ``<s>`` 0, ``<pad>`` 1,
    ``</s>`` 2, ``<unk>`` 3, ..., ``<mask>`` last; merges.txt with its ``#version: 0.2`` line."""
    vocab, merges = bytelevel_bpe(vocab_size, ("<s>", "<pad>", "</s>", "<unk>"))
    vocab = dict(vocab)
    vocab["<mask>"] = len(vocab)
    (folder / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False), encoding="utf-8")
    (folder / "merges.txt").write_text("#version: 0.2\n" + "\n".join(merges) + "\n", encoding="utf-8")
    return vocab


def roberta_tokenizer_json(folder: Path) -> None:
    """tokenizer.json as transformers' converter wrote it for roberta-base from vocab.json +
    merges.txt: ByteLevel pre-tokenizer (no prefix space, trim_offsets), RobertaProcessing
    ``<s> A </s></s> B </s>``, ByteLevel decoder, ``<mask>`` stripping the space on its left."""
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, processors

    vocab = json.loads((folder / "vocab.json").read_text(encoding="utf-8"))
    merges = [tuple(m.split(" ")) for m in (folder / "merges.txt").read_text(encoding="utf-8").splitlines()
              if m and not m.startswith("#version")]
    tok = Tokenizer(models.BPE(vocab=vocab, merges=merges, continuing_subword_prefix="", end_of_word_suffix="",
                               fuse_unk=False))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True)
    tok.post_processor = processors.RobertaProcessing(("</s>", vocab["</s>"]), ("<s>", vocab["<s>"]),
                                                      trim_offsets=True, add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.add_special_tokens([AddedToken(t, special=True, normalized=True) for t in ("<s>", "<pad>", "</s>", "<unk>")]
                           + [AddedToken("<mask>", special=True, normalized=False, lstrip=True)])
    tok.save(str(folder / "tokenizer.json"))


def converted_tokenizer_json(folder: Path, cls: str) -> None:
    """tokenizer.json as transformers converts the folder's SentencePiece model when it loads
    it (``cls.from_pretrained(folder).save_pretrained``), the way the Hub repos got theirs."""
    import shutil
    import tempfile

    import transformers

    tok = getattr(transformers, cls).from_pretrained(str(folder))
    with tempfile.TemporaryDirectory() as d:
        tok.save_pretrained(d)
        shutil.copy(Path(d, "tokenizer.json"), folder / "tokenizer.json")


# ---------------------------------------------------------------- tokenizers: SentencePiece

@lru_cache(maxsize=None)
def sentencepiece_model(vocab_size: int, model_type: str = "unigram", lowercase: bool = False, **opts) -> bytes:
    """A SentencePiece model (protobuf bytes) trained from the corpus through a Python iterator
    (``lowercase``: on lowercased, accent-stripped text, as ALBERT's)."""
    import sentencepiece as spm
    import unicodedata

    lines = corpus()
    if lowercase:
        lines = ["".join(c for c in unicodedata.normalize("NFKD", ln.lower()) if not unicodedata.combining(c))
                 for ln in lines]
    buf = io.BytesIO()
    spm.SentencePieceTrainer.train(sentence_iterator=iter(lines), model_writer=buf, vocab_size=vocab_size,
                                   model_type=model_type, character_coverage=0.9995, hard_vocab_limit=False,
                                   num_threads=1, minloglevel=2, **opts)
    return buf.getvalue()


def spm_size(model: bytes) -> int:
    import sentencepiece as spm

    return spm.SentencePieceProcessor(model_proto=model).get_piece_size()


# ---------------------------------------------------------------- tokenizers: fastBPE (BERTweet, PhoBERT)

@lru_cache(maxsize=None)
def fastbpe(n_merges: int = 1500) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """fastBPE codes and a fairseq dictionary for BERTweet: (bpe.codes lines ``a b count``,
    vocab.txt lines ``token count``, non-final pieces ending in ``@@``), learnt on the
    whitespace-split corpus as ``fast learnbpe`` does (``</w>`` marks a word's last symbol)."""
    from collections import defaultdict

    words = Counter(w for ln in english_lines() for w in ln.split())
    seqs = {w: tuple(w[:-1]) + (w[-1] + "</w>",) for w in words}
    pairs, where = Counter(), defaultdict(set)
    for w, s in seqs.items():
        for p in zip(s, s[1:]):
            pairs[p] += words[w]
            where[p].add(w)
    codes = []
    for _ in range(n_merges):
        if not pairs:
            break
        (a, b), n = max(pairs.items(), key=lambda kv: (kv[1], kv[0]))
        if n < 2:
            break
        codes.append(f"{a} {b} {n}")
        for w in sorted(where.pop((a, b))):
            s = seqs[w]
            for p in zip(s, s[1:]):
                pairs[p] -= words[w]
                if pairs[p] <= 0:
                    del pairs[p]
            out, i = [], 0
            while i < len(s):
                if i + 1 < len(s) and s[i] == a and s[i + 1] == b:
                    out.append(a + b)
                    i += 2
                else:
                    out.append(s[i])
                    i += 1
            seqs[w] = s = tuple(out)
            for p in zip(s, s[1:]):
                pairs[p] += words[w]
                where[p].add(w)
    toks = Counter()
    for w, s in seqs.items():
        for i, p in enumerate(s):
            toks[p[:-4] if p.endswith("</w>") else p + "@@"] += words[w]
    for c in {c for w in words for c in w}:
        toks.setdefault(c, 1)
        toks.setdefault(c + "@@", 1)
    vocab = [f"{t} {n}" for t, n in sorted(toks.items(), key=lambda kv: (-kv[1], kv[0]))]
    return tuple(codes), tuple(vocab)


# ---------------------------------------------------------------- layouts

def _bert_config(vocab_size: int, **kw) -> dict:
    """bert-base-* config.json, shrunk (hidden 32, 2 layers, 2 heads, intermediate 48)."""
    cfg = {
        "architectures": ["BertForMaskedLM"],
        "attention_probs_dropout_prob": 0.1,
        "gradient_checkpointing": False,
        "hidden_act": "gelu",
        "hidden_dropout_prob": 0.1,
        "hidden_size": 32,
        "initializer_range": 0.02,
        "intermediate_size": 48,
        "layer_norm_eps": 1e-12,
        "max_position_embeddings": 512,
        "model_type": "bert",
        "num_attention_heads": 2,
        "num_hidden_layers": 2,
        "pad_token_id": 0,
        "position_embedding_type": "absolute",
        "transformers_version": "4.6.0.dev0",
        "type_vocab_size": 2,
        "use_cache": True,
        "vocab_size": vocab_size,
    }
    cfg.update(kw)
    return dict(sorted(cfg.items()))


def _labels(names) -> dict:
    names = list(names)
    return {"id2label": {str(i): n for i, n in enumerate(names)}, "label2id": {n: i for i, n in enumerate(names)}}


def bert_base_uncased(d: Path) -> None:
    """google-bert/bert-base-uncased: ``architectures: [BertForMaskedLM]`` but the weights hold
    the whole pre-training head (``cls.predictions.*`` and ``cls.seq_relationship.*``, the NSP
    head), every LayerNorm under its TF-era name ``LayerNorm.gamma``/``LayerNorm.beta``; the
    decoder stored as well (``cls.predictions.decoder.weight``, equal to the word embeddings).
    Files: config.json (its fields, transformers_version 4.6.0.dev0), model.safetensors,
    vocab.txt (``[PAD]`` 0, ``[unused0..98]``, ``[UNK]`` 100, ``[CLS]`` 101, ``[SEP]`` 102,
    ``[MASK]`` 103), tokenizer.json, tokenizer_config.json ``{"do_lower_case": true,
    "model_max_length": 512}``, and the pytorch_model.bin / tf_model.h5 / flax_model.msgpack /
    rust_model.ot / model.onnx stubs, README.md, .gitattributes."""
    vocab = wordpiece_vocab(corpus(), lowercase=True)
    write_vocab_txt(d, vocab)
    bert_tokenizer_json(d, lowercase=True)
    write_json(d / "tokenizer_config.json", {"do_lower_case": True, "model_max_length": 512})
    cfg = _bert_config(len(vocab))
    write_json(d / "config.json", cfg)
    sd = random_state(cfg, "BertForPreTraining", seed=1)
    sd = drop(sd, "cls.predictions.decoder.bias")
    save_weights(d / "model.safetensors", legacy_layernorm_names(sd))
    add_extras(d, "google-bert/bert-base-uncased", "pytorch_model.bin", "tf_model.h5", "flax_model.msgpack",
               "rust_model.ot", "model.onnx", tags=("exbert",), license="apache-2.0")


def bert_base_cased(d: Path) -> None:
    """google-bert/bert-base-cased: as bert-base-uncased (MLM + NSP weights under gamma/beta
    names, architectures BertForMaskedLM) with a cased vocabulary (``[unused1..99]``) and
    tokenizer_config.json ``{"do_lower_case": false, "model_max_length": 512}``."""
    vocab = wordpiece_vocab(corpus(), lowercase=False, head="bert1")
    write_vocab_txt(d, vocab)
    bert_tokenizer_json(d, lowercase=False, strip_accents=False)
    write_json(d / "tokenizer_config.json", {"do_lower_case": False, "model_max_length": 512})
    cfg = _bert_config(len(vocab))
    write_json(d / "config.json", cfg)
    sd = drop(random_state(cfg, "BertForPreTraining", seed=2), "cls.predictions.decoder.bias")
    save_weights(d / "model.safetensors", legacy_layernorm_names(sd))
    add_extras(d, "google-bert/bert-base-cased", "pytorch_model.bin", "tf_model.h5", "flax_model.msgpack",
               "rust_model.ot", "model.onnx", tags=("exbert",))


def bert_base_chinese(d: Path) -> None:
    """google-bert/bert-base-chinese: config.json with its TF-era pooler fields
    (``directionality: bidi``, ``pooler_type: first_token_transform``, ...), a character
    vocabulary (every CJK character is its own token, tokenize_chinese_chars), vocab.txt +
    tokenizer.json + tokenizer_config.json ``{"do_lower_case": false, "model_max_length": 512}``,
    MLM+NSP weights (standard names), pytorch_model.bin/tf_model.h5/flax_model.msgpack stubs."""
    vocab = wordpiece_vocab(corpus(), lowercase=False, head="bert1")
    write_vocab_txt(d, vocab)
    bert_tokenizer_json(d, lowercase=False, strip_accents=False)
    write_json(d / "tokenizer_config.json", {"do_lower_case": False, "model_max_length": 512})
    cfg = _bert_config(len(vocab), directionality="bidi", pooler_fc_size=32, pooler_num_attention_heads=2,
                       pooler_num_fc_layers=3, pooler_size_per_head=16, pooler_type="first_token_transform",
                       transformers_version="4.6.0.dev0")
    cfg.pop("position_embedding_type")
    write_json(d / "config.json", cfg)
    sd = drop(random_state(cfg, "BertForPreTraining", seed=3), "cls.predictions.decoder.bias")
    save_weights(d / "model.safetensors", sd)
    add_extras(d, "google-bert/bert-base-chinese", "pytorch_model.bin", "tf_model.h5", "flax_model.msgpack",
               language="zh")


CONLL_IOB2 = ["O", "B-MISC", "I-MISC", "B-PER", "I-PER", "B-ORG", "I-ORG", "B-LOC", "I-LOC"]


def dslim_bert_base_ner(d: Path) -> None:
    """dslim/bert-base-NER: BertForTokenClassification fine-tuned from bert-base-cased on
    CoNLL-2003 (id2label O, B-MISC, I-MISC, B-PER, I-PER, B-ORG, I-ORG, B-LOC, I-LOC;
    ``_num_labels: 9``, ``output_past: true``); tokenizer as **vocab.txt only** (no
    tokenizer.json) + special_tokens_map.json + tokenizer_config.json
    ``{"do_lower_case": false}``; model.safetensors beside pytorch_model.bin, tf_model.h5
    and flax_model.msgpack stubs."""
    vocab = wordpiece_vocab(corpus(), lowercase=False, head="bert1")
    write_vocab_txt(d, vocab)
    write_json(d / "special_tokens_map.json", BERT_SPECIALS)
    write_json(d / "tokenizer_config.json", {"do_lower_case": False})
    cfg = _bert_config(len(vocab), architectures=["BertForTokenClassification"], _name_or_path="bert-base-cased",
                       _num_labels=9, output_past=True, transformers_version="4.6.0.dev0", **_labels(CONLL_IOB2))
    for k in ("gradient_checkpointing", "position_embedding_type", "use_cache"):
        cfg.pop(k)
    write_json(d / "config.json", cfg)
    save_weights(d / "model.safetensors", random_state(cfg, "BertForTokenClassification", seed=4))
    add_extras(d, "dslim/bert-base-NER", "pytorch_model.bin", "tf_model.h5", "flax_model.msgpack",
               license="mit", pipeline_tag="token-classification")


def distilbert_sst2(d: Path) -> None:
    """distilbert/distilbert-base-uncased-finetuned-sst-2-english: DistilBERT's own config
    names (dim, n_layers, n_heads, hidden_dim, activation, sinusoidal_pos_embds,
    seq_classif_dropout, tie_weights_, finetuning_task sst-2, NEGATIVE/POSITIVE); weights
    ``distilbert.*``, ``pre_classifier``, ``classifier``; vocab.txt + tokenizer_config.json
    ``{"model_max_length": 512, "do_lower_case": true}``, no tokenizer.json; stubs of
    pytorch_model.bin, tf_model.h5, rust_model.ot, model.onnx."""
    vocab = wordpiece_vocab(corpus(), lowercase=True)
    write_vocab_txt(d, vocab)
    write_json(d / "tokenizer_config.json", {"model_max_length": 512, "do_lower_case": True})
    cfg = {
        "activation": "gelu",
        "architectures": ["DistilBertForSequenceClassification"],
        "attention_dropout": 0.1,
        "dim": 32,
        "dropout": 0.1,
        "finetuning_task": "sst-2",
        "hidden_dim": 48,
        **_labels(["NEGATIVE", "POSITIVE"]),
        "initializer_range": 0.02,
        "max_position_embeddings": 512,
        "model_type": "distilbert",
        "n_heads": 2,
        "n_layers": 2,
        "output_past": True,
        "pad_token_id": 0,
        "qa_dropout": 0.1,
        "seq_classif_dropout": 0.2,
        "sinusoidal_pos_embds": False,
        "tie_weights_": True,
        "vocab_size": len(vocab),
    }
    write_json(d / "config.json", cfg)
    save_weights(d / "model.safetensors", random_state(cfg, "DistilBertForSequenceClassification", seed=5))
    add_extras(d, "distilbert/distilbert-base-uncased-finetuned-sst-2-english", "pytorch_model.bin", "tf_model.h5",
               "rust_model.ot", "model.onnx", pipeline_tag="text-classification")


def nlptown_sentiment(d: Path) -> None:
    """nlptown/bert-base-multilingual-uncased-sentiment: 5 labels ``1 star`` .. ``5 stars``,
    ``finetuning_task: sentiment-analysis``, the multilingual TF-era fields (directionality,
    pooler_*), vocab.txt + special_tokens_map.json + tokenizer_config.json
    (``do_lower_case: true``), no tokenizer.json; pytorch_model.bin, tf_model.h5 and
    flax_model.msgpack stubs."""
    vocab = wordpiece_vocab(corpus(), lowercase=True, head="bert1")
    write_vocab_txt(d, vocab)
    write_json(d / "special_tokens_map.json", BERT_SPECIALS)
    write_json(d / "tokenizer_config.json", {"do_lower_case": True, "model_max_length": 512})
    stars = ["1 star", "2 stars", "3 stars", "4 stars", "5 stars"]
    cfg = _bert_config(len(vocab), architectures=["BertForSequenceClassification"], _num_labels=5,
                       directionality="bidi", finetuning_task="sentiment-analysis", output_past=True,
                       pooler_fc_size=32, pooler_num_attention_heads=2, pooler_num_fc_layers=3,
                       pooler_size_per_head=16, pooler_type="first_token_transform", **_labels(stars))
    for k in ("gradient_checkpointing", "position_embedding_type", "use_cache", "transformers_version"):
        cfg.pop(k)
    write_json(d / "config.json", cfg)
    save_weights(d / "model.safetensors", random_state(cfg, "BertForSequenceClassification", seed=6))
    add_extras(d, "nlptown/bert-base-multilingual-uncased-sentiment", "pytorch_model.bin", "tf_model.h5",
               "flax_model.msgpack", license="mit", language="multilingual")


def _roberta_config(vocab_size: int, **kw) -> dict:
    """roberta-base config.json, shrunk."""
    cfg = {
        "architectures": ["RobertaForMaskedLM"],
        "attention_probs_dropout_prob": 0.1,
        "bos_token_id": 0,
        "eos_token_id": 2,
        "hidden_act": "gelu",
        "hidden_dropout_prob": 0.1,
        "hidden_size": 32,
        "initializer_range": 0.02,
        "intermediate_size": 48,
        "layer_norm_eps": 1e-05,
        "max_position_embeddings": 514,
        "model_type": "roberta",
        "num_attention_heads": 2,
        "num_hidden_layers": 2,
        "pad_token_id": 1,
        "type_vocab_size": 1,
        "vocab_size": vocab_size,
    }
    cfg.update(kw)
    return dict(sorted(cfg.items()))


def cardiffnlp_twitter_roberta(d: Path) -> None:
    """cardiffnlp/twitter-roberta-base-sentiment: RobertaForSequenceClassification with the
    placeholder labels LABEL_0/1/2 (negative/neutral/positive by the model card); tokenizer
    as **vocab.json + merges.txt only** (no tokenizer.json, no tokenizer_config.json);
    model.safetensors beside pytorch_model.bin / tf_model.h5 / flax_model.msgpack stubs."""
    vocab = write_roberta_bpe(d)
    cfg = _roberta_config(len(vocab), architectures=["RobertaForSequenceClassification"], gradient_checkpointing=False,
                          **_labels(["LABEL_0", "LABEL_1", "LABEL_2"]))
    write_json(d / "config.json", cfg)
    save_weights(d / "model.safetensors", random_state(cfg, "RobertaForSequenceClassification", seed=7))
    add_extras(d, "cardiffnlp/twitter-roberta-base-sentiment", "pytorch_model.bin", "tf_model.h5",
               "flax_model.msgpack", card="Labels: 0 -> Negative; 1 -> Neutral; 2 -> Positive")


def _roberta_mlm_weights(cfg: dict, seed: int) -> dict:
    """RobertaForMaskedLM weights as roberta-base's checkpoint holds them: pooler included,
    ``lm_head.decoder.weight`` stored (equal to the word embeddings), ``lm_head.bias``."""
    sd = random_state(cfg, "RobertaForMaskedLM", seed=seed)
    pool = random_state(cfg, "RobertaModel", seed=seed + 100)
    sd["roberta.pooler.dense.weight"] = pool["pooler.dense.weight"]
    sd["roberta.pooler.dense.bias"] = pool["pooler.dense.bias"]
    return drop(sd, "lm_head.decoder.bias")


def roberta_base(d: Path) -> None:
    """FacebookAI/roberta-base: RobertaForMaskedLM (max_position_embeddings 514, pad 1, bos 0,
    eos 2, type_vocab_size 1, layer_norm_eps 1e-5); weights ``roberta.*`` (pooler included) and
    ``lm_head.*``; vocab.json + merges.txt + tokenizer.json + fairseq's dict.txt; stubs of
    pytorch_model.bin, tf_model.h5, flax_model.msgpack, rust_model.ot, model.onnx."""
    vocab = write_roberta_bpe(d)
    roberta_tokenizer_json(d)
    (d / "dict.txt").write_text("".join(f"{i} {1000 - i}\n" for i in range(4, len(vocab) - 1)), encoding="utf-8")
    cfg = _roberta_config(len(vocab))
    write_json(d / "config.json", cfg)
    save_weights(d / "model.safetensors", _roberta_mlm_weights(cfg, seed=8))
    add_extras(d, "FacebookAI/roberta-base", "pytorch_model.bin", "tf_model.h5", "flax_model.msgpack",
               "rust_model.ot", "model.onnx", tags=("exbert",), license="mit")


def distilroberta_base(d: Path) -> None:
    """distilbert/distilroberta-base: RobertaForMaskedLM with 6 layers in the real config (2
    here), ``gradient_checkpointing: false``; vocab.json + merges.txt + tokenizer.json;
    stubs of pytorch_model.bin, tf_model.h5, flax_model.msgpack, rust_model.ot."""
    vocab = write_roberta_bpe(d)
    roberta_tokenizer_json(d)
    cfg = _roberta_config(len(vocab), gradient_checkpointing=False)
    write_json(d / "config.json", cfg)
    save_weights(d / "model.safetensors", _roberta_mlm_weights(cfg, seed=9))
    add_extras(d, "distilbert/distilroberta-base", "pytorch_model.bin", "tf_model.h5", "flax_model.msgpack",
               "rust_model.ot", tags=("exbert",))


HRL_LABELS = ["O", "B-DATE", "I-DATE", "B-PER", "I-PER", "B-ORG", "I-ORG", "B-LOC", "I-LOC"]


def xlmr_ner(d: Path) -> None:
    """Davlan/xlm-roberta-base-ner-hrl: XLMRobertaForTokenClassification (model_type
    xlm-roberta, 514 positions, pad 1) with its labels (O, B-DATE, I-DATE, B-PER, ...); the
    tokenizer as the SentencePiece model **sentencepiece.bpe.model only** (a unigram model
    despite the name, as XLM-R's; ids shifted by fairseq's offset, ``<mask>`` last) +
    special_tokens_map.json + tokenizer_config.json; pytorch_model.bin stub."""
    model = sentencepiece_model(2000)
    (d / "sentencepiece.bpe.model").write_bytes(model)
    write_json(d / "special_tokens_map.json", {"bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>",
                                               "sep_token": "</s>", "pad_token": "<pad>", "cls_token": "<s>",
                                               "mask_token": {"content": "<mask>", "single_word": False,
                                                              "lstrip": True, "rstrip": False, "normalized": True}})
    write_json(d / "tokenizer_config.json", {"model_max_length": 512, "special_tokens_map_file": None,
                                             "name_or_path": "xlm-roberta-base",
                                             "tokenizer_class": "XLMRobertaTokenizer"})
    n = spm_size(model) + 2  # fairseq offset (+1) and <mask>
    cfg = _roberta_config(n, architectures=["XLMRobertaForTokenClassification"], model_type="xlm-roberta",
                          _name_or_path="xlm-roberta-base", gradient_checkpointing=False, output_past=True,
                          position_embedding_type="absolute", transformers_version="4.11.0", use_cache=True,
                          **_labels(HRL_LABELS))
    write_json(d / "config.json", cfg)
    save_weights(d / "model.safetensors", random_state(cfg, "XLMRobertaForTokenClassification", seed=10))
    add_extras(d, "Davlan/xlm-roberta-base-ner-hrl", "pytorch_model.bin", language="multilingual",
               license="afl-3.0")


def albert_base_v2(d: Path) -> None:
    """albert/albert-base-v2: AlbertForMaskedLM (embedding_size 128 -> 16, hidden_act
    gelu_new, dropouts 0, inner_group_num/num_hidden_groups 1, the ALBERT-only fields
    down_scale_factor, gap_size, net_structure_type, num_memory_blocks); weights
    ``albert.*`` + ``predictions.*``; tokenizer spiece.model (``<pad>`` 0, ``<unk>`` 1,
    ``[CLS]`` 2, ``[SEP]`` 3, ``[MASK]`` 4) + tokenizer.json, no tokenizer_config.json;
    stubs of pytorch_model.bin, tf_model.h5, flax_model.msgpack, rust_model.ot."""
    model = sentencepiece_model(2000, lowercase=True, pad_id=0, unk_id=1, bos_id=-1, eos_id=-1,
                                control_symbols="[CLS],[SEP],[MASK]")
    (d / "spiece.model").write_bytes(model)
    converted_tokenizer_json(d, "AlbertTokenizer")
    cfg = {
        "architectures": ["AlbertForMaskedLM"],
        "attention_probs_dropout_prob": 0,
        "bos_token_id": 2,
        "classifier_dropout_prob": 0.1,
        "down_scale_factor": 1,
        "embedding_size": 16,
        "eos_token_id": 3,
        "gap_size": 0,
        "hidden_act": "gelu_new",
        "hidden_dropout_prob": 0,
        "hidden_size": 32,
        "initializer_range": 0.02,
        "inner_group_num": 1,
        "intermediate_size": 48,
        "layer_norm_eps": 1e-12,
        "max_position_embeddings": 512,
        "model_type": "albert",
        "net_structure_type": 0,
        "num_attention_heads": 2,
        "num_hidden_groups": 1,
        "num_hidden_layers": 2,
        "num_memory_blocks": 0,
        "pad_token_id": 0,
        "type_vocab_size": 2,
        "vocab_size": spm_size(model),
    }
    write_json(d / "config.json", cfg)
    save_weights(d / "model.safetensors", random_state(cfg, "AlbertForMaskedLM", seed=11))
    add_extras(d, "albert/albert-base-v2", "pytorch_model.bin", "tf_model.h5", "flax_model.msgpack", "rust_model.ot")


def electra_emotion(d: Path) -> None:
    """bhadresh-savani/electra-base-emotion: ElectraForSequenceClassification fine-tuned from
    google/electra-base-discriminator (6 emotions sadness..surprise, summary_* fields,
    ``problem_type: single_label_classification``); vocab.txt + tokenizer.json +
    tokenizer_config.json + special_tokens_map.json; training_args.bin and
    pytorch_model.bin stubs beside model.safetensors."""
    vocab = wordpiece_vocab(corpus(), lowercase=True)
    write_vocab_txt(d, vocab)
    bert_tokenizer_json(d, lowercase=True)
    write_json(d / "special_tokens_map.json", BERT_SPECIALS)
    write_json(d / "tokenizer_config.json", {"do_lower_case": True, "model_max_length": 512,
                                             "name_or_path": "google/electra-base-discriminator",
                                             "tokenizer_class": "ElectraTokenizer", **BERT_SPECIALS,
                                             "strip_accents": None, "tokenize_chinese_chars": True})
    emotions = ["sadness", "joy", "love", "anger", "fear", "surprise"]
    cfg = {
        "_name_or_path": "google/electra-base-discriminator",
        "architectures": ["ElectraForSequenceClassification"],
        "attention_probs_dropout_prob": 0.1,
        "embedding_size": 32,
        "hidden_act": "gelu",
        "hidden_dropout_prob": 0.1,
        "hidden_size": 32,
        **_labels(emotions),
        "initializer_range": 0.02,
        "intermediate_size": 48,
        "layer_norm_eps": 1e-12,
        "max_position_embeddings": 512,
        "model_type": "electra",
        "num_attention_heads": 2,
        "num_hidden_layers": 2,
        "pad_token_id": 0,
        "position_embedding_type": "absolute",
        "problem_type": "single_label_classification",
        "summary_activation": "gelu",
        "summary_last_dropout": 0.1,
        "summary_type": "first",
        "summary_use_proj": True,
        "torch_dtype": "float32",
        "transformers_version": "4.11.3",
        "type_vocab_size": 2,
        "use_cache": True,
        "vocab_size": len(vocab),
    }
    write_json(d / "config.json", cfg)
    save_weights(d / "model.safetensors", random_state(cfg, "ElectraForSequenceClassification", seed=12))
    add_extras(d, "bhadresh-savani/electra-base-emotion", "pytorch_model.bin", "training_args.bin",
               pipeline_tag="text-classification")


def _deberta_v3_config(vocab_size: int, **kw) -> dict:
    """microsoft/deberta-v3-base's config.json (relative attention, position_buckets 256,
    ``type_vocab_size: 0``, ``position_biased_input: false``), shrunk."""
    cfg = {
        "_name_or_path": "microsoft/deberta-v3-base",
        "architectures": ["DebertaV2ForSequenceClassification"],
        "attention_probs_dropout_prob": 0.1,
        "hidden_act": "gelu",
        "hidden_dropout_prob": 0.1,
        "hidden_size": 32,
        "initializer_range": 0.02,
        "intermediate_size": 48,
        "layer_norm_eps": 1e-07,
        "max_position_embeddings": 512,
        "max_relative_positions": -1,
        "model_type": "deberta-v2",
        "norm_rel_ebd": "layer_norm",
        "num_attention_heads": 2,
        "num_hidden_layers": 2,
        "pad_token_id": 0,
        "pooler_dropout": 0,
        "pooler_hidden_act": "gelu",
        "pooler_hidden_size": 32,
        "pos_att_type": ["p2c", "c2p"],
        "position_biased_input": False,
        "position_buckets": 256,
        "relative_attention": True,
        "share_att_key": True,
        "torch_dtype": "float32",
        "transformers_version": "4.13.0",
        "type_vocab_size": 0,
        "vocab_size": vocab_size,
    }
    cfg.update(kw)
    return dict(sorted(cfg.items()))


def _deberta_v3_spm() -> bytes:
    """DeBERTa-v3's spm.model id layout: ``[PAD]`` 0, ``[CLS]`` 1, ``[SEP]`` 2, ``[UNK]`` 3."""
    return sentencepiece_model(2000, pad_id=0, bos_id=1, eos_id=2, unk_id=3, pad_piece="[PAD]", bos_piece="[CLS]",
                               eos_piece="[SEP]", unk_piece="[UNK]")


def _deberta_tokenizer_config() -> dict:
    return {"bos_token": "[CLS]", "cls_token": "[CLS]", "do_lower_case": False, "eos_token": "[SEP]",
            "mask_token": "[MASK]", "model_max_length": 512, "pad_token": "[PAD]", "sep_token": "[SEP]",
            "sp_model_kwargs": {}, "split_by_punct": False, "tokenizer_class": "DebertaV2Tokenizer",
            "unk_token": "[UNK]", "vocab_type": "spm"}


NLI_LABELS = ["entailment", "neutral", "contradiction"]


def deberta_v3_nli(d: Path) -> None:
    """MoritzLaurer/DeBERTa-v3-base-mnli-fever-anli: DebertaV2ForSequenceClassification
    (entailment/neutral/contradiction), ``type_vocab_size: 0``; spm.model + tokenizer.json +
    tokenizer_config.json + special_tokens_map.json + added_tokens.json ``{"[MASK]": N}``
    (N = the SentencePiece size, 128000 in the real one); config vocab_size padded beyond
    the tokenizer (128100 for 128001 tokens in the real one)."""
    model = _deberta_v3_spm()
    (d / "spm.model").write_bytes(model)
    n = spm_size(model)
    write_json(d / "added_tokens.json", {"[MASK]": n})
    write_json(d / "special_tokens_map.json", {"bos_token": "[CLS]", "cls_token": "[CLS]", "eos_token": "[SEP]",
                                               "mask_token": "[MASK]", "pad_token": "[PAD]", "sep_token": "[SEP]",
                                               "unk_token": "[UNK]"})
    write_json(d / "tokenizer_config.json", _deberta_tokenizer_config())
    converted_tokenizer_json(d, "DebertaV2Tokenizer")
    cfg = _deberta_v3_config(n + 100, **_labels(NLI_LABELS))
    cfg["label2id"] = dict(sorted(cfg["label2id"].items()))
    write_json(d / "config.json", cfg)
    save_weights(d / "model.safetensors", random_state(cfg, "DebertaV2ForSequenceClassification", seed=13))
    add_extras(d, "MoritzLaurer/DeBERTa-v3-base-mnli-fever-anli", "pytorch_model.bin", license="mit",
               pipeline_tag="zero-shot-classification")


def deberta_v3_spm_only(d: Path) -> None:
    """A DeBERTa-v3 classifier whose tokenizer is **spm.model only** (+ tokenizer_config.json,
    as microsoft/deberta-v3-base ships it and as fine-tunes saved with the slow tokenizer
    are, e.g. the early MoritzLaurer/DeBERTa-v3-base-mnli uploads): no tokenizer.json, no
    added_tokens.json; ``type_vocab_size: 0``; labels entailment/neutral/contradiction."""
    model = _deberta_v3_spm()
    (d / "spm.model").write_bytes(model)
    write_json(d / "tokenizer_config.json", {"do_lower_case": False, "vocab_type": "spm"})
    cfg = _deberta_v3_config(spm_size(model) + 100, **_labels(NLI_LABELS), transformers_version="4.12.3")
    write_json(d / "config.json", cfg)
    save_weights(d / "model.safetensors", random_state(cfg, "DebertaV2ForSequenceClassification", seed=14))
    add_extras(d, "MoritzLaurer/DeBERTa-v3-base-mnli", "pytorch_model.bin", license="mit")


def _modernbert_tokenizer(d: Path) -> int:
    """ModernBERT's tokenizer files: tokenizer.json (OLMo-style byte-level BPE,
    ``<|endoftext|>`` 0, ``<|padding|>`` 1, then [UNK] [CLS] [SEP] [PAD] [MASK] after the
    BPE vocabulary; [MASK] strips the space on its left; ``[CLS] $A [SEP]`` template),
    tokenizer_config.json (``PreTrainedTokenizerFast``, model_input_names without
    token_type_ids, model_max_length 8192) and special_tokens_map.json. Returns the number
    of tokens."""
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, processors

    vocab, merges = bytelevel_bpe(1000, ("<|endoftext|>", "<|padding|>"))
    vocab = dict(vocab)
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[tuple(m.split(" ")) for m in merges]))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    tok.add_special_tokens([AddedToken("<|endoftext|>", special=True, normalized=False),
                            AddedToken("<|padding|>", special=True, normalized=False)])
    tok.add_special_tokens([AddedToken(t, special=True, normalized=False)
                            for t in ("[UNK]", "[CLS]", "[SEP]", "[PAD]")])
    tok.add_special_tokens([AddedToken("[MASK]", special=True, normalized=False, lstrip=True)])
    cls_id, sep_id = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
    tok.post_processor = processors.TemplateProcessing(single="[CLS]:0 $A:0 [SEP]:0",
                                                       pair="[CLS]:0 $A:0 [SEP]:0 $B:0 [SEP]:0",
                                                       special_tokens=[("[CLS]", cls_id), ("[SEP]", sep_id)])
    tok.save(str(d / "tokenizer.json"))
    special = {"cls_token": "[CLS]", "mask_token": "[MASK]", "pad_token": "[PAD]", "sep_token": "[SEP]",
               "unk_token": "[UNK]"}
    write_json(d / "tokenizer_config.json", {"clean_up_tokenization_spaces": True, **special,
                                             "model_input_names": ["input_ids", "attention_mask"],
                                             "model_max_length": 8192,
                                             "tokenizer_class": "PreTrainedTokenizerFast"})
    write_json(d / "special_tokens_map.json", {k: {"content": v, "lstrip": k == "mask_token", "normalized": False,
                                                   "rstrip": False, "single_word": False}
                                               for k, v in special.items()})
    return tok.get_vocab_size(with_added_tokens=True)


def _modernbert_config(d: Path, **kw) -> tuple[dict, int]:
    n = _modernbert_tokenizer(d)
    ids = json.loads((d / "tokenizer.json").read_text(encoding="utf-8"))["added_tokens"]
    ids = {t["content"]: t["id"] for t in ids}
    cfg = {
        "architectures": ["ModernBertForMaskedLM"],
        "attention_bias": False,
        "attention_dropout": 0.0,
        "bos_token_id": ids["[CLS]"],
        "classifier_activation": "gelu",
        "classifier_bias": False,
        "classifier_dropout": 0.0,
        "classifier_pooling": "mean",
        "cls_token_id": ids["[CLS]"],
        "decoder_bias": True,
        "deterministic_flash_attn": False,
        "embedding_dropout": 0.0,
        "eos_token_id": ids["[SEP]"],
        "global_attn_every_n_layers": 3,
        "global_rope_theta": 160000.0,
        "gradient_checkpointing": False,
        "hidden_activation": "gelu",
        "hidden_size": 32,
        "initializer_cutoff_factor": 2.0,
        "initializer_range": 0.02,
        "intermediate_size": 48,
        "layer_norm_eps": 1e-05,
        "local_attention": 128,
        "local_rope_theta": 10000.0,
        "max_position_embeddings": 8192,
        "mlp_bias": False,
        "mlp_dropout": 0.0,
        "model_type": "modernbert",
        "norm_bias": False,
        "norm_eps": 1e-05,
        "num_attention_heads": 2,
        "num_hidden_layers": 2,
        "pad_token_id": ids["[PAD]"],
        "position_embedding_type": "absolute",
        "reference_compile": True,
        "sep_token_id": ids["[SEP]"],
        "sparse_pred_ignore_index": -100,
        "sparse_prediction": False,
        "torch_dtype": "float32",
        "transformers_version": "4.47.0.dev0",
        # the embedding matrix is padded to a multiple of 64 with 83 spare rows in the real
        # one (50368 rows for 50285 tokens): here too, a multiple of 64 with 64 to 127 spare
        "vocab_size": (n // 64 + 2) * 64,
    }
    cfg.update(kw)
    return dict(sorted(cfg.items())), n


def modernbert_base(d: Path) -> None:
    """answerdotai/ModernBERT-base: ModernBertForMaskedLM, transformers 4.47-era config
    (global/local rope thetas, global_attn_every_n_layers, local_attention 128,
    reference_compile, ...); the embedding matrix has more rows than the tokenizer has
    tokens (a multiple of 64, with 64 to 127 spare rows: 50368 rows for 50285 tokens in the
    real one), rows that stand for no token (random here like every row, so they can
    reach a top-k); tied decoder not stored. tokenizer.json + tokenizer_config.json +
    special_tokens_map.json, README.md, .gitattributes."""
    cfg, _ = _modernbert_config(d)
    write_json(d / "config.json", cfg)
    save_weights(d / "model.safetensors", drop(random_state(cfg, "ModernBertForMaskedLM", seed=15), "decoder.weight"))
    add_extras(d, "answerdotai/ModernBERT-base", tags=("fill-mask", "masked-lm", "long-context", "modernbert"),
               pipeline_tag="fill-mask")


def modernbert_classifier(d: Path) -> None:
    """A ModernBERT-base fine-tune for sentiment saved by Trainer (transformers 4.48):
    ModernBertForSequenceClassification (mean pooling, ``problem_type:
    single_label_classification``, negative/positive), ModernBERT's tokenizer files,
    training_args.bin stub."""
    cfg, _ = _modernbert_config(d, architectures=["ModernBertForSequenceClassification"],
                                _name_or_path="answerdotai/ModernBERT-base",
                                problem_type="single_label_classification", transformers_version="4.48.0",
                                **_labels(["negative", "positive"]))
    write_json(d / "config.json", cfg)
    save_weights(d / "model.safetensors", random_state(cfg, "ModernBertForSequenceClassification", seed=16))
    add_extras(d, "ModernBERT-base-sst2 (a Trainer run)", "training_args.bin", tags=("generated_from_trainer",))


GO_EMOTIONS = ["admiration", "amusement", "anger", "annoyance", "approval", "caring", "confusion", "curiosity",
               "desire", "disappointment", "disapproval", "disgust", "embarrassment", "excitement", "fear",
               "gratitude", "grief", "joy", "love", "nervousness", "optimism", "pride", "realization", "relief",
               "remorse", "sadness", "surprise", "neutral"]


def roberta_go_emotions(d: Path) -> None:
    """SamLowe/roberta-base-go_emotions: multi-label RobertaForSequenceClassification
    (``problem_type: multi_label_classification``, 28 GoEmotions labels, torch_dtype float32,
    transformers 4.24); vocab.json + merges.txt + tokenizer.json + tokenizer_config.json +
    special_tokens_map.json; pytorch_model.bin stub."""
    vocab = write_roberta_bpe(d)
    roberta_tokenizer_json(d)
    mask = {"content": "<mask>", "lstrip": True, "normalized": False, "rstrip": False, "single_word": False}
    write_json(d / "special_tokens_map.json", {"bos_token": "<s>", "cls_token": "<s>", "eos_token": "</s>",
                                               "mask_token": mask, "pad_token": "<pad>", "sep_token": "</s>",
                                               "unk_token": "<unk>"})
    write_json(d / "tokenizer_config.json", {"add_prefix_space": False, "bos_token": "<s>", "cls_token": "<s>",
                                             "eos_token": "</s>", "errors": "replace", "mask_token": mask,
                                             "model_max_length": 512, "name_or_path": "roberta-base",
                                             "pad_token": "<pad>", "sep_token": "</s>",
                                             "tokenizer_class": "RobertaTokenizer", "trim_offsets": True,
                                             "unk_token": "<unk>"})
    cfg = _roberta_config(len(vocab), architectures=["RobertaForSequenceClassification"], _name_or_path="roberta-base",
                          classifier_dropout=None, position_embedding_type="absolute",
                          problem_type="multi_label_classification", torch_dtype="float32",
                          transformers_version="4.24.0", use_cache=True, **_labels(GO_EMOTIONS))
    write_json(d / "config.json", cfg)
    save_weights(d / "model.safetensors", random_state(cfg, "RobertaForSequenceClassification", seed=17))
    add_extras(d, "SamLowe/roberta-base-go_emotions", "pytorch_model.bin", license="mit",
               pipeline_tag="text-classification",
               tags=("text-classification", "emotions", "multi-class-classification", "multi-label-classification"))


def bert_stsb_regression(d: Path) -> None:
    """A bert-base-cased fine-tuned on GLUE STS-B by run_glue.py (e.g.
    gchhablani/bert-base-cased-finetuned-stsb): one output LABEL_0, ``problem_type:
    regression``, ``finetuning_task: stsb``; vocab.txt + tokenizer.json +
    tokenizer_config.json + special_tokens_map.json; training_args.bin and
    pytorch_model.bin stubs, Trainer's all_results.json/eval_results.json."""
    vocab = wordpiece_vocab(corpus(), lowercase=False, head="bert1")
    write_vocab_txt(d, vocab)
    bert_tokenizer_json(d, lowercase=False, strip_accents=False)
    write_json(d / "special_tokens_map.json", BERT_SPECIALS)
    write_json(d / "tokenizer_config.json", {"do_lower_case": False, "model_max_length": 512,
                                             "name_or_path": "bert-base-cased", "tokenizer_class": "BertTokenizer",
                                             **BERT_SPECIALS, "strip_accents": None, "tokenize_chinese_chars": True})
    cfg = _bert_config(len(vocab), architectures=["BertForSequenceClassification"], _name_or_path="bert-base-cased",
                       finetuning_task="stsb", problem_type="regression", torch_dtype="float32",
                       transformers_version="4.10.0.dev0", classifier_dropout=None, **_labels(["LABEL_0"]))
    write_json(d / "config.json", cfg)
    save_weights(d / "model.safetensors", random_state(cfg, "BertForSequenceClassification", seed=18))
    write_json(d / "eval_results.json", {"epoch": 3.0, "eval_combined_score": 0.8798, "eval_loss": 0.5091,
                                         "eval_pearson": 0.8815, "eval_spearmanr": 0.8781, "eval_samples": 1500})
    write_json(d / "all_results.json", {"epoch": 3.0, "eval_pearson": 0.8815, "train_samples": 5749})
    add_extras(d, "gchhablani/bert-base-cased-finetuned-stsb", "pytorch_model.bin", "training_args.bin",
               tags=("generated_from_trainer",), pipeline_tag="text-classification")


def cross_encoder_msmarco(d: Path) -> None:
    """cross-encoder/ms-marco-MiniLM-L-6-v2: BertForSequenceClassification with one output
    (LABEL_0) and **no problem_type** (the relevance logit; sentence-transformers applies
    ``sbert_ce_default_activation_function``), fine-tuned from nreimers/MiniLM-L6-H384-uncased;
    vocab.txt + tokenizer.json + tokenizer_config.json + special_tokens_map.json;
    pytorch_model.bin, flax_model.msgpack stubs, README.md."""
    vocab = wordpiece_vocab(corpus(), lowercase=True)
    write_vocab_txt(d, vocab)
    bert_tokenizer_json(d, lowercase=True)
    write_json(d / "special_tokens_map.json", BERT_SPECIALS)
    write_json(d / "tokenizer_config.json", {"do_basic_tokenize": True, "do_lower_case": True, "model_max_length": 512,
                                             "name_or_path": "nreimers/MiniLM-L6-H384-uncased", "never_split": None,
                                             **BERT_SPECIALS, "strip_accents": None, "tokenize_chinese_chars": True,
                                             "tokenizer_class": "BertTokenizer"})
    cfg = _bert_config(len(vocab), architectures=["BertForSequenceClassification"],
                       _name_or_path="nreimers/MiniLM-L6-H384-uncased",
                       sbert_ce_default_activation_function="torch.nn.modules.linear.Identity",
                       transformers_version="4.12.5", **_labels(["LABEL_0"]))
    cfg.pop("position_embedding_type")
    write_json(d / "config.json", cfg)
    save_weights(d / "model.safetensors", random_state(cfg, "BertForSequenceClassification", seed=19))
    add_extras(d, "cross-encoder/ms-marco-MiniLM-L-6-v2", "pytorch_model.bin", "flax_model.msgpack")


def sharded_checkpoint(d: Path) -> None:
    """A checkpoint saved in shards, as ``save_pretrained`` writes any model above
    ``max_shard_size`` (the layout of large Hub repos): ``model-00001-of-00002.safetensors``,
    ``model-00002-of-00002.safetensors`` and ``model.safetensors.index.json``
    (``{"metadata": {"total_size": bytes}, "weight_map": {name: shard}}``), no
    model.safetensors. The model: a bert-large-cased CoNLL-03 tagger
    (dbmdz/bert-large-cased-finetuned-conll03-english's config and labels O, B-MISC, I-MISC,
    B-PER, ...), vocab.txt + tokenizer_config.json."""
    vocab = wordpiece_vocab(corpus(), lowercase=False, head="bert1")
    write_vocab_txt(d, vocab)
    write_json(d / "tokenizer_config.json", {"do_lower_case": False, "model_max_length": 512})
    labels = ["O", "B-MISC", "I-MISC", "B-PER", "I-PER", "B-ORG", "I-ORG", "B-LOC", "I-LOC"]
    cfg = _bert_config(len(vocab), architectures=["BertForTokenClassification"], **_labels(labels),
                       directionality="bidi", pooler_fc_size=32, pooler_num_attention_heads=2,
                       pooler_num_fc_layers=3, pooler_size_per_head=16, pooler_type="first_token_transform")
    for k in ("gradient_checkpointing", "position_embedding_type", "use_cache", "transformers_version"):
        cfg.pop(k)
    write_json(d / "config.json", cfg)
    sd = random_state(cfg, "BertForTokenClassification", seed=20)
    keys = list(sd)
    half = len(keys) // 2
    shards = {"model-00001-of-00002.safetensors": keys[:half], "model-00002-of-00002.safetensors": keys[half:]}
    weight_map, total = {}, 0
    for name, ks in shards.items():
        save_weights(d / name, {k: sd[k] for k in ks})
        for k in ks:
            weight_map[k] = name
            total += sd[k].numel() * sd[k].element_size()
    write_json(d / "model.safetensors.index.json", {"metadata": {"total_size": total},
                                                     "weight_map": dict(sorted(weight_map.items()))})
    add_extras(d, "dbmdz/bert-large-cased-finetuned-conll03-english (sharded)")


def trainer_checkpoint(d: Path) -> Path:
    """A Trainer output folder ``runs/sst2/`` holding ``checkpoint-500/`` as ``Trainer`` saves
    it mid-run (transformers 4.4x): config.json (bert-base-uncased fine-tune, LABEL_0/LABEL_1,
    ``problem_type: single_label_classification``, torch_dtype float32), model.safetensors,
    optimizer.pt, scheduler.pt, rng_state.pth, trainer_state.json, training_args.bin,
    and the tokenizer the Trainer was given (vocab.txt, tokenizer.json,
    tokenizer_config.json, special_tokens_map.json). Returns the checkpoint folder."""
    c = d / "checkpoint-500"
    c.mkdir(parents=True)
    vocab = wordpiece_vocab(corpus(), lowercase=True)
    write_vocab_txt(c, vocab)
    bert_tokenizer_json(c, lowercase=True)
    write_json(c / "special_tokens_map.json", BERT_SPECIALS)
    write_json(c / "tokenizer_config.json", {"clean_up_tokenization_spaces": False, "do_basic_tokenize": True,
                                             "do_lower_case": True, "model_max_length": 512, "never_split": None,
                                             **BERT_SPECIALS, "strip_accents": None, "tokenize_chinese_chars": True,
                                             "tokenizer_class": "BertTokenizer"})
    cfg = _bert_config(len(vocab), architectures=["BertForSequenceClassification"], _name_or_path="bert-base-uncased",
                       classifier_dropout=None, problem_type="single_label_classification", torch_dtype="float32",
                       transformers_version="4.44.2", **_labels(["LABEL_0", "LABEL_1"]))
    cfg.pop("gradient_checkpointing")
    write_json(c / "config.json", cfg)
    save_weights(c / "model.safetensors", random_state(cfg, "BertForSequenceClassification", seed=21))
    for name in ("optimizer.pt", "scheduler.pt", "rng_state.pth", "training_args.bin"):
        (c / name).write_bytes(STUBS[name])
    write_json(c / "trainer_state.json", {
        "best_metric": None, "best_model_checkpoint": None, "epoch": 0.5938242280285035, "eval_steps": 500,
        "global_step": 500, "is_hyper_param_search": False, "is_local_process_zero": True,
        "is_world_process_zero": True,
        "log_history": [{"epoch": 0.5938242280285035, "grad_norm": 6.873, "learning_rate": 3.02e-05, "loss": 0.3341,
                         "step": 500}],
        "logging_steps": 500, "max_steps": 842, "num_input_tokens_seen": 0, "num_train_epochs": 1,
        "save_steps": 500, "stateful_callbacks": {"TrainerControl": {"args": {
            "should_epoch_stop": False, "should_evaluate": False, "should_log": False, "should_save": True,
            "should_training_stop": False}, "attributes": {}}},
        "total_flos": 263113417728000.0, "train_batch_size": 80, "trial_name": None, "trial_params": None})
    tb = d / "runs" / "Sep12_10-31-07_gpu-node"
    tb.mkdir(parents=True)
    (tb / "events.out.tfevents.1726137067.gpu-node.1234.0").write_bytes(b"\x18\x00stub tensorboard events")
    return c


def fp16_classifier(d: Path) -> None:
    """A classifier uploaded in half precision (``model.half().save_pretrained``, as many
    Hub fine-tunes are): every tensor F16 in the safetensors header and ``torch_dtype:
    float16`` in config.json (transformers 4.40); a 3-class BERT sentiment model
    (negative/neutral/positive) with vocab.txt + tokenizer.json + tokenizer_config.json +
    special_tokens_map.json."""
    import torch

    vocab = wordpiece_vocab(corpus(), lowercase=True)
    write_vocab_txt(d, vocab)
    bert_tokenizer_json(d, lowercase=True)
    write_json(d / "special_tokens_map.json", BERT_SPECIALS)
    write_json(d / "tokenizer_config.json", {"do_lower_case": True, "model_max_length": 512,
                                             "tokenizer_class": "BertTokenizer", **BERT_SPECIALS})
    cfg = _bert_config(len(vocab), architectures=["BertForSequenceClassification"], classifier_dropout=None,
                       torch_dtype="float16", transformers_version="4.40.1",
                       **_labels(["negative", "neutral", "positive"]))
    cfg.pop("gradient_checkpointing")
    write_json(d / "config.json", cfg)
    save_weights(d / "model.safetensors", random_state(cfg, "BertForSequenceClassification", seed=22),
                 dtype=torch.float16)
    add_extras(d, "a BERT sentiment classifier in float16")


def modernbert_reranker_fp16(d: Path) -> None:
    """A ModernBERT cross-encoder (reranker) stored in half precision, laid out like
    Alibaba-NLP/gte-reranker-modernbert-base: ModernBertForSequenceClassification with one
    output (LABEL_0, no problem_type: the relevance logit), every tensor F16 and
    ``torch_dtype: float16``; ModernBERT's tokenizer files. A family that runs on
    transformers' classes, not bertcli's native encoder."""
    import torch

    cfg, _ = _modernbert_config(d, architectures=["ModernBertForSequenceClassification"],
                                _name_or_path="Alibaba-NLP/gte-modernbert-base", torch_dtype="float16",
                                transformers_version="4.48.3", **_labels(["LABEL_0"]))
    write_json(d / "config.json", cfg)
    save_weights(d / "model.safetensors", random_state(cfg, "ModernBertForSequenceClassification", seed=24),
                 dtype=torch.float16)
    add_extras(d, "Alibaba-NLP/gte-reranker-modernbert-base", tags=("sentence-transformers", "text-ranking"),
               pipeline_tag="text-ranking")


def bertweet_sentiment(d: Path) -> None:
    """finiteautomata/bertweet-base-sentiment-analysis: RobertaForSequenceClassification
    (NEG/NEU/POS, max_position_embeddings 130, ``tokenizer_class: BertweetTokenizer``) whose
    tokenizer is **slow only**: vocab.txt (fairseq dictionary ``token count``) + bpe.codes
    (fastBPE ``a b count``) + added_tokens.json + special_tokens_map.json +
    tokenizer_config.json, no tokenizer.json; pytorch_model.bin stub."""
    codes, vocab = fastbpe()
    (d / "bpe.codes").write_text("\n".join(codes) + "\n", encoding="utf-8")
    (d / "vocab.txt").write_text("\n".join(vocab) + "\n", encoding="utf-8")
    n = 4 + len(vocab)
    write_json(d / "added_tokens.json", {"<mask>": n})
    write_json(d / "special_tokens_map.json", {"bos_token": "<s>", "cls_token": "<s>", "eos_token": "</s>",
                                               "mask_token": "<mask>", "pad_token": "<pad>", "sep_token": "</s>",
                                               "unk_token": "<unk>"})
    write_json(d / "tokenizer_config.json", {"normalization": False, "bos_token": "<s>", "eos_token": "</s>",
                                             "sep_token": "</s>", "cls_token": "<s>", "unk_token": "<unk>",
                                             "pad_token": "<pad>", "mask_token": "<mask>",
                                             "tokenizer_class": "BertweetTokenizer"})
    cfg = _roberta_config(n + 1, architectures=["RobertaForSequenceClassification"],
                          _name_or_path="vinai/bertweet-base",
                          gradient_checkpointing=False, max_position_embeddings=130, position_embedding_type="absolute",
                          tokenizer_class="BertweetTokenizer", transformers_version="4.6.1", use_cache=True,
                          **_labels(["NEG", "NEU", "POS"]))
    write_json(d / "config.json", cfg)
    save_weights(d / "model.safetensors", random_state(cfg, "RobertaForSequenceClassification", seed=23))
    add_extras(d, "finiteautomata/bertweet-base-sentiment-analysis", "pytorch_model.bin",
               tags=("sentiment-analysis",))


#: layout name -> builder(folder). The trainer layout's model is its checkpoint-500 subfolder.
LAYOUTS = {
    "bert-base-uncased": bert_base_uncased,
    "bert-base-cased": bert_base_cased,
    "bert-base-chinese": bert_base_chinese,
    "dslim-bert-base-NER": dslim_bert_base_ner,
    "distilbert-sst2": distilbert_sst2,
    "nlptown-sentiment": nlptown_sentiment,
    "cardiffnlp-twitter-roberta": cardiffnlp_twitter_roberta,
    "roberta-base": roberta_base,
    "distilroberta-base": distilroberta_base,
    "xlmr-ner": xlmr_ner,
    "albert-base-v2": albert_base_v2,
    "electra-emotion": electra_emotion,
    "deberta-v3-nli": deberta_v3_nli,
    "deberta-v3-spm-only": deberta_v3_spm_only,
    "modernbert-base": modernbert_base,
    "modernbert-classifier": modernbert_classifier,
    "roberta-go-emotions": roberta_go_emotions,
    "bert-stsb-regression": bert_stsb_regression,
    "cross-encoder-msmarco": cross_encoder_msmarco,
    "sharded": sharded_checkpoint,
    "trainer-checkpoint": trainer_checkpoint,
    "fp16": fp16_classifier,
    "modernbert-reranker-fp16": modernbert_reranker_fp16,
    "bertweet-sentiment": bertweet_sentiment,
}


def build(name: str, folder: Path) -> Path:
    """Build layout ``name`` into ``folder`` (created); return the model folder."""
    folder.mkdir(parents=True, exist_ok=True)
    out = LAYOUTS[name](folder)
    return out if out is not None else folder


# ---------------------------------------------------------------- HF cache

LFS_SUFFIXES = (".safetensors", ".bin", ".h5", ".msgpack", ".ot", ".onnx", ".model", ".pt", ".pth")


def blob_name(path: Path, data: bytes) -> str:
    """The blob file name huggingface_hub gives a file: its ETag, the sha256 of an LFS file
    (by .gitattributes) or the git blob sha1 of a regular one."""
    if path.name.endswith(LFS_SUFFIXES):
        return hashlib.sha256(data).hexdigest()
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def commit_hash(repo_id: str, n: int) -> str:
    return hashlib.sha1(f"{repo_id}@{n}".encode()).hexdigest()


def add_snapshot(cache: Path, repo_id: str, folder: Path, commit: str, files=None, missing=(),
                 ref: str | None = "main") -> Path:
    """Put ``folder``'s files (or ``files``) into ``cache`` as huggingface_hub does:
    ``models--ORG--NAME/blobs/<etag>``, ``snapshots/<commit>/<file> -> ../../blobs/<etag>``
    (relative symlinks), ``refs/<ref>`` holding the commit hash (no newline), and
    ``.no_exist/<commit>/<file>`` (empty) for files transformers looked for and the repo lacks.
    Returns the snapshot folder."""
    repo = cache / ("models--" + repo_id.replace("/", "--"))
    blobs, snap = repo / "blobs", repo / "snapshots" / commit
    blobs.mkdir(parents=True, exist_ok=True)
    snap.mkdir(parents=True, exist_ok=True)
    names = files or sorted(p.name for p in folder.iterdir() if p.is_file() and not p.name.startswith("."))
    for name in names:
        data = (folder / name).read_bytes()
        blob = blob_name(folder / name, data)
        (blobs / blob).write_bytes(data)
        link = snap / name
        link.parent.mkdir(parents=True, exist_ok=True)
        os.symlink(os.path.relpath(blobs / blob, link.parent), link)
    if missing:
        ne = repo / ".no_exist" / commit
        ne.mkdir(parents=True, exist_ok=True)
        for name in missing:
            (ne / name).touch()
    if ref:
        (repo / "refs").mkdir(exist_ok=True)
        (repo / "refs" / ref).write_text(commit, encoding="utf-8")
    return snap


def build_hub_cache(cache: Path, work: Path) -> dict:
    """A ``HF_HUB_CACHE`` folder holding two repos as ``transformers.pipeline(hub_id)`` leaves
    them: only the files it downloads (config.json, model.safetensors, tokenizer files), and
    ``.no_exist`` markers for the tokenizer files it probed and the repo lacks.

    * ``distilbert/distilbert-base-uncased-finetuned-sst-2-english``: two snapshots; the
      older commit has other weights (seed) and labels ``LABEL_0``/``LABEL_1``; refs/main
      names the newer one. Files identical in both commits share one blob.
    * ``dslim/bert-base-NER``: one snapshot.

    Returns ``{hub_id: {"main": commit, "old": commit (sst2 only), "snapshots": {commit: folder}}}``.
    """
    out = {}
    sst = "distilbert/distilbert-base-uncased-finetuned-sst-2-english"
    old_dir, new_dir = work / "sst2-old", work / "sst2-new"
    build("distilbert-sst2", new_dir)
    build("distilbert-sst2", old_dir)
    cfg = json.loads((old_dir / "config.json").read_text(encoding="utf-8"))
    cfg.update(_labels(["LABEL_0", "LABEL_1"]))
    write_json(old_dir / "config.json", cfg)
    save_weights(old_dir / "model.safetensors", random_state(cfg, "DistilBertForSequenceClassification", seed=105))
    files = ["config.json", "model.safetensors", "tokenizer_config.json", "vocab.txt"]
    missing = ["added_tokens.json", "special_tokens_map.json", "tokenizer.json"]
    old, new = commit_hash(sst, 1), commit_hash(sst, 2)
    s_old = add_snapshot(cache, sst, old_dir, old, files, missing, ref=None)
    s_new = add_snapshot(cache, sst, new_dir, new, files, missing, ref="main")
    out[sst] = {"main": new, "old": old, "snapshots": {old: s_old, new: s_new}}
    ner = "dslim/bert-base-NER"
    ner_dir = work / "ner"
    build("dslim-bert-base-NER", ner_dir)
    c = commit_hash(ner, 1)
    s = add_snapshot(cache, ner, ner_dir, c, ["config.json", "model.safetensors", "special_tokens_map.json",
                                              "tokenizer_config.json", "vocab.txt"],
                     ["added_tokens.json", "tokenizer.json", "chat_template.jinja"])
    out[ner] = {"main": c, "snapshots": {c: s}}
    return out
