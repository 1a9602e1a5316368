"""Word attributions by integrated gradients (``--explain``): which words made a prediction.

Method (Sundararajan, Taly & Yan 2017, "Axiomatic Attribution for Deep Networks", eq. 1):
for a model output F, an input x and a baseline x', the attribution of input coordinate i is

    IG_i(x) = (x_i - x'_i) * integral_0^1 dF(x' + a (x - x')) / dx_i da

and the attributions add up to the change of the output (*completeness*, their Prop. 1):
``sum_i IG_i(x) = F(x) - F(x')``. The integral is a quadrature over ``steps`` points; its error
is reported as the *convergence delta* ``sum_i IG_i - (F(x) - F(x'))`` (captum's
``return_convergence_delta``, same sign), which goes to 0 as ``steps`` grows.

What x, x' and F are here (captum's ``LayerIntegratedGradients`` on the word embeddings, the
convention of captum's BERT tutorial, "Interpreting BERT Models (Part 1)"):

* x is the output of the **word embedding** table for the text's token ids, ``(L, E)``;
  position and token-type embeddings (and the embedding LayerNorm after them) are not
  interpolated: they are computed from the real input ids, the same for every step.
* the baseline x' is the ``[PAD]`` embedding (the tokenizer's pad token; the zero vector for a
  tokenizer without one, or with ``baseline="zero"``) at every text token, and the token's own
  embedding at the tokens the model's template adds (``[CLS]``, ``[SEP]``, ``<s>``, ``</s>``)
  and at the ``[MASK]`` tokens of fill-mask. Those keep x_i = x'_i, so their attribution is
  exactly 0 and the whole change is spread over the words.
* a token's attribution is ``IG`` summed over its E embedding coordinates; a word's is the sum
  over its tokens (words are the tokenizer's ``word_ids``).
* F is a **logit** (before softmax/sigmoid), chosen per task:

  - classify/sentiment: the logit of the predicted label (or of ``label``);
  - ner: for each entity, the sum over its tokens of the logit of the tag that token holds
    for the entity's type (``B-PER`` for the first, ``I-PER`` after it, as predicted: the tag
    of that type the token scores highest), so every entity gets attributions of its own. The
    tokens are those the aggregation read: every token of the entity, except under ``first``,
    which labels a word from its first token only;
  - fill-mask: for each mask, the logit of its top candidate (or of the target word) at that
    mask's position.

Quadrature: Gauss-Legendre on [0, 1] (captum's default, ``gausslegendre``: the same points and
weights), or the trapezoid rule on ``steps`` evenly spaced points (``trapezoid``: weights
``h/2, h, ..., h, h/2`` with ``h = 1/(steps - 1)``, which sum to 1; captum's
``riemann_trapezoid`` takes the same points with ``h = 1/steps``, so its attributions are
``(steps - 1)/steps`` times these). The interpolation steps of
several texts run together in one forward and one backward pass (the rows of a batch are
``(text, step)`` pairs; ``max_tokens`` bounds rows x padded length), with two extra rows per
text at a = 0 and a = 1 for F(x') and F(x). Cost per text: about ``steps + 2`` forward passes
plus one backward pass per target (a backward costs about two forward passes), i.e. roughly
``3 x steps`` times a plain prediction; an NER text runs one backward pass per entity on the
same forward pass.

The model runs differentiably in float32: the native encoder's layers recomputed with plain
``F.linear`` and ``scaled_dot_product_attention`` on its float32 parameters (its inference path
packs weights for oneDNN and runs under ``torch.inference_mode``, which has no gradients), or,
for the families that run on transformers' classes, that model with the word embeddings'
output replaced by a forward hook (what captum's ``LayerIntegratedGradients`` does).
Attributions equal captum's on the same transformers model (tests/test_explain.py).

This module never imports Click or rich and never prints.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np

from .. import batching
from ..errors import ModelError, UsageError
from ..io.readers import Record
from .ner import grapheme_bounds

#: interpolation points of the integral (captum's default ``n_steps`` is 50)
DEFAULT_STEPS = 50
#: quadrature rules (see the module docstring)
METHODS = ("gausslegendre", "trapezoid")
#: rows x padded tokens of one differentiable pass for a model of all-MiniLM-L6-v2's size;
#: scaled down for larger models (:func:`token_budget`). Autograd keeps every layer's
#: activations, about 140 KB per token for MiniLM: 4096 tokens ~ 0.6 GB.
DEFAULT_MAX_TOKENS = 4096
#: per-token cost (2 * layers * (4 H^2 + 2 H I) FLOPs) that DEFAULT_MAX_TOKENS is set for
_REF_FLOPS = 2 * 6 * (4 * 384 * 384 + 2 * 384 * 1536)


# ---------------------------------------------------------------- quadrature

def quadrature(steps: int, method: str = "gausslegendre") -> tuple[list[float], list[float]]:
    """``(alphas, weights)``: points in [0, 1] and weights of the rule (``integral_0^1 f ~
    sum_s w_s f(a_s)``); Gauss-Legendre's are captum's ``approximation_parameters``.

    Raises:
        UsageError: ``steps`` below 1 (below 2 for the trapezoid rule), or an unknown method.
    """
    if method not in METHODS:
        raise UsageError(f"unknown integration method '{method}'", f"use one of {', '.join(METHODS)}")
    if method == "gausslegendre":
        if steps < 1:
            raise UsageError(f"--ig-steps must be at least 1, got {steps}")
        x, w = np.polynomial.legendre.leggauss(steps)
        return [float(a) for a in 0.5 * (1 + x)], [float(v) for v in 0.5 * w]
    if steps < 2:
        raise UsageError(f"the trapezoid rule needs at least 2 steps, got {steps}")
    h = 1.0 / (steps - 1)
    return [i * h for i in range(steps)], [h / 2] + [h] * (steps - 2) + [h / 2]


# ---------------------------------------------------------------- inputs and results

@dataclass
class Target:
    """One output to explain: the sum of its terms' logits.

    ``terms``: ``(position, candidates)`` pairs; ``position`` indexes the input tokens (None
    for a sequence-level output: classify), ``candidates`` the output classes (labels, tags or
    vocabulary ids). A term reads the candidate with the largest logit at the real input
    (a = 1); one candidate is a fixed class.
    """

    terms: list[tuple[int | None, list[int]]]


@dataclass
class IGInput:
    """One model input and the outputs to explain on it.

    ``input_ids``/``token_type_ids``: the ids the model reads (special tokens included);
    ``fixed``: per token, True to keep it in the baseline (template specials, masks).
    """

    input_ids: list[int]
    token_type_ids: list[int] | None
    fixed: list[bool]
    targets: list[Target]

    def __len__(self) -> int:
        return len(self.input_ids)


@dataclass
class IGResult:
    """Integrated gradients of one :class:`Target`.

    ``attributions``: ``(L,)`` float64, one per input token (0 at fixed tokens);
    ``logit`` F(x) and ``baseline_logit`` F(x'); ``delta`` = ``attributions.sum() - (logit -
    baseline_logit)``; ``classes``: the class each term read.
    """

    attributions: np.ndarray
    logit: float
    baseline_logit: float
    delta: float
    classes: list[int] = field(default_factory=list)


def token_budget(lm) -> int:
    """:data:`DEFAULT_MAX_TOKENS` scaled to the model's per-token cost (BERT-base gets ~1/6)."""
    cfg = lm.config
    get = (lambda k, d: cfg.get(k, d)) if isinstance(cfg, dict) else (lambda k, d: getattr(cfg, k, d) or d)
    h = get("hidden_size", 0) or get("dim", 384)
    i = get("intermediate_size", 0) or get("hidden_dim", 4 * h)
    n = get("num_hidden_layers", 0) or get("n_layers", 6)
    per_token = max(1, 2 * n * (4 * h * h + 2 * h * i))
    return max(256, int(DEFAULT_MAX_TOKENS * _REF_FLOPS / per_token))


# ---------------------------------------------------------------- differentiable forward

class _Native:
    """The native encoder's forward (:class:`bertcli.native.NativeEncoder`), differentiable:
    padded ``(R, L, E)`` word embeddings in, the task's outputs out, with the encoder's own
    float32 parameters (not the oneDNN-packed copies its inference path runs)."""

    def __init__(self, net):
        import torch.nn.functional as F

        from .. import native

        self.net, self.F = net, F
        self.act = native._ACTS[net.act][0]
        self.cls_act = native._ACTS[net.cls_act][0] if hasattr(net, "cls_act") else None
        self.mlm_act = native._ACTS[net.mlm_act][0] if getattr(net, "mlm_act", None) else None
        self.cls_head = native.CLS_HEAD.get(net.family, ("pooler", "tanh"))[0]

    @property
    def word(self):
        return self.net.word

    def __call__(self, z, ids, mask, tt, first_only: bool = False):
        """Last hidden states ``(R, L, H)``; with ``first_only`` (classify, whose head reads the
        first token) the last layer runs after attention on the first token only, ``(R, 1, H)``,
        as the native inference path does (keys and values still see every token)."""
        import torch

        net, F = self.net, self.F
        x = z
        if net.types is not None:
            if tt is None or net.types.num_embeddings == 1:
                tt = torch.zeros_like(ids)
            x = x + net.types(tt)
        x = net.emb_ln(x + net.pos(net.positions(ids)))
        if net.emb_proj is not None:
            x = F.linear(x, net.emb_proj.weight, net.emb_proj.bias)
        R, L, H = x.shape
        keep = mask.bool()[:, None, None, :]
        last = len(net.layers) - 1
        for n, layer in enumerate(net.layers):
            h = layer.heads
            w, b = layer.qkv.weight, layer.qkv.bias
            if first_only and n == last:
                q = F.linear(x[:, :1], w[:H], b[:H]).view(R, 1, h, H // h).transpose(1, 2)
                kv = F.linear(x, w[H:], b[H:]).view(R, L, 2, h, H // h).permute(2, 0, 3, 1, 4)
                a = F.scaled_dot_product_attention(q, kv[0], kv[1], attn_mask=keep).transpose(1, 2).reshape(R, 1, H)
                x = x[:, :1]
            else:
                qkv = F.linear(x, w, b).view(R, L, 3, h, H // h).permute(2, 0, 3, 1, 4)
                a = F.scaled_dot_product_attention(qkv[0], qkv[1], qkv[2], attn_mask=keep)
                a = a.transpose(1, 2).reshape(R, L, H)
            x = layer.ln1(F.linear(a, layer.out.weight, layer.out.bias) + x)
            y = F.linear(self.act(F.linear(x, layer.ffn_in.weight, layer.ffn_in.bias)), layer.ffn_out.weight,
                         layer.ffn_out.bias)
            x = layer.ln2(y + x)
        return x

    def outputs(self, hidden, task):
        """classify ``(R, C)``; ner ``(R, L, C)``; fill-mask: the states before the vocabulary
        projection ``(R, L, E)`` (see :meth:`vocab_logits`)."""
        net, F = self.net, self.F
        if task == "classify":
            lin = net.cls_dense if self.cls_head == "cls_dense" else net.pooler
            return F.linear(self.cls_act(F.linear(hidden[:, 0], lin.weight, lin.bias)), net.head.weight,
                            net.head.bias)
        if task == "ner":
            return F.linear(hidden, net.head.weight, net.head.bias)
        return hidden  # fill-mask: projected on the target rows only

    def vocab_logits(self, hidden_rows, vocab_ids):
        """Logits of ``vocab_ids`` (n,) at ``hidden_rows`` (n, H): the MLM head's transform,
        then one row of the (tied) decoder each."""
        net, F = self.net, self.F
        y = net.mlm_ln(self.mlm_act(F.linear(hidden_rows, net.mlm_dense.weight, net.mlm_dense.bias)))
        dec = net._decoder()
        b = dec.bias[vocab_ids] if dec.bias is not None else 0.0
        return (y * dec.weight[vocab_ids]).sum(-1) + b


class _Transformers:
    """A transformers model, its word embeddings' output replaced by the interpolated ones
    through a forward hook (captum's ``LayerIntegratedGradients`` mechanism)."""

    def __init__(self, model, task):
        from ..loading import _mlm_head

        self.model, self.task = model, task
        self.word = model.get_input_embeddings()
        self.head = _mlm_head(model) if task == "fill-mask" else None

    def __call__(self, z, ids, mask, tt, first_only: bool = False):
        handle = self.word.register_forward_hook(lambda mod, args, out: z)
        try:
            kw = {"input_ids": ids, "attention_mask": mask}
            if tt is not None:
                kw["token_type_ids"] = tt
            if self.task == "fill-mask" and self.head is not None:
                return self.model.base_model(**kw)[0]
            return self.model(**kw).logits
        finally:
            handle.remove()

    def outputs(self, hidden, task):
        return hidden

    def vocab_logits(self, hidden_rows, vocab_ids):
        if self.head is None:  # ``hidden_rows`` are already vocabulary logits
            return hidden_rows.gather(-1, vocab_ids[:, None])[:, 0]
        return self.head(hidden_rows).gather(-1, vocab_ids[:, None])[:, 0]


def differentiable(lm):
    """The differentiable forward of a :class:`~bertcli.loading.LoadedModel` (see the module
    docstring).

    Raises:
        UsageError: the model computes in float16/bfloat16 (``--dtype``): IG's completeness
            check needs float32.
        ModelError: the fast path's numpy model (no autograd); load with :func:`load_model`.
    """
    import torch

    if getattr(lm, "numpy", False):
        raise ModelError("the numpy fast path has no gradients", "load the model with bertcli.load_model")
    params = next(lm.model.parameters())
    if params.dtype != torch.float32 or lm.dtype != torch.float32:
        raise UsageError("--explain computes in float32", "drop --dtype (or use --dtype float32)")
    return _Native(lm.model) if lm.native else _Transformers(lm.model, lm.task)


# ---------------------------------------------------------------- integrated gradients

def integrated_gradients(lm, inputs: Sequence[IGInput], steps: int = DEFAULT_STEPS, method: str = "gausslegendre",
                         baseline: str = "pad", max_tokens: int | None = None) -> list[list[IGResult]]:
    """Integrated gradients of every target of every input, batched.

    Args:
        lm: a :class:`~bertcli.loading.LoadedModel` for ``classify``, ``ner`` or
            ``fill-mask`` (float32).
        inputs: the inputs, each at most ``lm.max_length`` tokens.
        steps: quadrature points (captum's ``n_steps``).
        method: ``gausslegendre`` or ``trapezoid`` (:func:`quadrature`).
        baseline: ``pad`` (the ``[PAD]`` embedding at text tokens; zero without a pad
            token) or ``zero``.
        max_tokens: rows x padded length of one pass (default :func:`token_budget`); a text
            whose ``steps + 2`` rows do not fit runs in several passes.

    Returns:
        Per input, one :class:`IGResult` per target, in order.

    Raises:
        UsageError: bad ``steps``/``method``/``baseline``; a model in float16/bfloat16.
    """
    import torch

    if baseline not in ("pad", "zero"):
        raise UsageError(f"unknown baseline '{baseline}'", "use pad or zero")
    alphas, weights = quadrature(steps, method)
    fwd = differentiable(lm)
    task = lm.task
    if task not in ("classify", "ner", "fill-mask"):
        raise UsageError(f"--explain explains classify, sentiment, ner and fill-mask, not {task}")
    dev = lm.device
    pad = lm.tokenizer.pad_token_id
    use_zero = baseline == "zero" or pad is None
    budget = max_tokens or token_budget(lm)
    use_tt = lm.uses_token_type_ids
    # rows of one input: F(x') at a = 0 and F(x) at a = 1 (weight 0), then its steps; the two
    # end points always share the input's first piece, which runs first
    row_alpha = [0.0, 1.0] + list(alphas)
    row_weight = [0.0, 0.0] + list(weights)
    n_rows = len(row_alpha)
    batches = plan(inputs, n_rows, budget)
    acc = [{"attr": [np.zeros(len(x), dtype=np.float64) for _ in x.targets], "classes": [None] * len(x.targets),
            "fx": [0.0] * len(x.targets), "fb": [0.0] * len(x.targets)} for x in inputs]
    W = fwd.word.weight
    pad_id = 0 if pad is None else pad
    for batch in batches:
        Lb = max(len(inputs[i]) for i, _, _ in batch)
        ids_rows, base_rows, tt_rows, mask_rows, fixed_rows, alpha_rows, w_rows, owner = [], [], [], [], [], [], [], []
        for i, r0, n in batch:
            x = inputs[i]
            L = len(x)
            fill = [pad_id] * (Lb - L)
            ids = list(x.input_ids) + fill
            base = [t if f else pad_id for t, f in zip(x.input_ids, x.fixed)] + fill
            tt = (list(x.token_type_ids) if x.token_type_ids is not None else [0] * L) + [0] * (Lb - L)
            fx = list(x.fixed) + [True] * (Lb - L)
            for r in range(r0, r0 + n):
                ids_rows.append(ids)
                base_rows.append(base)
                tt_rows.append(tt)
                mask_rows.append([1] * L + [0] * (Lb - L))
                fixed_rows.append(fx)
                alpha_rows.append(row_alpha[r])
                w_rows.append(row_weight[r])
                owner.append((i, r))
        ids_t = torch.tensor(ids_rows, dtype=torch.long, device=dev)
        mask_t = torch.tensor(mask_rows, dtype=torch.long, device=dev)
        tt_t = torch.tensor(tt_rows, dtype=torch.long, device=dev) if use_tt else None
        with torch.no_grad():
            xe = _embed(W, ids_t)
            be = _embed(W, torch.tensor(base_rows, dtype=torch.long, device=dev))
            if use_zero:
                keep = torch.tensor(fixed_rows, dtype=torch.bool, device=dev)[..., None]
                be = torch.where(keep, be, torch.zeros_like(be))
            diff = xe - be
            a = torch.tensor(alpha_rows, dtype=xe.dtype, device=dev)[:, None, None]
            z_all = be + a * diff
        first_only = task == "classify"
        # the end points (weight 0) need no gradient: a pass of their own, without autograd
        ends = [k for k, w in enumerate(w_rows) if w == 0.0]
        steps_k = [k for k, w in enumerate(w_rows) if w != 0.0]
        if ends:
            e_idx = torch.tensor(ends, dtype=torch.long, device=dev)
            with torch.no_grad():
                out_e = fwd.outputs(fwd(z_all[e_idx], ids_t[e_idx], mask_t[e_idx],
                                        tt_t[e_idx] if tt_t is not None else None, first_only=first_only), task)
            at = {owner[k]: j for j, k in enumerate(ends)}
            # the a = 1 row decides each term's class; the a = 0 / 1 rows give F(x') / F(x)
            for i, r0, n in batch:
                if r0 != 0:
                    continue
                st, r_base, r_in = acc[i], at[(i, 0)], at[(i, 1)]
                for t, tg in enumerate(inputs[i].targets):
                    cls = [_best(out_e, fwd, task, r_in, pos, cands) for pos, cands in tg.terms]
                    st["classes"][t] = cls
                    with torch.no_grad():
                        st["fx"][t] = float(_value(out_e, fwd, task, [r_in] * len(cls), tg.terms, cls).double().sum())
                        st["fb"][t] = float(_value(out_e, fwd, task, [r_base] * len(cls), tg.terms, cls).double().sum())
        if not steps_k:
            continue
        g_idx = torch.tensor(steps_k, dtype=torch.long, device=dev)
        z = z_all[g_idx].requires_grad_(True)
        diff = diff[g_idx]
        g_owner = [owner[k] for k in steps_k]
        g_w = [w_rows[k] for k in steps_k]
        n_targets = max(len(inputs[i].targets) for i, _, _ in batch)
        with torch.enable_grad():
            out = fwd.outputs(fwd(z, ids_t[g_idx], mask_t[g_idx], tt_t[g_idx] if tt_t is not None else None,
                                  first_only=first_only), task)
            for t in range(n_targets):
                rows, terms, classes, wts = [], [], [], []
                for k, (i, r) in enumerate(g_owner):
                    if t >= len(inputs[i].targets):
                        continue
                    for term, c in zip(inputs[i].targets[t].terms, acc[i]["classes"][t]):
                        rows.append(k)
                        terms.append(term)
                        classes.append(c)
                        wts.append(g_w[k])
                if not rows:
                    continue
                vals = _value(out, fwd, task, rows, terms, classes)
                s = (vals * torch.tensor(wts, dtype=vals.dtype, device=dev)).sum()
                # one backward pass per target on the same forward pass (an NER text's entities)
                (g,) = torch.autograd.grad(s, z, retain_graph=t < n_targets - 1)
                contrib = (g * diff).sum(-1).double().cpu().numpy()  # (rows, Lb)
                for k, (i, r) in enumerate(g_owner):
                    if t < len(inputs[i].targets):
                        acc[i]["attr"][t] += contrib[k, :len(inputs[i])]
        del out, z
    results = []
    for x, st in zip(inputs, acc):
        row = []
        for t in range(len(x.targets)):
            attr, fx, fb = st["attr"][t], st["fx"][t], st["fb"][t]
            row.append(IGResult(attr, fx, fb, float(attr.sum() - (fx - fb)), list(st["classes"][t])))
        results.append(row)
    return results


def plan(inputs: Sequence[IGInput], n_rows: int, budget: int) -> list[list[tuple[int, int, int]]]:
    """Passes of integrated gradients: lists of ``(input, first row, rows)`` pieces whose rows
    x padded length stay within ``budget`` (a piece always holds at least its input's first two
    rows, the end points). Inputs are taken longest first, as :func:`bertcli.batching.plan_batches`
    does, grouped by their number of targets first (every target costs a backward pass over the
    whole pass, so a text with one entity should not share a pass with one of ten); an input
    whose rows do not fit one pass is cut into pieces, in row order."""
    order = sorted(range(len(inputs)), key=lambda i: (-len(inputs[i].targets), -len(inputs[i])))
    batches: list[list[tuple[int, int, int]]] = []
    cur: list[tuple[int, int, int]] = []
    cur_rows = cur_len = 0
    for i in order:
        L = max(1, len(inputs[i]))
        per_pass = max(2, budget // L)
        r = 0
        while r < n_rows:
            take = min(n_rows - r, per_pass)
            if cur and (cur_rows + take) * max(cur_len, L) > budget:
                room = budget // max(cur_len, L) - cur_rows
                if room >= 2 or (room >= 1 and r > 0):  # top the pass up with part of this input
                    cur.append((i, r, room))
                    r += room
                batches.append(cur)
                cur, cur_rows, cur_len = [], 0, 0
                continue
            cur.append((i, r, take))
            cur_rows += take
            cur_len = max(cur_len, L)
            r += take
    if cur:
        batches.append(cur)
    return batches


def _embed(weight, ids):
    import torch.nn.functional as F

    return F.embedding(ids, weight)


def _value(out, fwd, task, rows, terms, classes):
    """The logits ``out[row, pos, class]`` of the given terms, one per entry, as a tensor."""
    import torch

    dev = out.device
    r = torch.tensor(rows, dtype=torch.long, device=dev)
    c = torch.tensor(classes, dtype=torch.long, device=dev)
    if task == "classify":
        return out[r, c]
    p = torch.tensor([pos for pos, _ in terms], dtype=torch.long, device=dev)
    if task == "ner":
        return out[r, p, c]
    return fwd.vocab_logits(out[r, p], c)


def _best(out, fwd, task, row, pos, cands) -> int:
    if len(cands) == 1:
        return int(cands[0])
    import torch

    with torch.no_grad():
        v = _value(out, fwd, task, [row] * len(cands), [(pos, None)] * len(cands), list(cands))
    return int(cands[int(v.argmax())])


# ---------------------------------------------------------------- words

@dataclass
class _Text:
    """A tokenised text (or pair) with what words need: per token its character span, word
    and sequence (None for template specials)."""

    texts: tuple[str, ...]
    offsets: list[tuple[int, int]]
    word_ids: list[int | None]
    sequence_ids: list[int | None]


def words(doc: _Text, attributions: np.ndarray, positions: Sequence[int | None] | None = None) -> list[dict]:
    """Token attributions summed into words, with character offsets into the original text.

    Args:
        doc: the tokenised text (:class:`_Text`).
        attributions: ``(n,)`` per model-input token.
        positions: for each model-input token, its index in ``doc`` (None for a token the
            window's template added); default the identity (the input is the whole text).

    Returns:
        ``[{word, start, end, score}]`` in text order (``sequence_id`` added for pairs), one per
        word the input holds: ``word == text[start:end]``. A word spans its tokens' characters,
        widened to whole grapheme clusters (a combining accent dropped by the tokenizer's
        normaliser belongs to its letter); words that then overlap are merged (their scores
        add up), and a word whose tokens cover no character joins the next word.
    """
    if positions is None:
        positions = list(range(len(attributions)))
    per: dict[tuple[int, int], list] = {}
    for k, j in enumerate(positions):
        if j is None or doc.sequence_ids[j] is None or doc.word_ids[j] is None:
            continue
        key = (doc.sequence_ids[j], doc.word_ids[j])
        s, e = doc.offsets[j]
        w = per.setdefault(key, [None, None, 0.0])
        if e > s:
            w[0] = s if w[0] is None else min(w[0], s)
            w[1] = e if w[1] is None else max(w[1], e)
        w[2] += float(attributions[k])
    out: list[dict] = []
    for seq in sorted({k[0] for k in per}):
        text = doc.texts[seq]
        bounds = grapheme_bounds(text)
        items = []
        carry = 0.0
        for (sq, _), (s, e, score) in sorted(((k, v) for k, v in per.items() if k[0] == seq), key=lambda kv: kv[0][1]):
            if s is None:  # no character of its own: its score goes to the next word
                carry += score
                continue
            s, e = _widen(bounds, s, e)
            score += carry
            carry = 0.0
            if items and s < items[-1][1]:  # overlaps the word before: one word
                p = items[-1]
                items[-1] = [min(p[0], s), max(p[1], e), p[2] + score]
            else:
                items.append([s, e, score])
        if carry and items:
            items[-1][2] += carry
        for s, e, score in items:
            d = {"word": text[s:e], "start": s, "end": e, "score": score}
            if len(doc.texts) > 1:
                d["sequence_id"] = seq
            out.append(d)
    return out


def _widen(bounds, s: int, e: int) -> tuple[int, int]:
    if bounds is None:
        return s, e
    return bounds[bisect_right(bounds, s) - 1], bounds[bisect_left(bounds, e)]


def _needs_offsets(lm) -> None:
    if not getattr(lm.tokenizer, "is_fast", False):
        raise ModelError(f"--explain needs character offsets, which the tokenizer of '{lm.path}' does not give "
                         "(a slow-only tokenizer)", "use a model with a fast tokenizer (tokenizer.json)")


def _tokenise(lm, texts: list[str], pairs: list[str] | None, truncation: bool):
    enc = lm.tokenizer(texts, pairs, add_special_tokens=True, truncation=truncation,
                       max_length=lm.max_length if truncation else None, return_offsets_mapping=True,
                       return_attention_mask=False, return_token_type_ids=True)
    return enc


def _doc(enc, i: int, texts: tuple[str, ...]) -> _Text:
    return _Text(texts, [tuple(o) for o in enc["offset_mapping"][i]], list(enc.word_ids(i)),
                 list(enc.sequence_ids(i)))


def _summary(res: IGResult, steps: int, method: str) -> dict:
    return {"logit": res.logit, "baseline_logit": res.baseline_logit, "delta": res.delta, "steps": steps,
            "method": method}


# ---------------------------------------------------------------- classify / sentiment

def explain_classify(lm, texts: list[str], text_pairs: list[str] | None = None, labels: list[int | None] | None = None,
                     *, steps: int = DEFAULT_STEPS, method: str = "gausslegendre", baseline: str = "pad",
                     label_names: list[str] | None = None, max_tokens: int | None = None) -> list[dict]:
    """Word attributions of sequence classifications.

    Args:
        lm: a classify model (:func:`bertcli.load_model` with ``task="classify"``).
        texts, text_pairs: the texts (and second texts of pairs), truncated to
            ``lm.max_length`` as :func:`bertcli.tasks.classify.classify` truncates them.
        labels: per text the label id to explain; None (or a None entry): the predicted
            label, the largest logit.
        label_names: names by id (default the model's ``id2label``).

    Returns:
        Per text ``{"attributions": [{word, start, end, score}], "explanation": {label, logit,
        baseline_logit, delta, steps, method}}``; ``score`` is in logit units and the scores
        add up to ``logit - baseline_logit + delta`` (completeness; ``delta`` is the
        quadrature's error, see the module docstring). Words of a pair carry ``sequence_id``
        (0: text, 1: text_pair). Words cut off by truncation are not listed.

    Raises:
        ModelError: the tokenizer gives no character offsets (a slow-only tokenizer).
        UsageError: as :func:`integrated_gradients`.
    """
    from . import classify as cl

    _needs_offsets(lm)
    names = label_names or cl.label_names(lm.config)
    if not texts:
        return []
    enc = _tokenise(lm, list(texts), list(text_pairs) if text_pairs is not None else None, truncation=False)
    too_long = [i for i, ids in enumerate(enc["input_ids"]) if len(ids) > lm.max_length]
    enc2 = _tokenise(lm, [texts[i] for i in too_long], [text_pairs[i] for i in too_long] if text_pairs else None,
                     truncation=True) if too_long else None
    where = {i: (enc2, k) for k, i in enumerate(too_long)}
    n_labels = len(names)
    ins, docs = [], []
    for i, t in enumerate(texts):
        src, k = where.get(i, (enc, i))
        doc = _doc(src, k, (t,) if text_pairs is None else (t, text_pairs[i]))
        want = labels[i] if labels is not None else None
        cands = [want] if want is not None else list(range(n_labels))
        tt = src["token_type_ids"][k] if "token_type_ids" in src else None
        ins.append(IGInput(list(src["input_ids"][k]), tt, [s is None for s in doc.sequence_ids],
                           [Target([(None, cands)])]))
        docs.append(doc)
    res = integrated_gradients(lm, ins, steps, method, baseline, max_tokens)
    out = []
    for doc, (r,) in zip(docs, res):
        out.append({"attributions": words(doc, r.attributions),
                    "explanation": {"label": names[r.classes[0]], **_summary(r, steps, method)}})
    return out


# ---------------------------------------------------------------- ner

def explain_ner(lm, texts: list[str], results: list[dict], *, aggregation: str | None = None,
                stride: int | None = None, steps: int = DEFAULT_STEPS, method: str = "gausslegendre",
                baseline: str = "pad", max_tokens: int | None = None) -> list[list[dict]]:
    """Word attributions of each entity :func:`bertcli.tasks.ner.ner` found.

    Args:
        texts: the texts; ``results`` their :func:`~bertcli.tasks.ner.ner` results (same
            ``aggregation`` and ``stride``).

    Returns:
        Per text, per entity (in ``results`` order): ``{"attributions": [...], "explanation":
        {logit, baseline_logit, delta, steps, method}}``. F is the sum over the entity's
        tokens of the logit of the tag of its type each token scores highest (under
        ``first``: each word's first token only). A long text's entity is explained in the
        window where its tokens have the most context (as ``ner`` takes their scores), and only
        the words of that window are listed.

    Raises:
        ModelError, UsageError: as :func:`explain_classify`.
    """
    from . import ner as N

    _needs_offsets(lm)
    agg = N.resolve_aggregation(lm, aggregation)
    stride = N.resolve_stride(lm, stride)
    tags = N.label_names(lm.config)
    bioes = N.is_bioes(tags)
    by_type: dict[str, list[int]] = {}
    for c, tag in enumerate(tags):
        by_type.setdefault(N.split_tag(tag, bioes)[1], []).append(c)
    texts = list(texts)
    if not texts:
        return []
    docs, feats = N.encode(lm, texts, stride)
    wenc = lm.tokenizer(texts, add_special_tokens=True, truncation=False, return_offsets_mapping=True,
                        return_attention_mask=False, return_token_type_ids=False)
    ins: list[IGInput] = []
    jobs: list[tuple[int, int, int, list]] = []  # (text, entity, input, positions)
    feat_of = {}
    for fi, f in enumerate(feats):
        feat_of[(f.extra["doc"], f.extra["window"])] = fi
    for ti, (text, doc, res) in enumerate(zip(texts, docs, results)):
        ents = res.get("entities") or []
        if not ents or not doc.ids:
            continue
        toks = N._tokens(lm.tokenizer, doc, np.zeros((len(doc.ids), 1), dtype=np.float32))
        word_of, w = [], -1
        for tk in toks:
            w += 0 if tk.is_subword and w >= 0 else 1
            word_of.append(w)
        full = _doc(wenc, ti, (text,))
        per_window: dict[int, list[tuple[int, Target]]] = {}
        for ei, ent in enumerate(ents):
            if "entity_group" in ent:  # the tags of its type; each token reads its best one
                cands = by_type.get(ent["entity_group"], [])
            else:  # aggregation none: the token's own tag
                cands = [tags.index(ent["entity"])] if ent.get("entity") in tags else []
            s, e = ent["start"], ent["end"]
            inside = [k for k, tk in enumerate(toks) if tk.end > tk.start and tk.start < e and tk.end > s]
            if not inside or not cands:
                continue
            if agg in N.WORD_AGGREGATIONS:
                wset = sorted({word_of[k] for k in inside})
                members = [k for k, _ in enumerate(toks) if word_of[k] in wset]
                if agg == "first":
                    members = [min(k for k in members if word_of[k] == wd) for wd in wset]
            else:
                members = inside
            # doc token index (content tokens: Token.index - n_prefix)
            dj = [toks[k].index - doc.n_prefix for k in members]
            win = _best_window(doc, dj)
            a = doc.window_starts[win]
            fi = feat_of[(ti, win)]
            pre = feats[fi].extra["prefix"]
            terms = [(pre + j - a, list(cands)) for j in dj]
            per_window.setdefault(fi, []).append((ei, Target(terms)))
        for fi, tl in per_window.items():
            f = feats[fi]
            pre, cnt = f.extra["prefix"], f.extra["content"]
            a = doc.window_starts[f.extra["window"]]
            fixed = [True] * len(f)
            for p in range(pre, pre + cnt):
                fixed[p] = bool(doc.special[a + p - pre])
            # model-input token -> index in the full encoding (text tokens only)
            positions = [None] * len(f)
            for p in range(pre, pre + cnt):
                positions[p] = doc.n_prefix + a + p - pre
            ins.append(IGInput(list(f.input_ids), f.token_type_ids, fixed, [t for _, t in tl]))
            jobs.append((ti, fi, len(ins) - 1, [(ei, positions, full) for ei, _ in tl]))
    res = integrated_gradients(lm, ins, steps, method, baseline, max_tokens) if ins else []
    out: list[list[dict]] = [[{} for _ in (r.get("entities") or [])] for r in results]
    for ti, fi, ii, ents in jobs:
        for (ei, positions, full), r in zip(ents, res[ii]):
            out[ti][ei] = {"attributions": words(full, r.attributions, positions),
                           "explanation": _summary(r, steps, method)}
    return out


def _best_window(doc, dj: list[int]) -> int:
    """The window in which the tokens ``dj`` (doc content indices) have the most context: the
    largest smallest distance to a cut edge (the text's own ends are not cuts), as
    :func:`bertcli.tasks.ner.stitch_windows` picks a token's scores; ties to the earlier."""
    if len(doc.window_starts) == 1:
        return 0
    n = len(doc.ids)
    best, best_ctx = 0, -1
    for w, a in enumerate(doc.window_starts):
        length = min(doc.span, n - a)
        if min(dj) < a or max(dj) >= a + length:
            continue
        big = n + doc.span
        ctx = min(min(j - a if a > 0 else big, (a + length - 1 - j) if a + length < n else big) for j in dj)
        if ctx > best_ctx:
            best, best_ctx = w, ctx
    if best_ctx < 0:  # no window holds the whole entity: the one holding its first token
        best = max(w for w, a in enumerate(doc.window_starts) if a <= min(dj))
    return best


# ---------------------------------------------------------------- fill-mask

def explain_fill_mask(lm, texts: list[str], results: list[dict], *, mask_token: str | None = None,
                      target: str | None = None, steps: int = DEFAULT_STEPS, method: str = "gausslegendre",
                      baseline: str = "pad", max_tokens: int | None = None) -> list[list[dict]]:
    """Word attributions of each mask's top candidate (independent decoding: every mask of the
    text still masked, as :func:`bertcli.tasks.fill_mask.fill_mask` predicts without ``joint``).

    Args:
        results: the texts' fill-mask results (their top candidates are explained).
        mask_token: the placeholder the texts use for the mask, as in ``fill_mask``.
        target: a word (one vocabulary token) to explain at every mask instead of the top
            candidate.

    Returns:
        Per text, per mask: ``{"mask": k, "start", "end", "token": id, "token_str": str,
        "attributions": [...], "explanation": {logit, baseline_logit, delta, steps, method}}``
        (``k`` counts the masks from 0 in text order; ``start``/``end``: the mask's characters). The masks themselves
        (and template specials) are kept in the baseline: their score is 0. A long text's mask
        is explained in its window (the words of that window only).

    Raises:
        UsageError: a bad ``target`` (see :func:`bertcli.tasks.fill_mask.target_ids`).
        ModelError: as :func:`explain_classify`.
    """
    from . import fill_mask as FM

    _needs_offsets(lm)
    tok = lm.tokenizer
    tid = FM.target_ids(tok, [target])[0] if target is not None else None
    texts = list(texts)
    if not texts:
        return []
    enc = FM.encode(lm, texts, mask_token)
    ph = FM._placeholder(tok, mask_token)
    mapped = [FM._model_text(t, ph, tok.mask_token) for t in texts]
    wenc = tok([m for m, _ in mapped], add_special_tokens=True, truncation=False, return_offsets_mapping=True,
               return_attention_mask=False, return_token_type_ids=False)
    ins, jobs = [], []
    for ti, (text, e, res) in enumerate(zip(texts, enc, results)):
        if not e.masks:
            continue
        back = mapped[ti][1]
        d = _doc(wenc, ti, (text,))
        # offsets into the user's text (a placeholder's span for a replaced mask)
        d.offsets = [back(s, t) if t > s else (s, t) for s, t in d.offsets]
        mask_pos = {m.pos for m in e.masks}
        preds = res.get("predictions") or []
        for f in FM.features(e.ids, e.masks, lm.max_length):
            n = len(f)
            if len(e.ids) <= lm.max_length:
                positions = list(range(n))
            else:  # a window: [CLS] + body[lo:lo + width] + [SEP]
                m0 = f.extra["masks"][0]
                orig = next(m for m in e.masks if m.k == m0.k)
                lo = orig.pos - m0.pos
                positions = [None] + list(range(lo + 1, lo + n - 1)) + [None]
            fixed = [p is None or d.sequence_ids[p] is None or p in mask_pos for p in positions]
            tl, meta = [], []
            for m in f.extra["masks"]:
                cand = tid if tid is not None else (preds[m.k][0]["token"] if m.k < len(preds) and preds[m.k] else None)
                if cand is None:
                    continue
                tl.append(Target([(m.pos, [int(cand)])]))
                orig = next(o for o in e.masks if o.k == m.k)
                meta.append((m.k, orig.start, orig.end, int(cand)))
            if tl:
                ins.append(IGInput(list(f.input_ids), None, fixed, tl))
                jobs.append((ti, positions, d, meta))
    res = integrated_gradients(lm, ins, steps, method, baseline, max_tokens) if ins else []
    out: list[list[dict]] = [[] for _ in texts]
    for (ti, positions, d, meta), rs in zip(jobs, res):
        for (k, start, end, cand), r in zip(meta, rs):
            out[ti].append({"mask": k, "start": start, "end": end, "token": cand, "token_str": tok.decode([cand]),
                            "attributions": words(d, r.attributions, positions),
                            "explanation": _summary(r, steps, method)})
    for o in out:
        o.sort(key=lambda x: x["mask"])
    return out


# ---------------------------------------------------------------- streaming

def stream(results: Iterable[tuple[Record, dict | None]], explain_window: Callable[[list[Record], list[dict]], None],
           window: int = batching.DEFAULT_WINDOW, progress: Callable[[int], None] | None = None
           ) -> Iterator[tuple[Record, dict | None]]:
    """Add explanations to a task's ``(record, result)`` stream, window by window.

    ``explain_window(records, results)`` adds the explanation fields to each result in place.
    Windows grow from 1 record (the first result comes out at once) to ``window``; a record
    with an error (``result`` None) passes through in its place. Yields in input order.
    """
    done = 0
    for win in batching.windows(results, window, is_barrier=lambda rr: rr[1] is None):
        if win[0][1] is not None:
            explain_window([r for r, _ in win], [res for _, res in win])
        yield from win
        done += len(win)
        if progress:
            progress(done)
