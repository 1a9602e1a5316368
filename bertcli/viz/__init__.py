"""Pictures of attention: a self-contained HTML page and a PNG grid of heatmaps.

No Click or rich here (the CLI calls these, and so can library users). The HTML page
(``attention.html``, package data) has a head view and a model view after bertviz's (Vig
2019): lines from each query token to the key tokens it attends to, one colour per head,
opacity = weight, hover to inspect; everything inline, so it opens offline and fetches
nothing. The PNG needs matplotlib, the optional extra ``bertcli[viz]``.
"""

from __future__ import annotations

import base64
import json
import warnings
from importlib import resources

from ..errors import BertcliError

#: the placeholder in attention.html replaced by the data (a JSON object)
DATA_MARK = "/*BERTCLI_DATA*/"


def _u16(a) -> str:
    """Probabilities in [0, 1] as base64 of little-endian uint16 (step 1/65535, below the
    3 decimals the page shows): a third of the size of JSON numbers."""
    import numpy as np

    q = np.rint(np.clip(np.asarray(a, dtype=np.float64), 0.0, 1.0) * 65535).astype("<u2")
    return base64.b64encode(q.tobytes()).decode("ascii")


def script_json(obj) -> str:
    """JSON safe inside a ``<script>`` element: ``<``, ``>``, ``&`` and ``/`` escaped (no
    ``</script>`` can end it early, no ``<!--`` can open a comment), U+2028/U+2029 escaped;
    what ``JSON.parse`` reads back is unchanged. A URL in the user's text thus appears as
    ``https:\\/\\/...``, never as a link the page could follow."""
    s = json.dumps(obj, ensure_ascii=False, allow_nan=False)
    for a, b in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026"), ("/", "\\/"),
                 ("\u2028", "\\u2028"), ("\u2029", "\\u2029")):
        s = s.replace(a, b)
    return s


def render_html(result: dict, model: str, meta: str = "", layer: int = 0) -> str:
    """One self-contained HTML page for one text's attention.

    Args:
        result: a record of :func:`bertcli.tasks.attention.attention` (``tokens``,
            ``attention`` ``(L, H, n, n)``, optional ``rollout`` ``(n, n)``).
        model: the model's name, shown in the title.
        meta: a line under the title (the text, sizes).
        layer: the layer the head view opens on (0-based).

    Returns:
        The page (UTF-8 text): the template with the data inlined as JSON, attention as
        base64 uint16 (weights to 1/65535).
    """
    att = result["attention"]
    L, H, n = int(att.shape[0]), int(att.shape[1]), int(att.shape[2])
    data = {"model": model, "meta": meta, "tokens": list(result["tokens"]), "layers": L, "heads": H,
            "layer": int(layer) % L if L else 0, "attention": _u16(att),
            "rollout": _u16(result["rollout"]) if result.get("rollout") is not None else None}
    if n != len(data["tokens"]):
        raise ValueError(f"{len(data['tokens'])} tokens but attention over {n}")
    template = resources.files(__package__).joinpath("attention.html").read_text(encoding="utf-8")
    return template.replace(DATA_MARK, script_json(data), 1)


def render_png(path: str, tokens: list[str], mats, titles: list[str], suptitle: str = "") -> None:
    """Save a grid of attention heatmaps (rows: query tokens, columns: key tokens) to ``path``.

    Args:
        mats: ``(k, n, n)`` matrices, one panel each; ``titles``: one per panel.

    Raises:
        BertcliError: matplotlib is not installed (the hint names the extra), or the file
            cannot be written.
    """
    try:
        import matplotlib
    except ImportError:
        raise BertcliError("--png needs matplotlib, which is not installed",
                           "pip install 'bertcli[viz]' (or pip install matplotlib)") from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    mats = np.asarray(mats)
    k, n = mats.shape[0], len(tokens)
    cols = min(k, 4)
    rows = -(-k // cols)
    cell = max(2.6, min(0.22 * n + 1.2, 9.0))
    fig, axes = plt.subplots(rows, cols, figsize=(cell * cols, cell * rows + (0.5 if suptitle else 0)),
                             squeeze=False, constrained_layout=True)
    fs = max(3.0, min(9.0, 220.0 / max(n, 1) / max(cols, 1) * cell / 2.6))
    # "$" would start matplotlib's mathtext (a token "$" in two labels made a parse error)
    labels = [t.replace("$", r"\$") for t in tokens]
    for idx, ax in enumerate(axes.flat):
        if idx >= k:
            ax.axis("off")
            continue
        im = ax.imshow(mats[idx], cmap="viridis", vmin=0.0, interpolation="nearest", aspect="equal")
        ax.set_title(titles[idx].replace("$", r"\$"), fontsize=10)
        ax.set_xticks(range(n))
        ax.set_yticks(range(n))
        ax.set_xticklabels(labels, rotation=90, fontsize=fs)
        ax.set_yticklabels(labels, fontsize=fs)
        ax.tick_params(length=0)
        fig.colorbar(im, ax=ax, fraction=0.046, pad=0.02).ax.tick_params(labelsize=7)
    if suptitle:
        fig.suptitle(suptitle.replace("$", r"\$"), fontsize=11)
    try:
        with warnings.catch_warnings():
            # a token the font has no glyph for (CJK, emoji) is drawn as a box, not a warning
            warnings.simplefilter("ignore")
            fig.savefig(path, dpi=110)
    except OSError as e:
        raise BertcliError(f"cannot write '{path}': {e.strerror or e}") from None
    finally:
        plt.close(fig)
