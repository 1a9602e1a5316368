"""``--explain`` on the command line: its options checked, the explained stream, and the
terminal view (each text with its words shaded green where they pushed the explained output
up and red where they pushed it down).

The work is :mod:`bertcli.tasks.explain`'s; this module only binds it to the commands
(classify, sentiment, ner, fill-mask) and draws it with rich.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import click

from .output import warn
from .run import fmt_score, short

#: colours of the shading: words that raise the explained logit, and words that lower it
GREEN = (22, 160, 60)
RED = (214, 40, 40)
#: longest text shown shaded in a table cell (longer ones are cut, with an ellipsis)
MAX_CHARS = 600
#: the header of the shaded text column
TEXT_COLUMN = "text (green: for, red: against)"


@dataclass
class ExplainOptions:
    """``--explain``'s options as a command got them."""

    label: str | None
    steps: int


def explain_params(params: dict, *, joint: bool = False) -> ExplainOptions | None:
    """Pop ``--explain``, ``--explain-label`` and ``--ig-steps`` from ``params``; None without
    ``--explain``.

    Raises:
        click.UsageError: ``--explain-label``/``--ig-steps`` without ``--explain``; ``--explain``
            with ``--dtype float16|bfloat16`` (integrated gradients run in float32), with
            ``--format spans`` (span records carry no attributions) or with ``--joint``
            (the explained prediction is the independent one).
    """
    from ..tasks.explain import DEFAULT_STEPS

    explain = params.pop("explain", False)
    label = params.pop("explain_label", None)
    steps = params.pop("ig_steps", None)
    if not explain:
        given = [name for name, v in (("--explain-label", label), ("--ig-steps", steps)) if v is not None]
        if given:
            raise click.UsageError(f"{' and '.join(given)} {'set' if len(given) > 1 else 'sets'} what --explain "
                                   "computes; add --explain")
        return None
    if (params.get("dtype") or "auto").lower() in ("float16", "bfloat16"):
        raise click.UsageError(f"--explain computes in float32 (integrated gradients sum many small steps); "
                               f"drop --dtype {params['dtype']}")
    if params.get("fmt") == "spans":
        raise click.UsageError("--format spans writes entity spans only; drop --format spans to see --explain's "
                               "attributions (-f jsonl)")
    if joint:
        raise click.UsageError("--explain explains each mask predicted with the others still masked; drop --joint")
    return ExplainOptions(label, steps or DEFAULT_STEPS)


def torch_model(lm, params: dict, task: str, default: str | None = None):
    """The model as torch runs it: integrated gradients need autograd, which the torch-free
    fast path (``lm.numpy``, a small input) does not have; it is loaded again from the same
    folder then."""
    if not getattr(lm, "numpy", False):
        return lm
    from ..loading import load_model

    return load_model(str(lm.path), task, params.get("device", "auto"), params.get("dtype", "auto"), default=default)


def explained_stream(lm, records, opts, params: dict, task: str, run: Callable, add: Callable,
                     default: str | None = None):
    """``run(lm, records, opts)`` (a task's stream) with ``add(lm, records, results)`` adding
    the explanations of each window, on the torch model; progress counts explained records."""
    from ..tasks import explain as X
    from ..tasks.base import StreamOptions

    tlm = torch_model(lm, params, task, default)
    inner = StreamOptions(batch_size=opts.batch_size, max_tokens=opts.max_tokens, window=opts.window)
    return X.stream(run(tlm, records, inner), lambda recs, res: add(tlm, recs, res), opts.window, opts.progress)


class ConvergenceWarning:
    """One warning per run when a record's convergence delta is large: more than 5% of the
    logit change it explains (and above 0.01 logits), so the attributions are an inaccurate
    integral and more ``--ig-steps`` would change them."""

    def __init__(self, steps: int, quiet: bool):
        self.steps, self.quiet, self.done = steps, quiet, False

    def check(self, rec, explanation: dict) -> None:
        if self.done:
            return
        change = abs(explanation["logit"] - explanation["baseline_logit"])
        d = abs(explanation["delta"])
        if d > 0.01 and d > 0.05 * change:
            self.done = True
            where = f"line {rec.line}" if rec.line else f"text {rec.index + 1}"
            warn(f"{where}: integrated gradients' convergence delta {explanation['delta']:.3g} is "
                 f"{d / max(change, 1e-12):.0%} of the logit change it explains ({self.steps} steps); raise "
                 "--ig-steps for more exact attributions (further warnings suppressed)", self.quiet)


def resolve_label(names: list[str], value: str, sentiment: bool = False) -> int:
    """The id of ``--explain-label``: a label name of the model, or (``sentiment``) the
    sentiment one label maps to (``positive`` for ``POSITIVE`` or ``LABEL_1``).

    Raises:
        UsageError: no label (or more than one, for a sentiment word) has that name.
    """
    from ..errors import UsageError
    from ..tasks.classify import normalise_sentiment

    if value in names:
        return names.index(value)
    if sentiment:
        hits = [i for i, n in enumerate(names) if normalise_sentiment(n, names) == value.strip().lower()]
        if len(hits) == 1:
            return hits[0]
    raise UsageError(f"--explain-label '{value}' is not a label of the model",
                     f"use one of {', '.join(names[:20])}{', ...' if len(names) > 20 else ''}")


def label_stream(run: Callable, ex: ExplainOptions, labels: list[str] | None, pairs: bool, params: dict,
                 default: str | None = None, sentiment: bool = False) -> Callable:
    """classify/sentiment: ``run`` (the task's stream) with each record's ``attributions`` and
    ``explanation`` added, explaining its predicted label or ``--explain-label``."""
    from ..tasks import classify as C
    from ..tasks import explain as X

    conv = ConvergenceWarning(ex.steps, params.get("quiet", False))

    def add(lm, recs, results):
        names = C.label_names(lm.config, labels)
        want = resolve_label(names, ex.label, sentiment) if ex.label is not None else None
        ids = [want if want is not None else names.index(r["label"]) for r in results]
        got = X.explain_classify(lm, [r.text for r in recs], [r.text_pair or "" for r in recs] if pairs else None,
                                 ids, steps=ex.steps, label_names=names)
        for rec, res, e in zip(recs, results, got):
            res.update(e)
            conv.check(rec, e["explanation"])

    return lambda lm, recs, opts: explained_stream(lm, recs, opts, params, "classify", run, add, default)


def ner_stream(run: Callable, ex: ExplainOptions, aggregation: str | None, stride: int | None,
               params: dict) -> Callable:
    """ner: each entity gets its own ``attributions`` and ``explanation``."""
    from ..tasks import explain as X

    conv = ConvergenceWarning(ex.steps, params.get("quiet", False))

    def add(lm, recs, results):
        got = X.explain_ner(lm, [r.text for r in recs], results, aggregation=aggregation, stride=stride,
                            steps=ex.steps)
        for rec, res, per in zip(recs, results, got):
            for ent, e in zip(res["entities"], per):
                ent.update(e)
                if e:
                    conv.check(rec, e["explanation"])

    return lambda lm, recs, opts: explained_stream(lm, recs, opts, params, "ner", run, add)


def fill_mask_stream(run: Callable, ex: ExplainOptions, mask_token: str | None, params: dict) -> Callable:
    """fill-mask: ``explanations``, one per mask, of its top candidate (or ``--explain-label``)."""
    from ..tasks import explain as X

    conv = ConvergenceWarning(ex.steps, params.get("quiet", False))

    def add(lm, recs, results):
        got = X.explain_fill_mask(lm, [r.text for r in recs], results, mask_token=mask_token, target=ex.label,
                                  steps=ex.steps)
        for rec, res, per in zip(recs, results, got):
            res["explanations"] = per
            for e in per:
                conv.check(rec, e["explanation"])

    return lambda lm, recs, opts: explained_stream(lm, recs, opts, params, "fill-mask", run, add)


# ---------------------------------------------------------------- terminal view

def _blend(rgb: tuple[int, int, int], t: float) -> tuple[int, int, int]:
    """White mixed with ``rgb`` by ``t`` in [0, 1] (0: white, 1: the colour)."""
    return tuple(int(round(255 + (c - 255) * t)) for c in rgb)  # type: ignore[return-value]


def shade(text: str, attributions: list[dict], focus: tuple[int, int] | None = None, limit: int = MAX_CHARS,
          sequence: int | None = None):
    """``text`` as a rich ``Text`` with each word's background green (positive score) or red
    (negative), stronger the larger ``|score|`` is against the largest in the list; words
    under 5% of it stay plain. ``focus`` (a character span: the entity, the mask) is bold and
    underlined. Line breaks show as spaces; a text longer than ``limit`` is cut around the
    focus (or its start) with ellipses. ``sequence``: only the words of that text of a pair."""
    from rich.style import Style
    from rich.text import Text

    words = [a for a in attributions if sequence is None or a.get("sequence_id", 0) == sequence]
    top = max((abs(a["score"]) for a in words), default=0.0)
    shown = text.replace("\r", " ").replace("\n", " ").replace("\t", " ")
    lo, hi = 0, len(shown)
    if len(shown) > limit:
        centre = (focus[0] + focus[1]) // 2 if focus else 0
        lo = max(0, min(centre - limit // 2, len(shown) - limit))
        hi = lo + limit
    out = Text(("…" if lo else "") + shown[lo:hi] + ("…" if hi < len(shown) else ""))
    off = 1 if lo else 0

    def span(s, e):
        s, e = max(s, lo), min(e, hi)
        return (s - lo + off, e - lo + off) if e > s else None

    if top > 0:
        for a in words:
            t = abs(a["score"]) / top
            if t < 0.05:
                continue
            sp = span(a["start"], a["end"])
            if sp:
                bg = _blend(GREEN if a["score"] > 0 else RED, 0.2 + 0.8 * t)
                # explicit RGB: a terminal theme's "white" can be light grey, unreadable on green
                fg = "rgb(0,0,0)" if t < 0.55 else "rgb(255,255,255)"
                out.stylize(Style(color=fg, bgcolor=f"rgb({bg[0]},{bg[1]},{bg[2]})"), *sp)
    if focus:
        sp = span(*focus)
        if sp:
            out.stylize(Style(bold=True, underline=True), *sp)
    return out


def top_words(attributions: list[dict], n: int = 3) -> str:
    """The ``n`` words of largest ``|score|``, signed: ``superb +1.73, thin -0.82``."""
    best = sorted(attributions, key=lambda a: -abs(a["score"]))[:n]
    return ", ".join(f"{short(a['word'], 20)} {a['score']:+.2f}" for a in best)


def shaded_pair(rec: dict):
    """The text (and text_pair) of a classify record, shaded by its attributions."""
    from rich.text import Text

    attrs = rec.get("attributions") or []
    if rec.get("text_pair") is None:
        return shade(rec.get("text") or "", attrs)
    half = MAX_CHARS // 2
    return Text(" | ").join([shade(rec.get("text") or "", attrs, limit=half, sequence=0),
                             shade(rec.get("text_pair") or "", attrs, limit=half, sequence=1)])


class ExplainedLabelTable:
    """``classify``/``sentiment`` with ``--explain`` at a terminal: the shaded text, the label
    explained (and the predicted one, when ``--explain-label`` chose another), its score, and
    the strongest words with their scores."""

    def __init__(self, key: str = "label", chosen: bool = False):
        self.key, self.chosen = key, chosen
        self.columns = [TEXT_COLUMN, key, "score"] + (["explained"] if chosen else []) + ["top words"]

    def fit(self, n_labels: int) -> None:  # the LabelTable interface; all columns stay
        pass

    def rows(self, rec: dict) -> list[list]:
        ex = rec.get("explanation") or {}
        label = rec[self.key] if rec.get(self.key) is not None else rec["label"]
        return [[shaded_pair(rec), label, fmt_score(rec["score"])] + ([str(ex.get("label", ""))] if self.chosen else [])
                + [top_words(rec.get("attributions") or [])]]


def ner_rows(rec: dict) -> list[list]:
    """One row per entity: the text shaded by that entity's attributions, the entity underlined."""
    ents = rec["entities"]
    if not ents:
        return [[short(rec.get("text")), "", "", "", "", ""]]
    rows = []
    for e in ents:
        attrs = e.get("attributions") or []
        rows.append([shade(rec.get("text") or "", attrs, focus=(e["start"], e["end"])),
                     e.get("entity_group") or e.get("entity"), e["word"], f"{e['start']}-{e['end']}",
                     fmt_score(e["score"]), top_words(attrs)])
    return rows


NER_COLUMNS = [TEXT_COLUMN, "entity", "word", "span", "score", "top words"]
FILL_MASK_COLUMNS = [TEXT_COLUMN, "mask", "token", "score", "explained", "top words"]


def fill_mask_columns(chosen: bool) -> list[str]:
    """The fill-mask table's columns; "explained" (the word explained) with ``--explain-label``."""
    return [c for c in FILL_MASK_COLUMNS if chosen or c != "explained"]


def fill_mask_rows(rec: dict, chosen: bool = False) -> list[list]:
    """Per mask: its predictions, the first row with the text shaded by the attributions of
    the explained candidate (the mask underlined)."""
    exs = {x["mask"]: x for x in rec.get("explanations") or []}
    rows = []
    for m, preds in enumerate(rec["predictions"]):
        x = exs.get(m)
        for rank, p in enumerate(preds):
            first = rank == 0
            text = ""
            if first and x is not None:
                span = _mask_span(rec, m, x)
                text = shade(rec.get("text") or "", x["attributions"], focus=span)
            elif first:
                text = short(rec.get("text"), 60)
            rows.append([text, str(m + 1) if first else "", p["token_str"], fmt_score(p["score"])]
                        + ([(x or {}).get("token_str", "") if first else ""] if chosen else [])
                        + [top_words(x["attributions"]) if first and x is not None else ""])
    return rows


def _mask_span(rec: dict, m: int, x: dict) -> tuple[int, int] | None:
    return (x["start"], x["end"]) if "start" in x else None
