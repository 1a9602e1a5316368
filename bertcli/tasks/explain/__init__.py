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

The package: :mod:`.gradients` (the quadrature, the differentiable forward passes, the batched
interpolation), :mod:`.words` (token attributions into words), :mod:`.explainers` (one per
command, and the streaming driver). It never imports Click or rich and never prints.
"""

from .explainers import explain_classify, explain_fill_mask, explain_ner, stream
from .gradients import (DEFAULT_MAX_TOKENS, DEFAULT_STEPS, METHODS, IGInput, IGResult, Target, differentiable,
                        integrated_gradients, plan, quadrature, token_budget)
from .words import _doc, words

__all__ = ["DEFAULT_MAX_TOKENS", "DEFAULT_STEPS", "METHODS", "IGInput", "IGResult", "Target", "differentiable",
           "explain_classify", "explain_fill_mask", "explain_ner", "integrated_gradients", "plan", "quadrature",
           "stream", "token_budget", "words", "_doc"]
