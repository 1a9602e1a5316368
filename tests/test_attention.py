"""``bertcli attention`` and :mod:`bertcli.tasks.attention`.

References: transformers' own ``output_attentions=True`` (eager attention) of the same
folder, for the native encoder (BERT, RoBERTa, DistilBERT, ELECTRA) and for the transformers
path (``BERTCLI_BACKEND=transformers``; ALBERT, DeBERTa-v3, ModernBERT always), to 1e-5;
attention rollout against a hand computation; the HTML page parsed, checked for network
references, its data decoded back, and (where node is installed) its script run on a stub DOM.
"""

from __future__ import annotations

import base64
import json
import re
import shutil
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

import hub_layouts as H
from bertcli.cli.main import cli
from bertcli.errors import UsageError
from bertcli.tasks import attention as A

TEXT = "The animal didn't cross the street because it was tired."
PAIR = ("He opened the fridge.", "It was empty.")
NATIVE = ["bert", "bert-classifier", "roberta-base", "distilbert-sst2", "electra-emotion"]
TRANSFORMERS_ONLY = ["albert-base-v2", "deberta-v3-nli", "modernbert-base"]


@pytest.fixture(scope="module")
def folder(tmp_path_factory, encoder_dir, cls_dir):
    root = tmp_path_factory.mktemp("att")
    built = {"bert": encoder_dir, "bert-classifier": cls_dir}

    def get(name):
        if name not in built:
            built[name] = H.build(name, root / name)
        return built[name]

    return get


def reference(path: Path, text: str, pair: str | None = None):
    """(tokens, (L, H, n, n) attention) from transformers' eager attention on ``path``."""
    from transformers import AutoModel, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(path), local_files_only=True)
    model = AutoModel.from_pretrained(str(path), local_files_only=True, attn_implementation="eager",
                                      dtype=torch.float32).eval()
    enc = tok(text, pair, return_tensors="pt")
    with torch.no_grad():
        att = model(**enc, output_attentions=True).attentions
    return tok.convert_ids_to_tokens(enc["input_ids"][0]), torch.stack([a[0] for a in att]).numpy()


def check_against_reference(path, backend_native: bool):
    lm = A.load(path)
    assert lm.native is backend_native
    for text, pair in ((TEXT, None), PAIR):
        got = A.attention(lm, [text], None if pair is None else [pair])[0]
        tokens, ref = reference(path, text, pair)
        assert got["tokens"] == tokens
        assert got["attention"].shape == ref.shape
        assert (got["layers"], got["heads"]) == ref.shape[:2]
        np.testing.assert_allclose(got["attention"].sum(-1), 1.0, atol=1e-5)
        np.testing.assert_allclose(got["attention"], ref, atol=1e-5, rtol=0)
        assert got["truncated"] is False


@pytest.mark.parametrize("name", NATIVE)
def test_native_equals_output_attentions(folder, name, monkeypatch):
    monkeypatch.delenv("BERTCLI_BACKEND", raising=False)
    check_against_reference(folder(name), backend_native=True)


@pytest.mark.parametrize("name", NATIVE[:3] + TRANSFORMERS_ONLY)
def test_transformers_path_equals_output_attentions(folder, name, monkeypatch):
    monkeypatch.setenv("BERTCLI_BACKEND", "transformers")
    check_against_reference(folder(name), backend_native=False)


@pytest.mark.minilm
def test_default_encoder_on_real_lines(minilm_dir, shared_data, monkeypatch):
    """No --model: the all-MiniLM-L6-v2 encoder (6 layers, 12 heads), on SST-2 dev lines,
    both backends against transformers."""
    lines = [ln.split("\t")[0].strip() for ln in (shared_data / "sst2" / "dev.tsv").read_text().splitlines()[1:4]]
    for backend in ("native", "transformers"):
        monkeypatch.setenv("BERTCLI_BACKEND", backend)
        lm = A.load()
        assert Path(lm.path) == minilm_dir
        for text, got in zip(lines, A.attention(lm, lines)):
            tokens, ref = reference(minilm_dir, text)
            assert got["tokens"] == tokens and got["attention"].shape == (6, 12, len(tokens), len(tokens))
            np.testing.assert_allclose(got["attention"], ref, atol=1e-5, rtol=0)


def test_opt_in_path_leaves_the_fast_path_alone(encoder_dir):
    """The regular forward pass (SDPA) gives the same bits before and after attentions() ran,
    the opt-in pass computes the same hidden states (to rounding), and a batch of several
    lengths gives each sequence's probabilities as it alone does."""
    lm = A.load(encoder_dir)
    net = lm.model
    ids = torch.randint(5, 60, (3, 12))
    mask = (torch.arange(12)[None, :] < torch.tensor([12, 7, 3])[:, None]).long()
    ids[mask == 0] = 0
    with torch.inference_mode():
        before = net(ids, mask)
        probs = net.attentions(ids, mask)
        after = net(ids, mask)
        x_sdpa, _ = net.encode(ids, mask)
        x_eager, _ = net.encode(ids, mask, probs=[])
        alone = [net.attentions(ids[i:i + 1, :n], mask[i:i + 1, :n])[0] for i, n in enumerate((12, 7, 3))]
    assert torch.equal(before, after)
    torch.testing.assert_close(x_eager, x_sdpa, atol=1e-5, rtol=0)
    assert [tuple(p.shape) for p in probs] == [(2, 2, 12, 12), (2, 2, 7, 7), (2, 2, 3, 3)]
    for p, q in zip(probs, alone):
        torch.testing.assert_close(p, q, atol=1e-6, rtol=0)


def test_truncated_to_the_models_maximum(encoder_dir):
    lm = A.load(encoder_dir)
    got = A.attention(lm, [" ".join(["a"] * 300)])[0]
    assert got["truncated"] is True and got["attention"].shape[-1] == lm.max_length == 128


# ---------------------------------------------------------------- rollout

def test_rollout_by_hand():
    """Two layers, two heads, two tokens:
    layer 0 heads [[1,0],[0,1]] and [[0,1],[1,0]] -> mean [[.5,.5],[.5,.5]] -> 0.5 I + 0.5 mean =
    [[.75,.25],[.25,.75]]; layer 1 both heads [[1,0],[1,0]] -> [[1,0],[.5,.5]];
    rollout = layer1 @ layer0 = [[.75,.25],[.5*.75+.5*.25, .5*.25+.5*.75]] = [[.75,.25],[.5,.5]]
    (the other order would give [[.875,.125],[.625,.375]])."""
    att = np.array([[[[1, 0], [0, 1]], [[0, 1], [1, 0]]],
                    [[[1, 0], [1, 0]], [[1, 0], [1, 0]]]], dtype=np.float32)
    np.testing.assert_allclose(A.attention_rollout(att), [[0.75, 0.25], [0.5, 0.5]], atol=1e-12)
    # one layer of one head: 0.5 I + 0.5 A
    a = np.array([[[[0.2, 0.3, 0.5], [0.6, 0.4, 0.0], [1 / 3, 1 / 3, 1 / 3]]]])
    np.testing.assert_allclose(A.attention_rollout(a), 0.5 * np.eye(3) + 0.5 * a[0, 0], atol=1e-12)


def test_rollout_of_a_real_model_sums_to_one(encoder_dir):
    got = A.attention(A.load(encoder_dir), [TEXT], rollout=True)[0]
    n = len(got["tokens"])
    assert got["rollout"].shape == (n, n)
    np.testing.assert_allclose(got["rollout"].sum(-1), 1.0, atol=1e-6)
    att = got["attention"].astype(np.float64)
    hand = (0.5 * np.eye(n) + 0.5 * att[1].mean(0)) @ (0.5 * np.eye(n) + 0.5 * att[0].mean(0))
    np.testing.assert_allclose(got["rollout"], hand, atol=1e-9)


# ---------------------------------------------------------------- selection

def test_select():
    att = np.random.default_rng(0).random((3, 4, 5, 5)).astype(np.float32)
    a, layers, heads = A.select(att)
    assert a.shape == (3, 4, 5, 5) and layers == [0, 1, 2] and heads == [0, 1, 2, 3]
    a, layers, heads = A.select(att, -1, 2)
    assert layers == [2] and heads == [2] and np.array_equal(a[0, 0], att[2, 2])
    a, layers, heads = A.select(att, 0, "mean")
    assert heads == "mean" and a.shape == (1, 1, 5, 5)
    np.testing.assert_allclose(a[0, 0], att[0].mean(0), atol=1e-7)
    with pytest.raises(UsageError, match=r"--layer 3 is out of range: the model has 3 layers \(0..2; -1 is the last\)"):
        A.select(att, 3)
    with pytest.raises(UsageError, match=r"--head -5 is out of range: the model has 4 heads"):
        A.select(att, 0, -5)
    with pytest.raises(UsageError, match="not a head number or 'mean'"):
        A.parse_head("first")


# ---------------------------------------------------------------- CLI

def run(*args, input=None):
    return CliRunner().invoke(cli, list(args), input=input)


def test_cli_jsonl_every_layer_and_head(encoder_dir):
    r = run("attention", TEXT, "-m", str(encoder_dir), "-f", "jsonl")
    assert r.exit_code == 0, r.output
    assert r.stderr == ""
    rec = json.loads(r.stdout)
    assert list(rec) == ["text", "tokens", "layers", "heads", "layer", "head", "attention", "truncated"]
    ref = A.attention(A.load(encoder_dir), [TEXT])[0]
    assert rec["tokens"] == ref["tokens"] and (rec["layers"], rec["heads"]) == (2, 2)
    assert rec["layer"] == [0, 1] and rec["head"] == [0, 1]
    np.testing.assert_allclose(np.array(rec["attention"]), ref["attention"], atol=6e-7)


def test_cli_jsonl_selection_pair_and_rollout(encoder_dir):
    r = run("attention", *PAIR, "-m", str(encoder_dir), "-f", "jsonl", "--layer", "-1", "--head", "mean",
            "--rollout", "--precision", "4")
    assert r.exit_code == 0, r.output
    rec = json.loads(r.stdout)
    assert (rec["text"], rec["text_pair"]) == PAIR
    assert rec["tokens"].count("[SEP]") == 2
    assert rec["layer"] == [1] and rec["head"] == "mean"
    ref = A.attention(A.load(encoder_dir), [PAIR[0]], [PAIR[1]], rollout=True)[0]
    a = np.array(rec["attention"])
    assert a.shape == (1, 1, len(ref["tokens"]), len(ref["tokens"]))
    np.testing.assert_allclose(a[0, 0], ref["attention"][1].mean(0), atol=5e-5)
    np.testing.assert_allclose(np.array(rec["rollout"]), ref["rollout"], atol=5e-5)
    r = run("attention", TEXT, "-m", str(encoder_dir), "-f", "jsonl", "--layer", "0", "--head", "1")
    rec = json.loads(r.stdout)
    assert rec["layer"] == [0] and rec["head"] == [1] and len(rec["attention"]) == 1 == len(rec["attention"][0])


def test_cli_streams_records_from_stdin(encoder_dir):
    r = run("attention", "-m", str(encoder_dir), "-f", "jsonl", "--layer", "0", "--head", "0",
            input="first text\nsecond, longer text here\n")
    assert r.exit_code == 0, r.output
    recs = [json.loads(x) for x in r.stdout.splitlines()]
    assert [x["text"] for x in recs] == ["first text", "second, longer text here"]
    assert [len(x["attention"][0][0]) for x in recs] == [len(x["tokens"]) for x in recs]


def test_cli_usage_errors(encoder_dir):
    r = run("attention", TEXT, "-m", str(encoder_dir), "-f", "jsonl", "--layer", "9")
    assert r.exit_code == 2 and r.stdout == ""
    assert r.stderr == "Error: --layer 9 is out of range: the model has 2 layers (0..1; -1 is the last)\n"
    r = run("attention", TEXT, "-m", str(encoder_dir), "--head", "first")
    assert r.exit_code == 2 and r.stderr == "Error: --head 'first' is not a head number or 'mean'\n"
    r = run("attention", "a", "b", "c")
    assert r.exit_code == 2 and "one text or one pair" in r.stderr
    r = run("attention", TEXT, "--tokens", "5:2")
    assert r.exit_code == 2 and "START:END" in r.stderr
    r = run("attention", "-m", str(encoder_dir), "--html", "x.html", input="one\ntwo\n")
    assert r.exit_code == 2 and "draw one text" in r.stderr and r.stderr.count("\n") == 1


def test_cli_table_heatmap(encoder_dir):
    r = run("attention", "He opened the fridge.", "-m", str(encoder_dir), "-f", "table", "--head", "1")
    assert r.exit_code == 0, r.output
    lines = r.stdout.splitlines()
    assert lines[0] == "#1 He opened the fridge."
    assert lines[1] == "layer 1 of 0..1, head 1 of 0..1: row token attends to column token"
    rows = [ln for ln in lines if re.match(r"\s*\d+ ", ln) and not ln.endswith("(largest weight shown)")]
    tokens = A.attention(A.load(encoder_dir), ["He opened the fridge."])[0]["tokens"]
    assert [ln.split()[:2] for ln in rows] == [[str(i), t] for i, t in enumerate(tokens)]
    assert lines[-2].strip().startswith("0") and lines[-2].endswith("(largest weight shown)")
    # the column labels are the tokens written downwards, two cells per column
    head = lines[2:2 + max(len(t) for t in tokens)]
    assert "".join(ln[15] for ln in head).rstrip() == tokens[0]


def test_cli_table_refuses_or_windows_a_long_text(encoder_dir):
    long = " ".join(["the"] * 60)
    r = run("attention", long, "-m", str(encoder_dir), "-f", "table")
    assert r.exit_code == 1
    assert r.stderr == ("Error: the text makes 62 tokens; a heatmap of at most 32 fits this terminal's 80 columns; "
                        "show a window with --tokens 0:32 (then 32:62, ...), or write it all with -f jsonl, "
                        "--html FILE or --png FILE\n")
    r = run("attention", long, "-m", str(encoder_dir), "-f", "table", "--tokens", "30:40")
    assert r.exit_code == 0, r.output
    assert "tokens 30..39 of 0..61" in r.stdout
    assert [ln.split()[0] for ln in r.stdout.splitlines() if re.match(r"\s*\d+\s+the", ln)] == \
        [str(i) for i in range(30, 40)]


class _Parser(HTMLParser):
    VOID = {"meta", "link", "br", "img", "input", "hr"}

    def __init__(self):
        super().__init__()
        self.stack, self.attrs, self.scripts, self._in = [], [], [], None

    def handle_starttag(self, tag, attrs):
        self.attrs += attrs
        if tag not in self.VOID:
            self.stack.append(tag)
        if tag == "script":
            self._in = dict(attrs)
            self.scripts.append([dict(attrs), ""])

    def handle_endtag(self, tag):
        assert self.stack and self.stack[-1] == tag, (self.stack[-3:], tag)
        self.stack.pop()

    def handle_data(self, data):
        if self.stack and self.stack[-1] == "script":
            self.scripts[-1][1] += data


def _decode_u16(b64: str, shape) -> np.ndarray:
    return np.frombuffer(base64.b64decode(b64), dtype="<u2").reshape(shape) / 65535.0


def test_html_is_self_contained_and_carries_the_attention(encoder_dir, tmp_path):
    text = "see https://example.com/x?a=1 and </script><script>alert(1)</script> & more"
    out = tmp_path / "attn.html"
    r = run("attention", text, "-m", str(encoder_dir), "--html", str(out), "--rollout")
    assert r.exit_code == 0, r.output
    assert r.stdout == ""
    assert r.stderr.startswith(f"Wrote {out}: head view and model view of 2 layers x 2 heads, ")
    page = out.read_text(encoding="utf-8")
    assert not re.search(r"https?://", page, re.I)
    p = _Parser()
    p.feed(page)
    p.close()
    assert p.stack == []
    assert not any(k in ("src", "href") for k, _ in p.attrs)  # nothing to fetch
    assert [s[0] for s in p.scripts] == [{"id": "bertcli-data", "type": "application/json"}, {}]
    data = json.loads(p.scripts[0][1])
    ref = A.attention(A.load(encoder_dir), [text], rollout=True)[0]
    n = len(ref["tokens"])
    assert data["tokens"] == ref["tokens"] and (data["layers"], data["heads"]) == (2, 2)
    np.testing.assert_allclose(_decode_u16(data["attention"], (2, 2, n, n)), ref["attention"], atol=1 / 65535)
    np.testing.assert_allclose(_decode_u16(data["rollout"], (n, n)), ref["rollout"], atol=1 / 65535)
    assert text in data["meta"]


#: a stub DOM, enough for the page's script: elements record listeners, canvases accept any
#: drawing call; the tooltip's text is printed as JSON for the test to read
STUB = r"""
const fs = require("fs");
const html = fs.readFileSync(process.argv[2], "utf8");
const data = html.match(/<script id="bertcli-data" type="application\/json">([\s\S]*?)<\/script>/)[1];
const code = html.match(/<script>([\s\S]*?)<\/script>/)[1];
function El(tag) {
  this.tag = tag; this.children = []; this.listeners = {}; this.style = {}; this.dataset = {}; this.hidden = false;
  this.textContent = ""; this.value = ""; this.className = ""; this.offsetWidth = 100; this.offsetHeight = 40;
  const self = this;
  this.classList = { toggle: function () {} };
}
El.prototype.appendChild = function (c) { this.children.push(c); return c; };
El.prototype.replaceChildren = function (c) { this.children = [c]; };
El.prototype.addEventListener = function (k, f) { this.listeners[k] = f; };
El.prototype.setAttribute = function () {};
El.prototype.getBoundingClientRect = function () { return { left: 0, top: 0 }; };
El.prototype.insertRow = function () { const r = new El("tr"); this.children.push(r); return r; };
El.prototype.insertCell = function () { const c = new El("td"); this.children.push(c); return c; };
El.prototype.getContext = function () {
  return new Proxy({}, { get: (t, k) => (k in t ? t[k] : (k === "measureText" ? () => ({ width: 40 }) : () => {})),
                         set: (t, k, v) => { t[k] = v; return true; } });
};
const els = {};
["title", "meta", "layer", "chips", "hv", "grid", "ro", "tip", "rollout-tab", "view-head", "view-model",
 "view-rollout"].forEach(id => { els[id] = new El(id); });
els["bertcli-data"] = new El("script"); els["bertcli-data"].textContent = data;
const tabs = ["head", "model", "rollout"].map(v => { const b = new El("button"); b.dataset.view = v; return b; });
global.window = { devicePixelRatio: 1, innerWidth: 1000, innerHeight: 800 };
global.document = {
  getElementById: id => els[id], createElement: t => new El(t), querySelectorAll: () => tabs,
  body: {}, documentElement: {}
};
global.getComputedStyle = () => ({ color: "#000", getPropertyValue: () => "#ff0" });
new Function(code)();
function tipText() { return els.tip.children[0].children.map(r => r.children.map(c => c.textContent)); }
const out = {};
// hover query token 1 in the head view (rows 20 px from y = 24), all heads of the opening layer
els.hv.listeners.mousemove({ clientX: 5, clientY: 24 + 20 * 1 + 5 });
out.query1 = tipText();
tabs[1].listeners.click(); tabs[2].listeners.click();
out.thumbs = els.grid.children.filter(c => c.tag === "canvas").length;
els.grid.children.filter(c => c.tag === "canvas")[0].listeners.click();
out.layerAfterClick = els.layer.value;
console.log(JSON.stringify(out));
"""


@pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed")
def test_html_script_runs(encoder_dir, tmp_path):
    """The page's script runs (node, stub DOM): the head view's hover on a query token lists
    its strongest keys with the mean weight over the heads, decoded from the page's data."""
    out = tmp_path / "attn.html"
    assert run("attention", TEXT, "-m", str(encoder_dir), "--html", str(out), "--rollout").exit_code == 0
    stub = tmp_path / "stub.js"
    stub.write_text(STUB, encoding="utf-8")
    p = subprocess.run(["node", str(stub), str(out)], capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    got = json.loads(p.stdout)
    ref = A.attention(A.load(encoder_dir), [TEXT])[0]
    toks, mean = ref["tokens"], ref["attention"][-1].mean(0)[1]  # opens on the last layer
    assert got["query1"][0] == [f"1 {toks[1]} attends to (layer 1, mean of 2 heads)"]
    order = np.argsort(-mean, kind="stable")[:8]
    assert [r[0] for r in got["query1"][1:]] == [f"{j} {toks[j]}" for j in order]
    assert [float(r[1]) for r in got["query1"][1:]] == pytest.approx([mean[j] for j in order], abs=1.1e-3)
    assert got["thumbs"] == 4 and got["layerAfterClick"] == 0


def test_png_without_matplotlib_is_one_line(encoder_dir, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    r = run("attention", TEXT, "-m", str(encoder_dir), "--png", str(tmp_path / "a.png"))
    assert r.exit_code == 1 and r.stdout == ""
    assert r.stderr == ("Error: --png needs matplotlib, which is not installed; pip install 'bertcli[viz]' "
                        "(or pip install matplotlib)\n")
    assert not (tmp_path / "a.png").exists()


def test_png_grid(encoder_dir, tmp_path):
    pytest.importorskip("matplotlib")
    out = tmp_path / "heads.png"
    r = run("attention", TEXT, "-m", str(encoder_dir), "--png", str(out), "--rollout")
    assert r.exit_code == 0, r.output
    assert r.stderr == f"Wrote {out}: 3 heatmap(s) of layer 1, {len(A.attention(A.load(encoder_dir), [TEXT])[0]['tokens'])} tokens\n"
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_api_entry():
    import bertcli
    assert bertcli.attention is A.attention


def test_cli_hub_id_from_the_cache(tmp_path):
    """-m ORG/NAME from the Hugging Face cache: a token classifier's encoder (its head is not
    read), equal to transformers' output_attentions of the snapshot folder."""
    cache = tmp_path / "hub"
    desc = H.build_hub_cache(cache, tmp_path / "work")
    hub_id = "dslim/bert-base-NER"
    r = CliRunner().invoke(cli, ["attention", "-m", hub_id, "-f", "jsonl", PAIR[0]],
                           env={"HF_HUB_CACHE": str(cache), "BERTCLI_MODEL": None, "BERTCLI_BACKEND": None})
    assert r.exit_code == 0, r.output
    rec = json.loads(r.stdout)
    tokens, ref = reference(desc[hub_id]["snapshots"][desc[hub_id]["main"]], PAIR[0])
    assert rec["tokens"] == tokens
    np.testing.assert_allclose(np.array(rec["attention"]), ref, atol=1e-5)
    r = CliRunner().invoke(cli, ["attention", "--revision", "abc", "x"], env={"BERTCLI_MODEL": None})
    assert r.exit_code == 2 and r.stderr == ("Error: --revision abc needs a hub id (--model ORG/NAME); the default "
                                             "encoder has no revisions\n")
