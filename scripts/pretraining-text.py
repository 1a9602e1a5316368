#!/usr/bin/env python3
"""Lay out the pre-training text of the shipped fill-mask/nsp default (issue #5).

    scripts/pretraining-text.py DATA OUT [--heldout pg1661,pg35] [--no-extra]

Writes, under OUT (a scratch folder such as runs/defaults/pretrain-text; the data are
never copied into the repository):

* ``train/books/``: symlinks to every book of DATA/books except the held-out ones
  (each book is one document; ``bertcli train mlm`` strips the Gutenberg header);
* ``train/conll2003/``: one file per CoNLL-2003 train document (``-DOCSTART-``), its
  sentences rebuilt from the tokens (real Reuters articles, so NSP pairs are genuine);
* ``train/extra/``: the English sentences of sst2 (train), trec (train), mrpc (train,
  both strings) and rte (train, both sentences), one per paragraph, grouped into
  pseudo-documents of 20 consecutive sentences of one source;
* ``heldout/``: symlinks to the held-out books (whole books, never trained on).

``--no-extra`` leaves out ``train/extra/``: real documents only, for next-sentence training
(a pseudo-document of unrelated sentences makes IsNext labels that are noise).

Prints what it wrote; only the standard library is used.
"""
from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

from bertcli.train.data import conll_documents

csv.field_size_limit(sys.maxsize)


def rows(path: Path, cols: list[str]):
    with path.open(encoding="utf-8-sig", newline="") as f:
        for r in csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE):
            for c in cols:
                if r.get(c):
                    yield r[c].strip()


def write_groups(out: Path, name: str, sentences: list[str], size: int = 20) -> int:
    n = 0
    for i in range(0, len(sentences), size):
        (out / f"{name}-{i // size:05d}.txt").write_text("\n\n".join(sentences[i:i + size]) + "\n", encoding="utf-8")
        n += 1
    return n


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("data", type=Path)
    ap.add_argument("out", type=Path)
    ap.add_argument("--heldout", default="pg1661,pg35", help="comma-separated book id prefixes to hold out")
    ap.add_argument("--no-extra", action="store_true", help="books and CoNLL articles only (no train/extra/)")
    a = ap.parse_args()
    held = tuple(h + "_" for h in a.heldout.split(","))
    books = sorted((a.data / "books").glob("pg*.txt"))
    tr, ho = a.out / "train", a.out / "heldout"
    for d in (tr / "books", tr / "conll2003", tr / "extra", ho):
        d.mkdir(parents=True, exist_ok=True)
        for f in d.iterdir():
            f.unlink()
    if a.no_extra:
        (tr / "extra").rmdir()
    for b in books:
        (ho if b.name.startswith(held) else tr / "books").joinpath(b.name).symlink_to(b.resolve())
    # CoNLL-2003 train: documents of sentences of tokens.
    docs = [[" ".join(s) for s in doc] for doc in conll_documents(a.data / "conll2003" / "train.txt")]
    for i, d in enumerate(docs):
        (tr / "conll2003" / f"doc-{i:05d}.txt").write_text("\n\n".join(d) + "\n", encoding="utf-8")
    n_extra = 0
    if a.no_extra:
        print(f"{a.out}: {len(books) - len(list(ho.iterdir()))} training books, {len(docs)} CoNLL documents; "
              f"held out: {', '.join(sorted(p.name for p in ho.iterdir()))}")
        return
    n_extra += write_groups(tr / "extra", "sst2", list(rows(a.data / "sst2" / "train.tsv", ["sentence"])))
    trec = [ln.split(" ", 1)[1].strip() for ln in
            (a.data / "trec" / "train_5500.label").read_text(encoding="latin-1").splitlines() if " " in ln]
    n_extra += write_groups(tr / "extra", "trec", trec)
    n_extra += write_groups(tr / "extra", "mrpc", list(rows(a.data / "mrpc" / "train.tsv", ["#1 String", "#2 String"])))
    n_extra += write_groups(tr / "extra", "rte", list(rows(a.data / "rte" / "train.tsv", ["sentence1", "sentence2"])))
    print(f"{a.out}: {len(books) - len(list(ho.iterdir()))} training books, {len(docs)} CoNLL documents, "
          f"{n_extra} extra pseudo-documents; held out: {', '.join(sorted(p.name for p in ho.iterdir()))}")


if __name__ == "__main__":
    main()
