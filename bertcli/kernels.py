"""CPU matrix products of the native encoder: row tiles, oneDNN's pre-packed fp32/bf16
linear and its u8 x s8 int8 linear, with the fused activation and residual add.

Every product runs on fixed-shape tiles of :data:`TILE` rows (or on chunks of tiles checked
to give the same bits, :func:`chunk_rows`), so a row's result does not depend on how many
rows share the call: the batch invariance of :mod:`bertcli.native`. ``--dtype int8`` packs
weights per output channel and quantizes activations per row (:func:`quantize_rows`,
:class:`Packed`).
"""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path

import torch
import torch.nn.functional as F

#: rows per matrix-product tile: large enough for efficient GEMMs, small enough that the
#: one partly filled tile per call wastes little.
TILE = 128
#: the row multiple a call may have when the kernel was checked to give a row the bits of
#: its tile whatever the call's row count (:func:`step_rows`). oneDNN's fp32 kernels differ
#: at one row (a matrix-vector path); and each new row count costs oneDNN ~1.5 ms to create
#: its primitive (K=384, N=1536, fp32, once per process), so a finer step saves more padding
#: but creates more primitives: on 2,000 real lines (ner, batch 32, a fresh process) whole
#: tiles computed 1.43 M rows with ~25 primitives, 32-row steps 1.36 M rows with ~100 (net
#: ~0.19 s saved of ~8 s), 8-row steps 1.34 M rows with ~200 (~0.1 s)
STEP = 32
#: the input width an int8 product with split outlier columns is padded to a multiple of (zero
#: weight columns, zero activations: the same int32 sums): oneDNN's u8 x s8 kernels ran 6-9 %
#: faster at K = 400 than at 394 (1,536 x 394 -> 400: 821 -> 756 us; 384 x 394 -> 400: 234 ->
#: 213 us; 512 rows, 1 thread, AMD EPYC with VNNI), as fast as at K = 384
INT8_K_MULTIPLE = 16

#: hidden_act -> (torch function, oneDNN post-op name, its algorithm): transformers' ACT2FN
#: names; the oneDNN post-ops compute the same functions (checked in tests/test_kernels.py).
_ACTS = {
    "gelu": (F.gelu, "gelu", "none"),
    "gelu_new": (lambda x: F.gelu(x, approximate="tanh"), "gelu", "tanh"),
    "gelu_pytorch_tanh": (lambda x: F.gelu(x, approximate="tanh"), "gelu", "tanh"),
    "gelu_fast": (lambda x: F.gelu(x, approximate="tanh"), "gelu", "tanh"),
    "relu": (F.relu, "relu", ""),
    "silu": (F.silu, "swish", ""),
    "swish": (F.silu, "swish", ""),
    "tanh": (torch.tanh, "tanh", ""),
}


def onednn_available(dtype=torch.float32) -> bool:
    """True when this torch build has oneDNN's linear op with pre-packed weights for ``dtype``
    on CPU (``torch.ops.mkldnn._linear_pointwise`` and ``_reorder_linear_weight``: the ops
    torch inductor's CPU freezing pass uses). ``BERTCLI_ONEDNN=0`` turns them off."""
    if os.environ.get("BERTCLI_ONEDNN", "1").strip().lower() in ("0", "false", "no", "off"):
        return False
    try:
        mk = torch.ops.mkldnn
        mk._linear_pointwise.default, mk._linear_pointwise.binary, mk._reorder_linear_weight.default
        if not torch.backends.mkldnn.is_available():
            return False
        if dtype == torch.bfloat16:
            return bool(mk._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False
    return dtype == torch.float32


def int8_available() -> bool:
    """True when this torch build has oneDNN's quantized linear (``torch.ops.onednn.
    qlinear_prepack``/``qlinear_pointwise``, the ops torch inductor's x86 int8 path lowers
    to; VNNI/AMX-INT8 kernels where the CPU has them) and oneDNN is enabled
    (``BERTCLI_ONEDNN`` not 0)."""
    if not onednn_available(torch.float32):
        return False
    try:
        torch.ops.onednn.qlinear_prepack.default, torch.ops.onednn.qlinear_pointwise.default
    except (AttributeError, RuntimeError):
        return False
    return True


def quantize_rows(x, split=None):
    """Symmetric per-row int8 quantization of ``x`` ``(T, K)`` float32, stored as uint8 with
    zero point 128 (oneDNN's u8 activations): returns ``(xq, s)``, ``xq`` ``(T, K)`` uint8 with
    ``x ~= (xq - 128) * s``, ``s`` ``(T, 1)`` float32 = ``max|x_row| / 127`` (all-zero rows
    get a tiny scale and quantize to 128). Each row's scale depends on that row alone, so the
    result of a row does not depend on the other rows of the batch (batch invariance).

    ``split`` (an int8 :class:`Packed`'s ``split``, or None): ``(cols, parts, rep, pad)``, outlier
    columns ``cols`` ``(k,)`` that do not set the row's scale beyond ``max|x_j| / parts_j``.
    Such a column, ``v = x_j / s`` in units of the row's scale (up to ``127 * parts_j``), is
    written as ``parts_j * hi + lo`` with ``hi = round(v / parts_j)`` (in the column itself and
    repeated ``parts_j - 1`` times at the end: ``rep``) and ``lo = round(v - parts_j * hi)``
    (one more column at the end, ``|lo| <= parts_j / 2``), then ``pad`` columns of zeros
    (128): ``xq`` is then ``(T, K + sum(parts - 1) + k + pad)``, to be multiplied with the
    weight extended the same way (:class:`Packed`), and every column keeps an error of at
    most ``s / 2``.

    Rounds half up (``x * 127 / max + 128.5``, in [1.5, 255.5), truncated by the cast). After
    the row maxima (``amax`` and ``amin`` of x: two reads and no ``|x|`` copy; for a split
    layer the outlier columns are zeroed in place meanwhile, then put back), one pass writes
    the shifted values, then the casts float32 -> int32 -> uint8 (2x faster than torch's
    direct float32 -> uint8 cast, which is not vectorised). The whole is about 2x faster than
    ``abs``, ``amax``, ``addcmul`` and a direct cast (1,024 x 384: 374 -> 179 us; 1,024 x
    1,536: 1.54 -> 0.79 ms; 1 thread, AMD EPYC), with the same integers except 1-2 in 1.5 M
    (values within an ulp of a half, which ``addcmul``'s single rounding put on the other side).
    A split layer's ``x`` is written to and restored; every other ``x`` is only read."""
    if split is not None:
        cols, parts, rep, pad = split
        xo = x.index_select(1, cols)
        x.index_fill_(1, cols, 0.0)  # the outliers do not set the row maximum (put back below)
    m = torch.maximum(x.amax(1, keepdim=True), x.amin(1, keepdim=True).neg_())
    if split is not None:
        x.index_copy_(1, cols, xo)
        m = torch.maximum(m, (xo.abs() / parts).amax(1, keepdim=True))
    m.clamp_min_(1e-12)
    r = 127.0 / m
    xq = (x * r).add_(128.5)
    if split is not None:
        v = xo * r
        hi = torch.floor(v / parts + 0.5)
        lo = torch.floor(v - parts * hi + 0.5)
        xq.index_copy_(1, cols, hi + 128.0)
    xq = xq.to(torch.int32).to(torch.uint8)
    if split is None:
        return xq, m / 127.0
    parts_out = [xq, xq.index_select(1, rep), (lo + 128.0).to(torch.uint8)]
    if pad:
        parts_out.append(xq.new_full((xq.shape[0], pad), 128))
    return torch.cat(parts_out, 1), m / 127.0


class Packed:
    """A linear layer's weight and bias prepared once for inference on CPU.

    ``kind`` ``"onednn"``: the ``(N, K)`` weight reordered by oneDNN for ``tile``-row inputs
    (an opaque mkldnn tensor) and run with ``torch.ops.mkldnn._linear_pointwise``; ``"dense"``:
    a plain ``(N, K)`` copy in ``dtype`` run with ``F.linear`` (bf16 without oneDNN);
    ``"int8"``: the weight quantized symmetrically per output channel (``w_scale`` ``(N,)`` =
    ``max|W_n| / 127``, int8 values in [-127, 127], the per-channel scheme of
    ``torch.ao.quantization``'s x86 default for linear weights), prepacked with
    ``torch.ops.onednn.qlinear_prepack`` and run by :func:`tiled_linear` on per-row quantized
    activations (:func:`quantize_rows`), accumulating in int32 and dequantized to float32.
    ``outliers`` (int8 only): ``(cols, parts)``, LongTensors ``(k,)`` of input columns whose
    activations are far larger than the rest (outlier features, Dettmers et al. 2022,
    LLM.int8() section 3) and the number of parts each is split into: the activation
    column ``x_j`` becomes ``parts_j`` equal high parts and one low part (:func:`quantize_rows`)
    and the weight column ``W_j`` is repeated ``parts_j + 1`` times, so the product is
    unchanged while the row's int8 scale is set by the other columns, ``parts_j`` times
    finer for them, and ``x_j`` keeps that finer step too; the cost is ``sum(parts)`` extra
    columns in the product, padded with zero columns to a multiple of :data:`INT8_K_MULTIPLE`
    (:meth:`NativeEncoder._int8_outliers`
    picks them once at load time, so a row's result never depends on the batch).
    """

    def __init__(self, weight, bias, dtype, kind: str, tile: int, outliers=None):
        self.dtype, self.kind, self.out_features, self.tile = dtype, kind, weight.shape[0], tile
        #: (cols, parts as float32, repeated columns) for :func:`quantize_rows`, or None
        self.split = None
        if kind == "int8":
            w = weight.detach().float()
            if outliers is not None and int((outliers[1] > 1).sum()):
                cols, parts = outliers
                rep = cols.repeat_interleave(parts - 1)
                pad = -(w.shape[1] + len(rep) + len(cols)) % INT8_K_MULTIPLE
                self.split = (cols, parts.float(), rep, pad)
                w = torch.cat([w, w.index_select(1, rep), w.index_select(1, cols), w.new_zeros((w.shape[0], pad))], 1)
            self.w_scale = (w.abs().amax(1) / 127.0).clamp_min_(1e-12).contiguous()
            wq = torch.round(w / self.w_scale[:, None]).clamp_(-127, 127).to(torch.int8).contiguous()
            self.weight = torch.ops.onednn.qlinear_prepack(wq, [tile, w.shape[1]])
            self.w_zp = torch.zeros(w.shape[0], dtype=torch.int64)
            self.dtype = torch.float32  # what goes in (before quantizing) and comes out
            self.bias = None if bias is None else bias.detach().float().contiguous()
            self.chunk, self.step = _checked(self, w.shape[1], tile)
            return
        w = weight.detach().to(dtype).contiguous()
        self.weight = torch.ops.mkldnn._reorder_linear_weight(w, tile) if kind == "onednn" else w
        self.bias = None if bias is None else bias.detach().to(dtype).contiguous()
        #: rows per oneDNN call, and the row multiple of a call (both checked to give the
        #: tiles' bits: :func:`chunk_rows`, :func:`step_rows`)
        self.chunk, self.step = _checked(self, w.shape[1], tile) if kind == "onednn" else (tile, tile)


#: (kind, dtype, K, N, tile, no bias) -> ``(chunk, step)``: the rows one oneDNN call may take
#: (a multiple of the tile) and the row multiple it may have (:data:`STEP` or the tile), both
#: still giving every row the bits of tile-by-tile calls: see :func:`chunk_rows`, :func:`step_rows`
_CHUNK: dict = {}
#: the most tiles :func:`chunk_rows` checks for one call
MAX_CHUNK_TILES = 8


def chunk_rows(pk: "Packed", k: int, tile: int) -> int:
    """How many rows (a multiple of ``tile``) one call of the packed layer may take.

    Batch invariance needs a row's result to be independent of how many rows share the call.
    oneDNN's brgemm kernels mostly block the reduction over K the same way whatever M is, so
    one call on ``m * tile`` rows often gives the bits of m tile calls, and runs 15-20 %
    faster in fp32 and 1.5-2x in bf16 at 1 thread (less per-call overhead, no
    concatenation); but not always (bf16 with K = 1536 on this machine's oneDNN differs from
    3 tiles on). That is a property of the library build and CPU, so it is checked here,
    once per (kind, dtype, K, N, tile): on seeded inputs, calls of m = 2, 3, ... tiles
    against m tile calls, for the plain call and the fused residual add, up to
    :data:`MAX_CHUNK_TILES` tiles. The result is the largest power of two C such that every
    m <= C passed; :func:`tiled_linear` then calls on chunks of C tiles (the last one
    shorter, also checked). ``BERTCLI_TILED=1`` keeps single tiles everywhere.
    """
    return _checked(pk, k, tile)[0]


def step_rows(pk: "Packed", k: int, tile: int) -> int:
    """The row multiple a call of the packed layer may have: :data:`STEP` when calls of any
    multiple of STEP rows up to the chunk (:func:`chunk_rows`) give every row the bits of
    tile-by-tile calls, else ``tile`` (calls padded to whole tiles, as before).

    A call on T rows is padded to whole tiles otherwise: about half a tile of padding per
    call, 4-7 % of the rows of a 2,000-line run at batch 32-64. The check (with
    :func:`chunk_rows`', on the same seeded inputs) runs the plain call, the fused residual
    add and the fused GELU on every multiple of STEP up to two tiles and on ``m * tile -
    STEP``, ``m * tile + STEP`` for m up to the chunk; on the 2-core AMD EPYC with torch
    2.13's oneDNN every call of 2 to 129 rows and of the sizes above matched (fp32, bf16, int8);
    only one-row calls did not.
    ``BERTCLI_TILED=1`` keeps whole tiles.
    """
    return _checked(pk, k, tile)[1]


def _checked(pk: "Packed", k: int, tile: int) -> tuple[int, int]:
    if os.environ.get("BERTCLI_TILED", "").strip().lower() in ("1", "true", "yes", "on"):
        return tile, tile
    key = (pk.kind, pk.dtype, k, pk.out_features, tile, pk.bias is None)
    got = _CHUNK.get(key)
    if got is None:
        got = _CHUNK[key] = _chunk_cache().get(key, lambda: _check_chunk(pk, k, tile))
    return got


def _check_chunk(pk: "Packed", k: int, tile: int) -> tuple[int, int]:
    """The measurement behind :func:`chunk_rows` and :func:`step_rows` (their docstrings):
    ``(chunk, step)``; ~0.1-0.2 s per layer shape in fp32 at one thread, hence the cache
    on disk (:class:`_ChunkCache`)."""
    g = torch.Generator().manual_seed(7)
    rows = MAX_CHUNK_TILES * tile
    if pk.kind == "int8":
        x = torch.randint(1, 256, (rows, k), generator=g, dtype=torch.int16).to(torch.uint8)
        calls = [(lambda t: _qlinear(t, pk), 1)]
        args = [x]
    else:
        x = torch.randn((rows, k), generator=g).to(pk.dtype)
        a = torch.randn((rows, pk.out_features), generator=g).to(pk.dtype)
        op = torch.ops.mkldnn._linear_pointwise
        # (call, how many of args it takes)
        calls = [(lambda t: op(t, pk.weight, pk.bias, "none", [], ""), 1),
                 (lambda t: op(t, pk.weight, pk.bias, "gelu", [], "none"), 1)]
        if pk.dtype == torch.float32:  # the fused residual add runs only where x and add share the dtype
            calls.append((lambda t, u: op.binary(t, u, pk.weight, pk.bias, "add"), 2))
        args = [x, a]
    refs = [torch.cat([f(*parts) for parts in zip(*(v.split(tile) for v in args[:n]))]) for f, n in calls]

    def same(r: int) -> bool:
        return all(torch.equal(f(*(v[:r] for v in args[:n])), ref[:r]) for (f, n), ref in zip(calls, refs))

    ok_tiles = 1
    for m in range(2, MAX_CHUNK_TILES + 1):
        if not same(m * tile):
            break
        ok_tiles = m
    chunk = 1
    while chunk * 2 <= ok_tiles:
        chunk *= 2
    chunk *= tile
    if tile % STEP:
        return chunk, tile
    sizes = list(range(STEP, min(2 * tile, chunk) + 1, STEP))
    sizes += [r for m in range(2, chunk // tile + 1) for r in (m * tile - STEP, m * tile + STEP) if r <= chunk]
    step = STEP if all(same(r) for r in sorted(set(sizes))) else tile
    return chunk, step


class _ChunkCache:
    """:func:`chunk_rows`' results kept across processes in ``$XDG_CACHE_HOME/bertcli/
    kernels.json`` (else ``~/.cache/bertcli``; ``BERTCLI_CACHE`` names another folder),
    under a key of everything the result depends on: torch's version and build (oneDNN),
    the CPU (model name and instruction-set flags from /proc/cpuinfo, or ``platform``
    elsewhere) and the layer's kind, dtype and shape. A file that cannot be read or written
    is ignored: the check then runs in each process (results stay right, only slower)."""

    def __init__(self):
        import hashlib
        import platform

        base = os.environ.get("BERTCLI_CACHE") or os.path.join(
            os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"), "bertcli")
        self.path = Path(base) / "kernels.json"
        cpu = platform.processor() or platform.machine()
        try:
            info = Path("/proc/cpuinfo").read_text(encoding="ascii", errors="replace")
            keep = [ln for ln in info.splitlines() if ln.startswith(("model name", "flags", "Features"))]
            cpu = "\n".join(dict.fromkeys(keep))  # first CPU's lines (all CPUs repeat them)
        except OSError:
            pass
        build = f"{torch.__version__}|{torch.backends.mkldnn.is_available()}|{torch.__config__.show()}"
        self.prefix = hashlib.sha256(f"{build}|{cpu}|{MAX_CHUNK_TILES}".encode()).hexdigest()[:16]
        try:
            self.data = json.loads(self.path.read_text(encoding="utf-8"))
            if not isinstance(self.data, dict):
                self.data = {}
        except (OSError, ValueError):
            self.data = {}

    def get(self, key: tuple, measure) -> tuple[int, int]:
        """``(chunk, step)`` for ``key`` (kind, dtype, K, N, tile, no bias): from the file when
        both are there and valid (chunk a multiple of the tile, step :data:`STEP` or the
        tile), else ``measure()``'s, then saved."""
        name = f"{self.prefix}:" + ":".join(str(v) for v in key)
        tile = key[4]
        chunk, step = self.data.get(name), self.data.get(name + ":step")
        if isinstance(chunk, int) and chunk > 0 and chunk % tile == 0 and step in (STEP, tile):
            return chunk, step
        chunk, step = measure()
        self.data[name], self.data[name + ":step"] = chunk, step
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.path.with_suffix(f".{os.getpid()}.tmp")
            tmp.write_text(json.dumps(self.data, sort_keys=True), encoding="utf-8")
            os.replace(tmp, self.path)
        except OSError:
            pass
        return chunk, step


_CACHE: _ChunkCache | None = None


def _chunk_cache() -> _ChunkCache:
    global _CACHE
    if _CACHE is None:
        _CACHE = _ChunkCache()
    return _CACHE


def _qlinear(xq, pk):
    """oneDNN's u8 x s8 product of an int8 :class:`Packed` on ``xq`` ``(M, K)`` uint8 (zero point
    128, scale 1): ``(M, N)`` float32, scaled by the weight's per-channel scales, no bias."""
    op = torch.ops.onednn.qlinear_pointwise.default
    return op(xq, 1.0, 128, pk.weight, pk.w_scale, pk.w_zp, None, 1.0, 0, torch.float32, "none", [None], "")


def _rows_per_call(pk, tile: int) -> int:
    """Rows per oneDNN call: the checked chunk (:func:`chunk_rows`) for the tile the layer was
    packed for, else single tiles."""
    return pk.chunk if tile == pk.tile else tile


def row_step(pk, tile: int) -> int:
    """The row multiple a call of ``pk`` (a :class:`Packed`, or None) needs: its checked step
    (:func:`step_rows`) for the tile it was packed for, else whole tiles."""
    return pk.step if pk is not None and tile == pk.tile else tile


def _cat(parts: list):
    return parts[0] if len(parts) == 1 else torch.cat(parts)


def _int8_linear(x, pk, tile: int):
    """``x @ W^T + b`` for ``x`` ``(T, K)`` float32 (T a multiple of ``row_step(pk, tile)``) on an int8
    :class:`Packed`: rows quantized by :func:`quantize_rows`, ``(tile, K)`` u8 x s8 products
    in int32 by oneDNN scaled by the weight's per-channel scales, then by each row's scale,
    plus the bias in float32 (outlier columns split as :class:`Packed`'s ``outliers`` says).
    Returns ``(T, N)`` float32."""
    xq, s = quantize_rows(x, pk.split)
    out = _cat([_qlinear(t, pk) for t in xq.split(_rows_per_call(pk, tile))])
    return out.mul_(s) if pk.bias is None else torch.addcmul(pk.bias, out, s)


#: while :meth:`NativeEncoder.prepare` calibrates int8: id(linear) -> the running maximum of
#: |input| per column (``(K,)``), updated by :func:`tiled_linear`; None otherwise
_CALIBRATING: dict | None = None


@contextlib.contextmanager
def column_maxima(lins):
    """Within the block, :func:`tiled_linear` records for each layer of ``lins`` (``nn.Linear``
    modules) the largest ``|input|`` of every input column it sees; yields the dict
    ``id(linear) -> (K,)`` float32 maxima (zeros until a call). Used by
    :meth:`bertcli.native.NativeEncoder.prepare` to find int8 outlier columns."""
    global _CALIBRATING
    _CALIBRATING = {id(m): torch.zeros(m.in_features) for m in lins}
    try:
        yield _CALIBRATING
    finally:
        _CALIBRATING = None


def tiled_linear(x, lin, act: str | None = None, add=None, tile: int | None = None):
    """``act(lin(x)) + add`` for ``x`` of shape ``(T, K)``, computed in ``(tile, K)`` row tiles.

    Every GEMM call has the same shape whatever T is, so a row's result does not depend
    on T (BLAS libraries pick kernels and blockings by shape). A :class:`Packed` layer whose
    kernel was checked to give every row the same bits in one call on several tiles
    (``pk.chunk`` rows, :func:`chunk_rows`) is called on chunks of that many rows instead,
    and where calls of any multiple of :data:`STEP` rows were checked to give those bits too
    (``pk.step``, :func:`step_rows`), ``x`` is padded to that multiple, not to whole tiles.
    ``lin`` is an ``nn.Linear`` (or anything with ``weight``, ``bias``, ``out_features``); when
    :meth:`bertcli.native.NativeEncoder.prepare` gave it a :class:`Packed` (``lin.packed``), that runs instead,
    with ``act`` (a ``hidden_act`` name of :data:`_ACTS`) and ``add`` (a ``(T, N)`` tensor)
    fused into the oneDNN call. Returns ``(T, N)`` in the packed dtype (else ``x``'s dtype).
    """
    tile = tile or TILE
    T = x.shape[0]
    if _CALIBRATING is not None and id(lin) in _CALIBRATING and T:
        m = x.detach().abs().amax(0).float()
        _CALIBRATING[id(lin)] = torch.maximum(_CALIBRATING[id(lin)], m)
    pk = lin.__dict__.get("packed")
    if pk is not None and x.dtype != pk.dtype:
        x = x.to(pk.dtype)
    if T == 0:
        return x.new_zeros((0, lin.out_features))
    pad = (-T) % row_step(pk, tile)
    if pad:
        x = torch.cat([x, x.new_zeros((pad, x.shape[1]))])
    if pk is not None and pk.kind == "int8":
        out = _int8_linear(x, pk, tile)
        out = out[:T] if pad else out
        if act is not None:
            out = _ACTS[act][0](out)
        return out if add is None else out.add_(add)
    if pk is not None and pk.kind == "onednn":
        op = torch.ops.mkldnn._linear_pointwise
        if add is not None and add.dtype == pk.dtype and act is None:
            if pad:
                add = torch.cat([add, add.new_zeros((pad, add.shape[1]))])
            c = _rows_per_call(pk, tile)
            out = _cat([op.binary(t, a, pk.weight, pk.bias, "add") for t, a in zip(x.split(c), add.split(c))])
            return out[:T] if pad else out
        name, algo = ("none", "") if act is None else _ACTS[act][1:]
        out = _cat([op(t, pk.weight, pk.bias, name, [], algo) for t in x.split(_rows_per_call(pk, tile))])
    else:
        w, b = (pk.weight, pk.bias) if pk is not None else (lin.weight, lin.bias)
        out = torch.cat([F.linear(t, w, b) for t in x.split(tile)])
        out = out[:T] if pad else out
        if act is not None:
            out = _ACTS[act][0](out)
        return out if add is None else add + out
    out = out[:T] if pad else out
    return out if add is None else add + out
