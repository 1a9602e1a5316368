"""Training and evaluation data readers: classification, NER and raw text.

Every reader returns plain Python objects (no tensors) and raises
:class:`bertcli.errors.DataError` naming the file and the 1-based line for data it
cannot use. Problems that can be repaired without guessing (an IOB2 entity that starts
with ``I-``, a line that is not UTF-8) are repaired the way the reference tools do and
*reported* in the result's ``warnings`` list, never dropped silently.

Modules, one concern each (everything public is re-exported here, so
``from bertcli.train.data import read_ner`` is the import path to use):

* :mod:`.lines`: a file's lines and their decoding (``encoding="auto"``: UTF-8, BOM and
  CRLF accepted, a non-UTF-8 line read as latin-1 and reported); :class:`Issue`.
* :mod:`.classify`: :func:`read_classification` (JSONL, CSV, TSV, label-text).
* :mod:`.tags`: NER tag schemes (IOB1, IOB2, BIOES): detection, conversion, validation.
* :mod:`.ner`: :func:`read_ner` (CoNLL columns, JSONL tokens/tags, and the span formats);
  :func:`conll_documents` (a CoNLL file's articles as sentences of tokens).
* :mod:`.spans`: character-span annotations (doccano, spaCy/Prodigy, Label Studio) as
  words and BIO tags; :func:`split_words`, :func:`spans_to_tags`, :func:`entities_to_spans`.
* :mod:`.documents`: :func:`read_documents`, raw text for MLM/NSP.
"""

from __future__ import annotations

from .classify import (CLASSIFY_FORMATS, LABEL_FIELDS, PAIR_FIELDS, TEXT_FIELDS, ClassifyData, ClassifyExample,
                       label_order, read_classification)
from .documents import Document, read_documents, split_sentences, strip_gutenberg
from .lines import Issue, read_lines
from .ner import NER_FORMATS, NerData, NerSentence, conll_documents, looks_like_conll, read_ner
from .spans import SPAN_FORMATS, SPAN_KEYS, SpanError, entities_to_spans, split_words, spans_to_tags
from .tags import SCHEMES, detect_scheme, iob1_to_iob2, sort_tags, validate_tags

__all__ = ["CLASSIFY_FORMATS", "LABEL_FIELDS", "NER_FORMATS", "PAIR_FIELDS", "SCHEMES", "SPAN_FORMATS", "SPAN_KEYS",
           "TEXT_FIELDS", "ClassifyData", "ClassifyExample", "Document", "Issue", "NerData", "NerSentence",
           "SpanError", "conll_documents", "detect_scheme", "entities_to_spans", "iob1_to_iob2", "label_order", "looks_like_conll",
           "read_classification", "read_documents", "read_lines", "read_ner", "sort_tags", "spans_to_tags",
           "split_sentences", "split_words", "strip_gutenberg", "validate_tags"]
