"""Integrated gradients over the word embeddings: the quadrature, the differentiable forward
passes and the batched interpolation (see :mod:`bertcli.tasks.explain` for the method)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from ...errors import ModelError, UsageError

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

        from ... import native

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
        from ...loading import _mlm_head

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
