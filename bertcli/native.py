"""A compact native BERT-family encoder: torch + safetensors only, no transformers import.

Why: importing transformers costs 1-2.5 s per process, which dominates a shell
one-liner, and its model classes compute the vocabulary projection and padding we do
not need. This module rebuilds the same network from the same weights (the
Hugging Face parameter names) and is checked against transformers to 1e-5 in
``tests/test_native.py`` (BERT, RoBERTa) and ``tests/test_native_families.py`` (DistilBERT,
ELECTRA).

Architecture (Devlin et al. 2019, section 3; Vaswani et al. 2017): embeddings
(word + position + token type, LayerNorm), N post-LN Transformer layers (multi-head
self-attention, residual + LayerNorm, GELU feed-forward, residual + LayerNorm), and a
task head. Families:

* ``bert`` (and ``megatron-bert``-free plain BERT checkpoints such as MiniLM): absolute
  positions 0..L-1, token type embeddings; pooler ``tanh(W h_[CLS])`` for NSP and
  sequence classification.
* ``roberta``/``xlm-roberta``/``camembert``: positions start at ``padding_idx + 1`` and
  skip padding (fairseq convention); classification head ``out_proj(tanh(dense(h_<s>)))``.
* ``distilbert`` (Sanh et al. 2019; transformers' ``DistilBertModel``): the same post-LN
  layer under other names (``q_lin``/``k_lin``/``v_lin``/``out_lin``, ``sa_layer_norm``,
  ``ffn.lin1``/``lin2``, ``output_layer_norm``) and config keys (``dim``, ``n_layers``,
  ``n_heads``, ``hidden_dim``, ``activation``: see :func:`native_config`); no token types;
  the position table is a stored weight (sinusoidal or learned alike). Classification
  head ``classifier(relu(pre_classifier(h_[CLS])))``; masked LM ``vocab_projector(
  vocab_layer_norm(act(vocab_transform(h))))``; no NSP head.
* ``electra`` (Clark et al. 2020; transformers' ``ElectraModel``): BERT's layer and names;
  embeddings of ``embedding_size`` (may be smaller than ``hidden_size``), then
  ``embeddings_project`` (E -> H) after the embedding LayerNorm. Classification head
  ``out_proj(gelu(dense(h_[CLS])))`` (``ElectraClassificationHead``: GELU, not tanh; no
  pooler); masked LM (the generator, ``ElectraForMaskedLM``) ``generator_lm_head(LayerNorm(
  gelu(dense(h))))`` with dense H -> E and the (V, E) head tied to the word embeddings.

Anything else (or an unknown parameter layout) falls back to transformers' classes.

Batch invariance: the encoder runs on *packed* tokens (padding removed, shape
``(T, H)``), every matrix product runs on fixed-shape tiles of :data:`TILE` rows (or on
calls of other row counts checked to give each row its tile's bits: :func:`kernels.chunk_rows`,
:func:`kernels.step_rows`), and attention runs per sequence at its own length (sequences of equal length share one
call). No arithmetic on a token then depends on which other texts share its batch or
how long they are, so results are bit-identical whatever ``--batch-size`` is, and no
FLOPs are spent on padding.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from . import kernels
from .errors import ModelError
# the products (re-exported: benchmarks and tests reach them as native.*)
from .kernels import (_ACTS, TILE, Packed, chunk_rows, int8_available, onednn_available,  # noqa: F401
                      quantize_rows, tiled_linear)
# the config side (which folders run natively) is torch-free, for the fast path's switch
from .families import _DISTILBERT_DEFAULTS, _ELECTRA_DEFAULTS, ACTIVATIONS, FAMILIES, native_config  # noqa: F401

#: rows per tile of the masked-LM head, which runs on the [MASK] rows only (about one per
#: text, so ~64 per batch at the default batch size): 128-row tiles would multiply as much
#: padding as text by the (vocab, H) decoder. Smaller tiles cost more per row (the decoder
#: weight is streamed once per tile): measured per row at M=32/64/128, 1.14/1.02/1.
HEAD_TILE = 64
#: rows per block of the feed-forward sub-layer (a multiple of :data:`TILE`): its (rows, I)
#: intermediate activations stay in cache between the two products; 3-6 % faster than the
#: whole batch at once on 2,000 real lines (ner, fp32 and bf16, 1 thread)
FFN_ROWS = 4 * TILE
#: tasks whose head reads a few rows (first token, [MASK] rows): their last layer runs
#: after attention on those rows only (:meth:`Layer.forward_rows`).
ROW_TASKS = ("classify", "nsp", "fill-mask")
from .families import CLS_HEAD, NSP_FAMILIES  # noqa: E402,F401  (torch-free tables)


def supported(cfg: dict) -> bool:
    """True when the native path can run this config (see :func:`bertcli.families.supported`)."""
    from . import families

    return families.supported(cfg)


#: layer projections (of ``qkv``, ``out``, ``ffn_in``, ``ffn_out``) that ``--dtype int8``
#: keeps in float32; none: keeping some gained at most 0.6 points of agreement (benchmarks/
#: RESULTS.md, issue #17)
INT8_KEEP: tuple = ()
#: input columns per int8 projection split into parts (:class:`Packed`'s ``outliers``): the
#: ones of largest magnitude on :data:`INT8_CALIBRATION`. all-MiniLM-L6-v2's residual stream
#: has one feature 10-28x the median (column 99 at every layer's query/key/value and
#: feed-forward inputs), which alone sets most rows' int8 scale (benchmarks/RESULTS.md,
#: issue #17)
INT8_OUTLIERS = 4
#: the most parts one outlier column is split into
INT8_MAX_PARTS = 16
#: the text run once at load time to find each projection's outlier columns (``--dtype
#: int8``): everyday English of several kinds; only the column maxima are kept
INT8_CALIBRATION = (
    "The meeting has been moved to Thursday at 3 pm because the director is travelling.",
    "Preheat the oven to 200 degrees, then bake the bread for twenty-five minutes.",
    "I loved this phone at first, but the battery died after two weeks and support never replied.",
    "Shares of Acme Corp fell 4.2 percent in New York on Monday after the company cut its forecast.",
    "\"Where have you been?\" she asked, closing the door behind him.",
    "What is the capital of Australia?",
    "Paris, London and Berlin signed the agreement in Brussels on 12 March 2024.",
    "the film is slow , predictable and far too long , yet the acting is superb .",
)
#: the marker dtype of ``--dtype int8``: int8 weights (per output channel), int8 activations
#: (per row), float32 everything else (see :class:`Packed` and :func:`quantize_rows`)
INT8 = torch.int8


def length_groups(lengths: list[int]) -> list[tuple[int, int, int]]:
    """Runs of equal lengths in packed tokens: ``(start_token, n_sequences, length)`` per run,
    so attention runs once per run on a ``(n_sequences, length)`` block (length-sorted
    batches make the runs long)."""
    groups, start, i = [], 0, 0
    while i < len(lengths):
        j = i
        while j < len(lengths) and lengths[j] == lengths[i]:
            j += 1
        groups.append((start, j - i, lengths[i]))
        start += (j - i) * lengths[i]
        i = j
    return groups


def attention(q, k, v, few_queries: bool = False):
    """Scaled dot-product attention ``softmax(q k^T / sqrt(d_k)) v`` (Vaswani et al. 2017,
    eq. 1) of ``(..., n, d_k)`` tensors, no mask (see :func:`attention_probs`).

    ``F.scaled_dot_product_attention``, except on CPU for bfloat16 and for ``few_queries``
    (fewer query rows than keys: :meth:`Layer.forward_rows`). There the two products run as
    batched matrix products (bfloat16 in, float32 softmax; float32 throughout for float32):
    SDPA's CPU flash kernel splits the keys of a short query block across threads, so its
    result changed with the thread count (torch 2.13 on an AMD EPYC), and in bfloat16 the
    batched products ran ner 5-8 % and classify 5 % faster than it on 2,000 real lines
    (10-60 tokens per sequence, 1 thread, quiet machine) with the same entity agreement with
    float32 (99.55 % vs 99.60 % of lines). Every (sequence, head) is its own product of the
    same shape, so a sequence's result does not depend on the others in the call, nor on the
    thread count (tests/test_threads.py)."""
    if q.device.type == "cpu" and (few_queries or q.dtype == torch.bfloat16):
        s = torch.matmul(q, k.transpose(-2, -1)).float().mul_(q.shape[-1] ** -0.5)
        return torch.matmul(torch.softmax(s, -1).to(q.dtype), v)
    return F.scaled_dot_product_attention(q, k, v)


def attention_probs(q, k, v):
    """Scaled dot-product attention and its probabilities: ``(softmax(q k^T / sqrt(d_k)) v, P)``
    with ``P = softmax(q k^T / sqrt(d_k))`` (Vaswani et al. 2017, eq. 1), which
    ``F.scaled_dot_product_attention`` computes but does not return.

    q, k, v: ``(..., n, d_k)``. Returns the output in q's dtype and ``P`` ``(..., n, n)`` in
    float32 (rows sum to 1), computed as transformers' eager attention does (matmul, scale,
    softmax in float32). No mask term: the native encoder runs attention per sequence on its
    real tokens only, so every key is a real token (transformers' additive mask is 0 there).
    """
    p = torch.softmax((q.float() @ k.float().transpose(-2, -1)) * (q.shape[-1] ** -0.5), dim=-1)
    return (p @ v.float()).to(q.dtype), p


class Layer(nn.Module):
    """One post-LN Transformer encoder layer with fused QKV projection, on packed tokens."""

    def __init__(self, h: int, heads: int, inter: int, eps: float, act: str):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(h, 3 * h)
        self.out = nn.Linear(h, h)
        self.ln1 = nn.LayerNorm(h, eps=eps)
        self.ffn_in = nn.Linear(h, inter)
        self.ffn_out = nn.Linear(inter, h)
        self.ln2 = nn.LayerNorm(h, eps=eps)
        self.act = act

    def forward(self, x, groups, probs: list | None = None):
        """x: ``(T, H)`` packed tokens, T a multiple of the encoder's ``row_step`` (rows after the last
        sequence are padding, computed but never read); groups: ``[(start, n_seqs, length)]``
        runs of consecutive sequences of equal length. The residual stream and LayerNorm keep
        ``x``'s dtype; the matrix products and attention run in the packed dtype.

        ``probs`` (opt-in, for ``bertcli attention``): when a list, attention runs through
        :func:`attention_probs` instead of SDPA and each run's probabilities are appended to
        it, ``(n_seqs, heads, length, length)`` in float32. Left None, nothing changes."""
        T, H = x.shape
        d = H // self.heads
        qkv = tiled_linear(x, self.qkv)
        a = qkv.new_empty((T, H))
        end = 0
        for start, count, n in groups:
            end = start + count * n
            blk = qkv[start:end].view(count, n, 3, self.heads, d).permute(2, 0, 3, 1, 4)
            if probs is None:
                o = attention(blk[0], blk[1], blk[2])  # (count, heads, n, d)
            else:
                o, p = attention_probs(blk[0], blk[1], blk[2])
                probs.append(p)
            a[start:end].view(count, n, self.heads, d).copy_(o.transpose(1, 2))
        a[end:].zero_()
        x = self.ln1(tiled_linear(a, self.out, add=x))
        if x.shape[0] <= FFN_ROWS:
            return self.ln2(tiled_linear(tiled_linear(x, self.ffn_in, act=self.act), self.ffn_out, add=x))
        # the feed-forward block by row blocks: each block's (FFN_ROWS, I) activations stay in
        # cache between the two products (rows are independent: the same bits)
        out = torch.empty_like(x)
        for r in range(0, x.shape[0], FFN_ROWS):
            xs = x[r:r + FFN_ROWS]
            out[r:r + FFN_ROWS] = self.ln2(tiled_linear(tiled_linear(xs, self.ffn_in, act=self.act), self.ffn_out,
                                                        add=xs))
        return out

    def split_qkv(self):
        """``(q, kv)``: the query rows and the key/value rows of the fused projection, as
        :class:`_Tied` views (packed by :meth:`NativeEncoder.prepare` when it packs)."""
        sp = self.__dict__.get("_split")
        if sp is None:
            h = self.qkv.in_features
            w, b = self.qkv.weight, self.qkv.bias
            sp = (_Tied(w[:h], b[:h]), _Tied(w[h:], b[h:]))
        return sp

    def forward_rows(self, x, rows, qgroups):
        """The layer's output at some rows only (the last layer when the head reads a few rows).

        Keys and values are computed for every token, queries and everything after attention
        only for ``rows`` (an ``(R,)`` LongTensor of packed row indices, in sequence order).
        x: ``(T, H)`` as in :meth:`forward`; qgroups: ``[(start, n_seqs, length, qstart, m)]``
        runs of consecutive sequences of equal length with ``m`` rows each, those rows being
        ``rows[qstart:qstart + n_seqs * m]``. Returns ``(R, H)``. The query-side products run in
        :data:`HEAD_TILE`-row tiles and attention per sequence, so a row's result depends only
        on its own sequence and its m rows (fixed by the text: its first token, or its masks).
        """
        H = x.shape[1]
        d = H // self.heads
        q_lin, kv_lin = self.split_qkv()
        kv = tiled_linear(x, kv_lin)
        xr = x[rows]
        q = tiled_linear(xr, q_lin, tile=HEAD_TILE)
        a = q.new_empty(q.shape)
        for start, count, n, qs, m in qgroups:
            # Few queries on CPU in bfloat16 run as one call per run of equal lengths: batched
            # products (:func:`attention`, oneDNN's batched matmul), in which every (sequence,
            # head) is its own product of one shape, so each sequence gets the bits of a call of
            # its own (tests/test_kernels.py). Elsewhere one call per sequence: float32's batched
            # products did not give those bits, nor did SDPA with few queries (torch 2.13 CPU).
            whole = m < n and kv.device.type == "cpu" and kv.dtype == torch.bfloat16
            for s, c in [(0, count)] if whole else [(s, 1) for s in range(count)]:
                blk = kv[start + s * n:start + (s + c) * n].view(c, n, 2, self.heads, d).permute(2, 0, 3, 1, 4)
                qr = slice(qs + s * m, qs + (s + c) * m)
                o = attention(q[qr].view(c, m, self.heads, d).transpose(1, 2), blk[0], blk[1], few_queries=m < n)
                a[qr].view(c, m, self.heads, d).copy_(o.transpose(1, 2))
        y = self.ln1(tiled_linear(a, self.out, add=xr, tile=HEAD_TILE))
        return self.ln2(tiled_linear(tiled_linear(y, self.ffn_in, act=self.act, tile=HEAD_TILE), self.ffn_out,
                                     add=y, tile=HEAD_TILE))


class NativeEncoder(nn.Module):
    """Embeddings + encoder layers (+ pooler when the head needs it) + one task head.

    ``forward(input_ids, attention_mask, token_type_ids=None, mask_rows=None)`` takes
    right-padded LongTensors of shape ``(B, L)`` and returns logits: fill-mask
    ``(n_masks, vocab)`` for the ``(n_masks, 2)`` (batch, position) rows in ``mask_rows``
    (all positions when None: ``(B, L, vocab)``); nsp ``(B, 2)``; classify
    ``(B, num_labels)``; ner ``(B, L, num_labels)``; encoder: last hidden states
    ``(B, L, H)``. Outputs at padded positions are zeros. classify, nsp and fill-mask with
    ``mask_rows`` run the last layer after attention only on the rows their head reads
    (:meth:`Layer.forward_rows`): keys and values still see every token, so the logits are
    the same (to rounding) as from the whole layer, for about 1/N_layers less work.

    ``cfg`` is a config.json dict of any family in :data:`FAMILIES` (its keys normalised by
    :func:`native_config`, kept as ``self.cfg``). Shapes, with H = ``hidden_size``, E =
    ``embedding_size`` (H except for ELECTRA), V = ``vocab_size``, I = ``intermediate_size``:
    word ``(V, E)``, positions ``(max_position_embeddings, E)``, token types
    ``(type_vocab_size, E)`` (none for DistilBERT), ``emb_proj`` ``(H, E)`` when E != H;
    per layer ``qkv`` ``(3H, H)``, ``out`` ``(H, H)``, ``ffn_in`` ``(I, H)``, ``ffn_out``
    ``(H, I)``; classify ``pooler``/``cls_dense`` ``(H, H)`` and ``head`` ``(num_labels, H)``;
    fill-mask ``mlm_dense`` ``(E, H)``, ``mlm_ln`` ``(E,)``, decoder ``(V, E)`` (tied to the
    word embeddings) and ``mlm_bias`` ``(V,)``.
    """

    def __init__(self, cfg: dict, task: str):
        super().__init__()
        cfg = native_config(cfg)
        self.cfg, self.task = cfg, task
        self.family = FAMILIES[cfg["model_type"]]
        h, eps = cfg["hidden_size"], cfg.get("layer_norm_eps", 1e-12)
        e = cfg.get("embedding_size", h)
        self.act = cfg.get("hidden_act", "gelu")
        self.pad_id = cfg.get("pad_token_id", 0) if cfg.get("pad_token_id") is not None else 0
        self.word = nn.Embedding(cfg["vocab_size"], e)
        self.pos = nn.Embedding(cfg["max_position_embeddings"], e)
        # DistilBERT has no token type embeddings (type_vocab_size 0)
        self.types = nn.Embedding(max(1, cfg.get("type_vocab_size", 2)), e) \
            if cfg.get("type_vocab_size", 2) != 0 else None
        self.emb_ln = nn.LayerNorm(e, eps=eps)
        # ElectraModel.embeddings_project, present only when embedding_size != hidden_size
        self.emb_proj = nn.Linear(e, h) if e != h else None
        self.layers = nn.ModuleList(Layer(h, cfg["num_attention_heads"], cfg["intermediate_size"], eps, self.act)
                                    for _ in range(cfg["num_hidden_layers"]))
        n = int(cfg.get("num_labels") or len(cfg.get("id2label") or {}) or 2)
        self.cls_act = CLS_HEAD[self.family][1] if task == "classify" else "tanh"
        if task in ("nsp",) or (task == "classify" and CLS_HEAD[self.family][0] == "pooler"):
            self.pooler = nn.Linear(h, h)
        if task == "nsp":
            self.head = nn.Linear(h, 2)
        elif task == "classify":
            if CLS_HEAD[self.family][0] == "cls_dense":
                self.cls_dense = nn.Linear(h, h)
            self.head = nn.Linear(h, n)
        elif task == "ner":
            self.head = nn.Linear(h, n)
        elif task == "fill-mask":
            # BertPredictionHeadTransform and DistilBertForMaskedLM use the config's
            # activation; RobertaLMHead and ElectraGeneratorPredictions hard-code GELU.
            self.mlm_act = self.act if self.family in ("bert", "distilbert") else "gelu"
            self.mlm_dense = nn.Linear(h, e)
            self.mlm_ln = nn.LayerNorm(e, eps=eps)
            self.mlm_bias = nn.Parameter(torch.zeros(cfg["vocab_size"]))
            self.decoder = None  # tied to self.word unless the checkpoint has its own

    def _decoder(self):
        """The vocabulary projection (tied to the word embeddings unless the checkpoint has its own)."""
        dec = self.__dict__.get("_dec")
        if dec is None:
            w = self.decoder.weight if self.decoder is not None else self.word.weight
            dec = _Tied(w, self.mlm_bias)
        return dec

    def prepare(self, device, dtype=torch.float32, calibration=None):
        """Make the model ready for inference on ``device`` in ``dtype``; returns ``self``.

        CUDA/MPS: moves and casts the parameters (``self.to(device).to(dtype)``); nothing else
        changes. CPU: parameters stay float32 (embeddings, LayerNorm weights, biases) and
        every linear layer gets a :class:`Packed` weight in ``dtype``: reordered once for
        oneDNN when :func:`onednn_available`, else a plain copy for bf16 (float32 without
        oneDNN runs the parameters as they are). In bfloat16 the residual stream between
        the layers is bfloat16 as well (LayerNorm takes and gives bfloat16, computing in
        float32 inside), so the residual adds fuse into the oneDNN products, as OpenVINO's
        bf16 mode keeps it; against a float32 residual stream (``torch.autocast``'s way)
        this ran 12-19 % faster on 2,000 real lines with the same SST-2 accuracy (0.8888)
        and CoNLL F1 (0.8547 vs 0.8542), top-1/entity agreement with float32 99.95 % / 99.56 %
        (benchmarks/RESULTS.md, issue #17). Call it again after changing weights.

        ``--dtype int8`` (``dtype`` :data:`INT8`): ``calibration``, a ``(input_ids,
        attention_mask, token_type_ids)`` batch (:func:`bertcli.loading.int8_calibration`), is run once in
        float32 to pick each projection's :data:`INT8_OUTLIERS` outlier input columns; without
        it every column goes through int8.
        """
        device = torch.device(device)
        self.to(device)
        # CPU bfloat16: the residual stream (and so LayerNorm's output) in bfloat16 too, the
        # residual adds fused into the products; LayerNorm computes in float32 inside
        self.residual_dtype = torch.bfloat16 if device.type == "cpu" and dtype == torch.bfloat16 else None
        lins = [m for m in self.modules() if isinstance(m, nn.Linear)]
        self.__dict__.pop("_dec", None)
        self.__dict__.pop("row_step", None)
        for layer in self.layers:
            layer.__dict__.pop("_split", None)
        for m in lins:
            m.__dict__.pop("packed", None)
        if dtype == INT8 and (device.type != "cpu" or not int8_available()):
            raise ModelError("--dtype int8 runs on CPU only, through oneDNN's int8 matrix products, "
                             + ("and this device is not a CPU" if device.type != "cpu"
                                else "which this torch build lacks"), "use --dtype float32 or bfloat16")
        if device.type != "cpu":
            if dtype != torch.float32:
                self.to(dtype)
            return self
        self.float()
        kind = "onednn" if onednn_available(dtype) else ("dense" if dtype != torch.float32 else None)
        if dtype == INT8:
            kind = "int8"
        if kind is None:
            return self
        head_side = []
        if self.task == "fill-mask":
            self._dec = self._decoder()
            head_side.append(self._dec)
        if self.task in ROW_TASKS:
            last = self.layers[-1]
            last._split = last.split_qkv()
            lins.append(last._split[1])
            head_side.append(last._split[0])
        # int8: the encoder layers' projections only; embeddings, LayerNorm, attention
        # (softmax), the pooler and task heads stay float32 (see :data:`INT8_KEEP`)
        quantized = self._int8_projections() if kind == "int8" else None
        outliers = self._int8_outliers(calibration) if kind == "int8" and calibration is not None else {}
        for mods, tile in ((lins, TILE), (head_side, HEAD_TILE)):
            for m in mods:
                fp32 = quantized is not None and id(m) not in quantized
                m.packed = Packed(m.weight, m.bias, torch.float32, "onednn", tile) if fp32 else \
                    Packed(m.weight, m.bias, dtype, kind, tile, outliers.get(id(m)))
        # the packed tokens are padded once to a row multiple every encoder product takes
        # with its tile's bits (kernels.step_rows: 32 rows where checked, else whole tiles)
        self.row_step = max((m.packed.step for m in lins), default=TILE)
        return self

    def _int8_outliers(self, calibration) -> dict:
        """id(linear) -> ``(cols, parts)`` for :class:`Packed`'s ``outliers``: run the
        ``calibration`` batch through the float32 parameters (nothing packed yet), take each
        encoder projection's :data:`INT8_OUTLIERS` input columns of largest magnitude and
        split each into ``ceil(max_j / max_rest)`` parts (at most :data:`INT8_MAX_PARTS`),
        ``max_rest`` being the largest magnitude of the other columns; columns needing one
        part are left alone. The last layer's query/key-value split takes its fused
        projection's columns (the same input)."""
        if INT8_OUTLIERS <= 0:
            return {}
        lins = [getattr(layer, n) for layer in self.layers for n in ("qkv", "out", "ffn_in", "ffn_out")]
        with kernels.column_maxima(lins) as stats, torch.no_grad():
            self.encode(*calibration)
        out = {}
        for i, m in stats.items():
            k = min(INT8_OUTLIERS, m.numel() - 1)
            top = m.topk(k + 1)
            rest = float(top.values[k])
            if rest <= 0:
                continue
            parts = torch.ceil(top.values[:k] / rest).clamp_(1, INT8_MAX_PARTS).long()
            keep = parts > 1
            if bool(keep.any()):
                out[i] = (top.indices[:k][keep], parts[keep])
        for layer in self.layers:
            for part in layer.__dict__.get("_split", ()):
                if id(layer.qkv) in out:
                    out[id(part)] = out[id(layer.qkv)]
        return out

    def _int8_projections(self) -> set:
        """ids of the linear layers ``--dtype int8`` quantizes: the encoder layers' projections
        (with the last layer's query/key-value split of the row tasks) not named by
        :data:`INT8_KEEP`. Everything else (pooler, heads, ELECTRA's embedding projection,
        the masked-LM transform and vocabulary projection) stays float32."""
        out = set()
        for layer in self.layers:
            out.update(id(getattr(layer, n)) for n in ("qkv", "out", "ffn_in", "ffn_out") if n not in INT8_KEEP)
            if "qkv" not in INT8_KEEP and "_split" in layer.__dict__:
                out.update(id(t) for t in layer._split)
        return out

    def positions(self, input_ids):
        if self.family == "roberta":
            # fairseq: positions count real tokens from padding_idx + 1; pads keep padding_idx.
            m = input_ids.ne(self.pad_id).long()
            return torch.cumsum(m, 1) * m + self.pad_id
        return torch.arange(input_ids.shape[1], device=input_ids.device).expand_as(input_ids)

    def encode(self, input_ids, attention_mask, token_type_ids=None, queries=None, probs=None):
        """Packed last hidden states ``(T, H)`` of the real tokens, and the sequence lengths.

        With ``queries`` (one sorted list of positions per sequence), the last layer runs
        after attention on those positions only (:meth:`Layer.forward_rows`), and the
        states are ``(R, H)``, one row per position, in sequence order. With ``probs`` (a
        list; not with ``queries``), each layer appends the list of its attention
        probabilities (:meth:`Layer.forward`); see :meth:`attentions`.
        """
        keep = attention_mask.bool()
        lengths = keep.sum(1).tolist()
        # summed in transformers' order (BertEmbeddings, ElectraEmbeddings, RobertaEmbeddings:
        # word + token type, then + position): the same bits before the LayerNorm
        x = self.word(input_ids[keep])
        if self.types is not None:
            if token_type_ids is None or self.types.num_embeddings == 1:
                token_type_ids = torch.zeros_like(input_ids)
            x = x + self.types(token_type_ids[keep])
        x = self.emb_ln(x + self.pos(self.positions(input_ids)[keep]))
        if self.emb_proj is not None:  # ELECTRA: (T, E) -> (T, H), the residual stream's dtype
            x = tiled_linear(x, self.emb_proj).to(x.dtype)
        if self.__dict__.get("residual_dtype") is not None:
            x = x.to(self.residual_dtype)  # CPU bfloat16: see prepare()
        groups = length_groups(lengths)
        T = x.shape[0]
        pad = (-T) % self.__dict__.get("row_step", TILE)
        if pad:  # pad once to whole tiles (or checked steps: prepare()), not at every matrix product
            x = torch.cat([x, x.new_zeros((pad, x.shape[1]))])
        layers = self.layers if queries is None else self.layers[:-1]
        for layer in layers:
            if probs is None:
                x = layer(x, groups)
            else:
                probs.append([])
                x = layer(x, groups, probs[-1])
        if queries is None:
            return x[:T], lengths
        rows, qgroups, start, qs, i = [], [], 0, 0, 0
        while i < len(lengths):
            j = i
            while j < len(lengths) and (lengths[j], len(queries[j])) == (lengths[i], len(queries[i])):
                rows += [start + (j - i) * lengths[i] + p for p in queries[j]]
                j += 1
            n, m = lengths[i], len(queries[i])
            if m:
                qgroups.append((start, j - i, n, qs, m))
            start, qs, i = start + (j - i) * n, qs + (j - i) * m, j
        rows_t = torch.tensor(rows, dtype=torch.long, device=x.device)
        return self.layers[-1].forward_rows(x, rows_t, qgroups), lengths

    def attentions(self, input_ids, attention_mask, token_type_ids=None) -> list:
        """Attention probabilities of every layer and head from this encoder's own forward pass.

        Takes the inputs of :meth:`forward` (right-padded ``(B, L)`` LongTensors) and returns
        one float32 tensor per sequence, ``(layers, heads, n, n)`` with n its real tokens:
        entry ``[l, h, i, j]`` is how much query token i attends to key token j in head h of
        layer l, ``softmax(q_i k_j^T / sqrt(d_k))`` over j (rows sum to 1). transformers'
        ``output_attentions=True`` (eager attention) gives the same, padded to L with zeros
        in the padded key columns. The regular forward pass (SDPA) is not used or changed.
        """
        if input_ids.shape[0] == 0:
            return []
        per_layer: list[list] = []
        self.encode(input_ids, attention_mask, token_type_ids, probs=per_layer)
        seqs = [[t for run in layer for t in run.unbind(0)] for layer in per_layer]
        return [torch.stack([layer[i] for layer in seqs]) for i in range(input_ids.shape[0])] if seqs else \
            [torch.zeros((0, 0, n, n)) for n in attention_mask.sum(1).tolist()]

    def _unpack(self, x, lengths, L):
        out = x.new_zeros((len(lengths), L, x.shape[-1]))
        keep = torch.arange(L, device=x.device)[None, :] < torch.tensor(lengths, device=x.device)[:, None]
        out[keep] = x
        return out

    def forward(self, input_ids, attention_mask, token_type_ids=None, mask_rows=None):
        t, B, L = self.task, input_ids.shape[0], input_ids.shape[1]
        if t in ("classify", "nsp"):
            # the head reads the first token only: the last layer runs on it alone
            first, _ = self.encode(input_ids, attention_mask, token_type_ids, queries=[[0]] * B)
            lin = self.cls_dense if t == "classify" and CLS_HEAD[self.family][0] == "cls_dense" else self.pooler
            return tiled_linear(tiled_linear(first, lin, act=self.cls_act, tile=HEAD_TILE), self.head, tile=HEAD_TILE)
        if t == "fill-mask" and mask_rows is not None:
            mr = mask_rows.tolist()
            order = sorted(range(len(mr)), key=lambda j: mr[j])
            queries = [[] for _ in range(B)]
            for j in order:
                queries[mr[j][0]].append(mr[j][1])
            y, _ = self.encode(input_ids, attention_mask, token_type_ids, queries=queries)
            y = self.mlm_ln(tiled_linear(y, self.mlm_dense, act=self.mlm_act, tile=HEAD_TILE).to(y.dtype))
            logits = tiled_linear(y, self._decoder(), tile=HEAD_TILE)
            if order != list(range(len(mr))):
                inv = torch.empty(len(order), dtype=torch.long)
                inv[torch.tensor(order, dtype=torch.long)] = torch.arange(len(order))
                logits = logits[inv.to(logits.device)]
            return logits
        x, lengths = self.encode(input_ids, attention_mask, token_type_ids)
        if t == "encoder":
            return self._unpack(x, lengths, L)
        if t == "ner":
            return self._unpack(tiled_linear(x, self.head), lengths, L)
        # fill-mask on every position
        y = self.mlm_ln(tiled_linear(x, self.mlm_dense, act=self.mlm_act).to(x.dtype))
        return self._unpack(tiled_linear(y, self._decoder()), lengths, L)


class _Tied:
    """A weight/bias pair that quacks like nn.Linear for :func:`tiled_linear`."""

    def __init__(self, weight, bias):
        self.weight, self.bias, self.out_features = weight, bias, weight.shape[0]
        self.packed = None


# ------------------------------------------------------------------ weights

# reading checkpoints into the encoder (re-exported: loading, benchmarks and tests reach them as native.*)
from .native_weights import _mapping, apply_lora, load_state, read_safetensors, sinusoidal_table  # noqa: E402,F401
