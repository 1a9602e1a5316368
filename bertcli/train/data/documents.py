"""Raw text for MLM/NSP pre-training: documents of sentences (:func:`read_documents`)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from ...errors import DataError
from .lines import Issue, read_lines


@dataclass
class Document:
    """One document: its source (file, and first line for blank-line separated files) and sentences."""

    source: str
    sentences: list[str]


_PG_START = re.compile(r"^\s*\*\*\*\s*START OF (THE|THIS) PROJECT GUTENBERG", re.I)
_PG_END = re.compile(r"^\s*\*\*\*\s*END OF (THE|THIS) PROJECT GUTENBERG", re.I)
_PG_CREDIT = re.compile(r"^\s*(Produced by|This (e-?text|e-?book) was (produced|prepared))", re.I)
_PG_TAIL = re.compile(r"^\s*End of (the |this )?Project Gutenberg", re.I)
_ABBREV = {"mr", "mrs", "ms", "dr", "st", "prof", "sr", "jr", "vs", "etc", "e.g", "i.e", "no", "vol", "fig",
           "mt", "capt", "col", "gen", "lt", "rev", "hon", "messrs", "mme", "mlle", "co", "inc", "ltd", "jan",
           "feb", "mar", "apr", "jun", "jul", "aug", "sep", "sept", "oct", "nov", "dec", "p", "pp", "cf"}
# A sentence ends at . ! ? (plus closing quotes/brackets) followed by whitespace, or at
# the CJK full stops which need no space after them.
_SENT_END = re.compile(r"([.!?…]+[\"'”’»)\]]*)(\s+)|([。！？]+[”’」』）]*)")


def strip_gutenberg(lines: list[str]) -> list[str]:
    """The lines between Project Gutenberg's ``*** START OF ...`` and ``*** END OF ...``
    markers (both excluded), without a leading "Produced by ..." credit paragraph and a
    trailing "End of the Project Gutenberg EBook ..." line; ``lines`` unchanged when
    there is no START marker."""
    start = next((i for i, s in enumerate(lines) if _PG_START.match(s)), None)
    if start is None:
        return lines
    end = next((i for i in range(start + 1, len(lines)) if _PG_END.match(lines[i])), len(lines))
    first_body = start + 1
    if not lines[start].rstrip().endswith("***"):
        # The marker's title can wrap onto the next lines, up to the closing "***".
        for j in range(start + 1, min(start + 4, end)):
            if lines[j].rstrip().endswith("***"):
                first_body = j + 1
                break
    body = lines[first_body:end]
    # Older releases also put a credit paragraph first and an "End of (the) Project
    # Gutenberg EBook of ..." line last, inside the markers.
    first = next((i for i, s in enumerate(body) if s.strip()), None)
    if first is not None and _PG_CREDIT.match(body[first]):
        j = first
        while j < len(body) and body[j].strip():
            j += 1
        body = body[j:]
    last = next((i for i in range(len(body) - 1, -1, -1) if body[i].strip()), None)
    if last is not None:
        j = last
        while j > 0 and body[j - 1].strip():
            j -= 1
        if _PG_TAIL.match(body[j]):  # the last paragraph (it may wrap)
            body = body[:j]
    return body


def split_sentences(text: str) -> list[str]:
    """Split a paragraph into sentences with a small rule set (no model).

    A sentence ends at ``.``, ``!``, ``?`` or ``…`` (with any closing quotes/brackets)
    followed by whitespace and then an upper-case letter, digit or opening quote/bracket,
    unless the word before the ``.`` is a known abbreviation (Mr., Dr., e.g.) or a single
    capital initial (``J. R. R. Tolkien``); and at the CJK full stops ``。！？``. Whitespace
    runs (including the hard line wraps of Gutenberg texts) become single spaces.
    """
    text = " ".join(text.split())
    out = []
    start = 0
    for m in _SENT_END.finditer(text):
        if m.group(3):  # CJK
            end = m.end()
        else:
            end = m.end(1)
            nxt = text[m.end():m.end() + 1]
            if not nxt or not (nxt.isupper() or nxt.isdigit() or nxt in "\"'“‘«([" or not nxt.isalpha()):
                continue
            if m.group(1).startswith(".") and len(m.group(1).rstrip("\"'”’»)]")) == 1:
                word = text[start:m.start()].rsplit(None, 1)[-1] if text[start:m.start()].strip() else ""
                w = word.lower().lstrip("(\"'“‘")
                if w in _ABBREV or (len(w) == 1 and w.isalpha()):
                    continue
        s = text[start:end].strip()
        if s:
            out.append(s)
        start = end
    tail = text[start:].strip()
    if tail:
        out.append(tail)
    return out


def _paragraph_sentences(lines: list[str]) -> list[str]:
    sents, para = [], []
    for s in lines + [""]:
        if s.strip():
            para.append(s.strip())
        elif para:
            sents.extend(split_sentences(" ".join(para)))
            para = []
    return sents


def read_documents(path: str | Path, *, documents: str = "auto", encoding: str = "auto",
                   gutenberg: bool = True, max_files: int | None = None) -> tuple[list[Document], list[Issue]]:
    """Read raw text for MLM/NSP pre-training as documents of sentences.

    Args:
        path: a text file or a folder (all non-hidden files below it, sorted by path).
        documents: ``file`` (each file is one document), ``blank-line`` (documents are
            separated by blank lines, the layout of BERT's ``create_pretraining_data.py``
            input) or ``auto``: a folder or a Project Gutenberg file is read per file,
            another single file by blank lines.
        encoding: see :func:`read_lines`.
        gutenberg: strip Project Gutenberg header and footer when the markers are present.
        max_files: read at most this many files from a folder.

    Returns:
        ``(documents, warnings)``; a document has at least one sentence. Within a
        per-file document, blank lines separate paragraphs, and sentences are split with
        :func:`split_sentences` (never across paragraphs).

    Raises:
        DataError: the path does not exist, holds no text, or ``documents`` is unknown.
    """
    if documents not in ("auto", "file", "blank-line"):
        raise DataError(f"unknown documents mode '{documents}'", "use auto, file or blank-line")
    p = Path(path)
    if not p.exists():
        raise DataError(f"data path '{p}' does not exist")
    if p.is_dir():
        files = sorted(f for f in p.rglob("*") if f.is_file() and not any(
            part.startswith(".") for part in f.relative_to(p).parts) and f.name.upper() not in ("SOURCE.MD",))
        if max_files:
            files = files[:max_files]
        mode = "file" if documents == "auto" else documents
    else:
        files = [p]
        mode = documents
    docs: list[Document] = []
    issues: list[Issue] = []
    for f in files:
        lines, iss = read_lines(f, encoding)
        issues.extend(iss)
        is_pg = gutenberg and any(_PG_START.match(s) for s in lines[:400])
        if gutenberg:
            lines = strip_gutenberg(lines)
        m = mode if mode != "auto" else ("file" if is_pg else "blank-line")
        if m == "file":
            sents = _paragraph_sentences(lines)
            if sents:
                docs.append(Document(str(f), sents))
        else:
            block: list[str] = []
            first = 0
            for n, s in enumerate(lines + [""], 1):
                if s.strip():
                    if not block:
                        first = n
                    block.append(s)
                elif block:
                    sents = _paragraph_sentences(block)
                    if sents:
                        docs.append(Document(f"{f}:{first}", sents))
                    block = []
    if not docs:
        raise DataError(f"no text found in '{p}'")
    return docs, issues
