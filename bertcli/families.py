"""Which config.json the native encoders run, and their keys under BERT's names: no torch.

Both the torch encoder (:mod:`bertcli.native`, which re-exports these names) and the
torch-free fast path (:mod:`bertcli.fastpath`) read a folder's config through here, and the
loader's folder checks need :data:`FAMILIES` before deciding whether torch is needed at all,
so this module imports nothing heavy.
"""

from __future__ import annotations

#: model_type -> native family (the layer and head layout the encoders implement)
FAMILIES = {"bert": "bert", "roberta": "roberta", "xlm-roberta": "roberta", "camembert": "roberta",
            "distilbert": "distilbert", "electra": "electra"}
#: ``hidden_act`` names the native encoders compute (transformers' ACT2FN names); the torch
#: encoder's table (``native._ACTS``) and the fast path's (``fastpath.encoder.ACTS``) cover
#: exactly these (checked in tests/test_fastpath.py).
ACTIVATIONS = ("gelu", "gelu_new", "gelu_pytorch_tanh", "gelu_fast", "relu", "silu", "swish", "tanh")

#: transformers' defaults (DistilBertConfig, ElectraConfig) for the keys the encoder reads,
#: where a config.json leaves them out.
_DISTILBERT_DEFAULTS = {"vocab_size": 30522, "max_position_embeddings": 512, "n_layers": 6, "n_heads": 12,
                        "dim": 768, "hidden_dim": 4 * 768, "activation": "gelu", "pad_token_id": 0}
_ELECTRA_DEFAULTS = {"vocab_size": 30522, "embedding_size": 128, "hidden_size": 256, "num_hidden_layers": 12,
                     "num_attention_heads": 4, "intermediate_size": 1024, "hidden_act": "gelu",
                     "max_position_embeddings": 512, "type_vocab_size": 2, "layer_norm_eps": 1e-12,
                     "pad_token_id": 0}


def native_config(cfg: dict) -> dict:
    """``cfg`` (a config.json dict) with BERT's key names for what the encoder reads.

    DistilBERT (``DistilBertConfig``): ``dim`` -> ``hidden_size``, ``n_layers`` ->
    ``num_hidden_layers``, ``n_heads`` -> ``num_attention_heads``, ``hidden_dim`` ->
    ``intermediate_size``, ``activation`` -> ``hidden_act``; ``layer_norm_eps`` 1e-12 (fixed
    in ``DistilBertModel``); ``type_vocab_size`` 0 (no token types); ``embedding_size`` =
    ``hidden_size``. ELECTRA (``ElectraConfig``): its defaults for missing keys. Other
    families: ``embedding_size`` = ``hidden_size``, the rest as given.
    """
    mt = cfg.get("model_type")
    if mt == "distilbert":
        c = dict(_DISTILBERT_DEFAULTS, **cfg)
        c.update(hidden_size=c["dim"], num_hidden_layers=c["n_layers"], num_attention_heads=c["n_heads"],
                 intermediate_size=c["hidden_dim"], hidden_act=c["activation"], layer_norm_eps=1e-12,
                 type_vocab_size=0, embedding_size=c["dim"])
        return c
    if mt == "electra":
        return dict(_ELECTRA_DEFAULTS, **cfg)
    c = dict(cfg)
    if "hidden_size" in c:
        c["embedding_size"] = c["hidden_size"]
    return c


def supported(cfg: dict) -> bool:
    """True when the native path can run this config (family, activation, absolute positions)."""
    if cfg.get("model_type") not in FAMILIES:
        return False
    c = native_config(cfg)
    return (c.get("hidden_act", "gelu") in ACTIVATIONS
            and c.get("position_embedding_type", "absolute") == "absolute"
            and not c.get("is_decoder", False) and not c.get("add_cross_attention", False))


#: family -> (the layer that reads the first token for classify, its activation): BERT's
#: pooler (BertForSequenceClassification), RobertaClassificationHead's dense + tanh,
#: DistilBertForSequenceClassification's pre_classifier + ReLU, ElectraClassificationHead's
#: dense + GELU (transformers hard-codes ``get_activation("gelu")`` there).
CLS_HEAD = {"bert": ("pooler", "tanh"), "roberta": ("cls_dense", "tanh"), "distilbert": ("cls_dense", "relu"),
            "electra": ("cls_dense", "gelu")}
#: families with an NSP head in transformers (BertForNextSentencePrediction)
NSP_FAMILIES = ("bert",)


# ------------------------------------------------------------------ weight names

def _strip_name(k: str) -> str:
    for p in ("bert.", "roberta.", "model.", "distilbert.", "electra."):
        if k.startswith(p) and (k[len(p):].startswith(("embeddings.", "encoder.", "pooler.", "transformer.",
                                                        "embeddings_project."))):
            k = k[len(p):]
            break
    return k.replace("LayerNorm.gamma", "LayerNorm.weight").replace("LayerNorm.beta", "LayerNorm.bias")


def _strip_prefix(sd: dict) -> dict:
    """Drop the base-model prefix (``bert.``, ``roberta.``, ``distilbert.``, ``electra.``) so encoder keys are uniform:
    a bare ``BertModel`` and a ``BertFor...`` checkpoint name the same weight alike."""
    return {_strip_name(k): v for k, v in sd.items()}


#: native layer part -> checkpoint name inside ``{layer prefix}{i}.``, per family
_LAYER_NAMES = {
    "bert": ("encoder.layer.", [("out", "attention.output.dense"), ("ln1", "attention.output.LayerNorm"),
                                ("ffn_in", "intermediate.dense"), ("ffn_out", "output.dense"),
                                ("ln2", "output.LayerNorm")]),
    # transformers' DistilBertModel: TransformerBlock
    "distilbert": ("transformer.layer.", [("out", "attention.out_lin"), ("ln1", "sa_layer_norm"),
                                          ("ffn_in", "ffn.lin1"), ("ffn_out", "ffn.lin2"),
                                          ("ln2", "output_layer_norm")]),
}
#: the fused QKV projection's sources: (inside the layer, query/key/value names)
_QKV_NAMES = {"bert": ("attention.self.", ("query", "key", "value")),
              "distilbert": ("attention.", ("q_lin", "k_lin", "v_lin"))}
#: fill-mask head names per family: (dense, LayerNorm, decoder weight, decoder bias candidates)
_MLM_NAMES = {
    "bert": ("cls.predictions.transform.dense", "cls.predictions.transform.LayerNorm",
             "cls.predictions.decoder.weight", ["cls.predictions.bias", "cls.predictions.decoder.bias"]),
    "roberta": ("lm_head.dense", "lm_head.layer_norm", "lm_head.decoder.weight",
                ["lm_head.bias", "lm_head.decoder.bias"]),
    "distilbert": ("vocab_transform", "vocab_layer_norm", "vocab_projector.weight", ["vocab_projector.bias"]),
    "electra": ("generator_predictions.dense", "generator_predictions.LayerNorm", "generator_lm_head.weight",
                ["generator_lm_head.bias"]),
}


def _layer_names(family: str):
    """(layer prefix, [(native part, checkpoint part)]) and the QKV sources of ``family``:
    RoBERTa and ELECTRA layers are BERT's (``RobertaLayer``/``ElectraLayer`` copy ``BertLayer``)."""
    f = "distilbert" if family == "distilbert" else "bert"
    return _LAYER_NAMES[f], _QKV_NAMES[f]


def weight_mapping(family: str, n_layers: int, task: str) -> dict[str, list[str]]:
    """native parameter name -> candidate checkpoint names (first found wins), for an encoder of
    ``family`` with ``n_layers`` layers and ``task``'s head (names after :func:`_strip_prefix`)."""
    m = {
        "word.weight": ["embeddings.word_embeddings.weight"],
        "pos.weight": ["embeddings.position_embeddings.weight"],
        "types.weight": ["embeddings.token_type_embeddings.weight"],
        "emb_ln.weight": ["embeddings.LayerNorm.weight"], "emb_ln.bias": ["embeddings.LayerNorm.bias"],
        "emb_proj.weight": ["embeddings_project.weight"], "emb_proj.bias": ["embeddings_project.bias"],
    }
    (prefix, parts), _ = _layer_names(family)
    for i in range(n_layers):
        p, q = f"layers.{i}.", f"{prefix}{i}."
        for a, b in parts:
            for s in ("weight", "bias"):
                m[f"{p}{a}.{s}"] = [f"{q}{b}.{s}"]
    for s in ("weight", "bias"):
        m[f"pooler.{s}"] = [f"pooler.dense.{s}"]
    t, fam = task, family
    for s in ("weight", "bias"):
        if t == "nsp":
            m[f"head.{s}"] = [f"cls.seq_relationship.{s}"]
        elif t == "ner":
            m[f"head.{s}"] = [f"classifier.{s}"]
        elif t == "classify":
            if fam in ("roberta", "electra"):  # RobertaClassificationHead, ElectraClassificationHead
                m[f"cls_dense.{s}"] = [f"classifier.dense.{s}"]
                m[f"head.{s}"] = [f"classifier.out_proj.{s}"]
            elif fam == "distilbert":  # DistilBertForSequenceClassification
                m[f"cls_dense.{s}"] = [f"pre_classifier.{s}"]
                m[f"head.{s}"] = [f"classifier.{s}"]
            else:
                m[f"head.{s}"] = [f"classifier.{s}"]
        elif t == "fill-mask":
            dense, ln, _, _ = _MLM_NAMES[fam]
            m[f"mlm_dense.{s}"] = [f"{dense}.{s}"]
            m[f"mlm_ln.{s}"] = [f"{ln}.{s}"]
    if t == "fill-mask":
        m["mlm_bias"] = _MLM_NAMES[fam][3]
    return m


HEAD_PARAMS = ("pooler.", "head.", "cls_dense.", "mlm_", "decoder")
