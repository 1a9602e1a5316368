"""NER tag schemes: IOB1, IOB2 (BIO) and BIOES; detection, conversion, validation, order.

A tag is ``O`` or ``PREFIX-TYPE``; BILOU's ``L``/``U`` are read as BIOES's ``E``/``S``.
The semantics are conlleval's (an IOB2 entity starting with ``I-X`` is an ``X`` entity),
which seqeval follows in its default mode.
"""

from __future__ import annotations

import re

from .lines import _err

SCHEMES = ("auto", "IOB1", "IOB2", "BIOES")
_TAG_RE = re.compile(r"^([BIESLU])[-_](.+)$")


def sort_tags(tags) -> list[str]:
    """``O`` first, then by entity type, then by prefix order B, I, E, S (stable, readable)."""
    order = {"B": 0, "I": 1, "E": 2, "S": 3}

    def key(t):
        if t == "O":
            return ("", -1)
        m = _TAG_RE.match(t)
        return (m.group(2), order.get(m.group(1), 9)) if m else (t, 9)
    return sorted(set(tags), key=key)



def _normalise_tag(tag: str, src, line) -> str:
    if tag == "O":
        return tag
    m = _TAG_RE.match(tag)
    if not m:
        raise _err(src, line, f"tag '{tag}' is not O or PREFIX-TYPE with PREFIX one of B, I, E, S (or L, U)",
                   "tags without a prefix (IO scheme) are not supported; convert them to IOB2")
    p = {"L": "E", "U": "S"}.get(m.group(1), m.group(1))
    return f"{p}-{m.group(2)}"


def _split(tag):
    return ("O", None) if tag == "O" else (tag[0], tag[2:])


def detect_scheme(tag_seqs) -> str:
    """IOB1, IOB2 or BIOES from tag sequences (see :func:`read_ner` for the rule)."""
    b_after_outside = i_start = False
    for tags in tag_seqs:
        prev = ("O", None)
        for t in tags:
            p, typ = _split(t)
            if p in ("E", "S"):
                return "BIOES"
            if p == "B" and prev[1] != typ:
                b_after_outside = True
            if p == "I" and prev[1] != typ:
                i_start = True
            prev = (p, typ)
    return "IOB1" if i_start and not b_after_outside else "IOB2"


def iob1_to_iob2(tags: list[str]) -> list[str]:
    """IOB1 -> IOB2: an ``I-X`` that does not continue an ``X`` entity becomes ``B-X``."""
    out = []
    prev_type = None
    for t in tags:
        p, typ = _split(t)
        if p == "I" and prev_type != typ:
            t = "B-" + typ
        out.append(t)
        prev_type = typ
    return out


def validate_tags(tags: list[str], scheme: str) -> tuple[list[str], list[tuple[int, str]]]:
    """Check one sentence's tags against ``scheme`` (IOB2 or BIOES).

    Returns:
        ``(fixed_tags, problems)``: problems are ``(token index, message)``. For IOB2 an
        ``I-X`` that does not continue an ``X`` entity is fixed to ``B-X`` (conlleval
        semantics); BIOES problems are reported and the tags kept.
    """
    fixed = list(tags)
    problems = []
    prev = ("O", None)
    for i, t in enumerate(tags):
        p, typ = _split(t)
        before = tags[i - 1] if i else "the sentence start"
        if scheme == "IOB2":
            if p in ("E", "S"):
                problems.append((i, f"tag {t} is not an IOB2 tag"))
            elif p == "I" and prev[1] != typ:
                problems.append((i, f"{t} follows {before}; an IOB2 entity starts with B- (read as B-{typ})"))
                fixed[i] = "B-" + typ
        else:  # BIOES
            open_ = prev[0] in ("B", "I")
            if p in ("I", "E") and not (open_ and prev[1] == typ):
                problems.append((i, f"{t} follows {before}; in BIOES it must continue a B-{typ}/I-{typ}"))
            elif p in ("B", "S", "O") and open_:
                problems.append((i, f"{tags[i - 1]} is not closed by E-{prev[1]} before {t}"))
        prev = (p, typ)
    if scheme == "BIOES" and tags and prev[0] in ("B", "I"):
        problems.append((len(tags) - 1, f"{tags[-1]} at the sentence end is not closed by E-{prev[1]}"))
    return fixed, problems

