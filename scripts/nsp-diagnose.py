#!/usr/bin/env python3
"""Two checks behind issue #16's next-sentence diagnosis (the numbers in the pretraining card).

    scripts/nsp-diagnose.py grad  TRAIN_DIR          # MLM vs NSP gradient on the shared encoder
    scripts/nsp-diagnose.py probe TRAIN_DIR HELDOUT_DIR tests/data/everyday_nsp.jsonl

TRAIN_DIR is `scripts/pretraining-text.py DATA OUT --no-extra`'s OUT/train (books/ and conll2003/),
HELDOUT_DIR its OUT/heldout. Both load the installed all-MiniLM-L6-v2 (no training).

* grad: 32 pairs of make_instances (128 tokens, seed 13) with BERT's masking through a
  BertForPreTraining made from the encoder (new heads): the MLM and NSP losses and the norm of the
  gradient each sends into the encoder's weights.
* probe: frozen features of 1,200 training pairs (text_pairs, 64-token targets, B drawn by length)
  and of the held-out pairs (novels: 400 of text_pairs at 128 tokens, seed 7; the everyday file):
  a logistic regression on the pair's [CLS] and on its mean-pooled output, and one on the cosine of
  mean(A) and mean(B) within the pair and of A and B encoded apart (with the AUC of the cosines).
Prints one line per result. Only torch and bertcli are used.
"""
from __future__ import annotations

import argparse
import json
import random
from pathlib import Path


def _encoder():
    from transformers import AutoTokenizer

    from bertcli import defaults

    d = defaults.default_encoder_dir()
    return d, AutoTokenizer.from_pretrained(str(d))


def grad(train: Path) -> None:
    import torch
    import torch.nn.functional as F
    from transformers import BertForPreTraining

    from bertcli.train.collate import Collator
    from bertcli.train.data import read_documents
    from bertcli.train.pretraining import make_instances

    torch.manual_seed(0)
    d, tok = _encoder()
    docs = read_documents(train / "books")[0][:6] + read_documents(train / "conll2003")[0][:200]
    inst = make_instances(tok, docs, 128, True, 13)
    batch = Collator(tok, mlm_probability=0.15)(random.Random(0).sample(inst, 32))
    m = BertForPreTraining.from_pretrained(str(d)).train()
    shared = [p for n, p in m.named_parameters() if n.startswith("bert.encoder")]
    res = {}
    for part in ("mlm", "nsp"):
        m.zero_grad()
        out = m.bert(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                     token_type_ids=batch["token_type_ids"])
        sel = batch["labels"] != -100
        loss = (F.cross_entropy(m.cls.predictions(out[0][sel]), batch["labels"][sel]) if part == "mlm"
                else F.cross_entropy(m.cls.seq_relationship(out[1]), batch["next_sentence_label"]))
        loss.backward()
        res[part] = (float(loss), float(torch.sqrt(sum((p.grad ** 2).sum() for p in shared))))
    print(f"grad: loss mlm {res['mlm'][0]:.3f} nsp {res['nsp'][0]:.3f}; encoder gradient norm mlm "
          f"{res['mlm'][1]:.4f} nsp {res['nsp'][1]:.4f} (ratio {res['mlm'][1] / res['nsp'][1]:.1f})")


def _features(model, tok, pairs):
    import torch

    feats = {k: [] for k in ("cls", "mean", "cos_in", "cos_apart")}

    def pooled(h, mask):
        return (h * mask[..., None]).sum(1) / mask.sum(1, keepdim=True)

    for i in range(0, len(pairs), 32):
        ps = pairs[i:i + 32]
        a, b = [p["text"] for p in ps], [p["text_pair"] for p in ps]
        with torch.no_grad():
            e = tok(a, b, truncation=True, max_length=128, padding=True, return_tensors="pt")
            h = model(**e).last_hidden_state
            am, tt = e["attention_mask"].float(), e["token_type_ids"].float()
            feats["cls"].append(h[:, 0])
            feats["mean"].append(pooled(h, am))
            feats["cos_in"].append(torch.cosine_similarity(pooled(h, am * (1 - tt)), pooled(h, am * tt))[:, None])
            ea = tok(a, truncation=True, max_length=128, padding=True, return_tensors="pt")
            eb = tok(b, truncation=True, max_length=128, padding=True, return_tensors="pt")
            sa = pooled(model(**ea).last_hidden_state, ea["attention_mask"].float())
            sb = pooled(model(**eb).last_hidden_state, eb["attention_mask"].float())
            feats["cos_apart"].append(torch.cosine_similarity(sa, sb)[:, None])
    y = torch.tensor([1.0 if p["label"] == "IsNext" else 0.0 for p in pairs])
    return {k: torch.cat(v) for k, v in feats.items()}, y


def _logistic(x, y, l2: float = 1e-3):
    import torch

    mu, sd = x.mean(0), x.std(0) + 1e-6
    w = torch.zeros(x.shape[1], requires_grad=True)
    b = torch.zeros(1, requires_grad=True)
    opt = torch.optim.LBFGS([w, b], max_iter=500, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        z = ((x - mu) / sd) @ w + b
        loss = torch.nn.functional.binary_cross_entropy_with_logits(z, y) + l2 * (w ** 2).sum()
        loss.backward()
        return loss
    opt.step(closure)
    return lambda t: (((t - mu) / sd) @ w + b).detach()


def _auc(score, y) -> float:
    pos, neg = score[y == 1], score[y == 0]
    return float((pos[:, None] > neg[None, :]).float().mean() + 0.5 * (pos[:, None] == neg[None, :]).float().mean())


def probe(train: Path, heldout: Path, everyday: Path) -> None:
    import torch
    from transformers import BertModel

    from bertcli.train.data import read_documents
    from bertcli.train.pretraining import text_pairs

    torch.manual_seed(0)
    d, tok = _encoder()
    model = BertModel.from_pretrained(str(d)).eval()
    tr = random.Random(0).sample(text_pairs(tok, read_documents(train)[0], 64, 3, random_b="length"), 1200)
    ho = random.Random(0).sample(text_pairs(tok, read_documents(heldout)[0], 128, 7), 400)
    ev = [json.loads(x) for x in everyday.read_text(encoding="utf-8").splitlines() if x.strip()]
    (ftr, ytr), (fho, yho), (fev, yev) = (_features(model, tok, p) for p in (tr, ho, ev))
    for k in ("cls", "mean", "cos_in", "cos_apart"):
        f = _logistic(ftr[k], ytr)
        acc = [float(((f(x) > 0).float() == y).float().mean()) for x, y in ((ftr[k], ytr), (fho[k], yho), (fev[k], yev))]
        line = f"probe {k}: train {acc[0]:.3f}, held-out novels {acc[1]:.3f}, everyday {acc[2]:.3f}"
        if k.startswith("cos"):
            line += f" (AUC novels {_auc(fho[k][:, 0], yho):.3f}, everyday {_auc(fev[k][:, 0], yev):.3f})"
        print(line, flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("check", choices=["grad", "probe"])
    ap.add_argument("paths", nargs="+", type=Path)
    a = ap.parse_args()
    if a.check == "grad":
        grad(a.paths[0])
    else:
        probe(*a.paths[:3])


if __name__ == "__main__":
    main()
