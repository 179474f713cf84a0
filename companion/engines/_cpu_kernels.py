"""Compiled CPU kernels (numba) for GGUF block-quantized weights, kept in their file form.

The lean reference engine holds each quantized matrix as the memory-mapped bytes of its GGUF
blocks (ggml-common.h layouts) instead of a float32 copy, and multiplies with these kernels:
- `matvec`: a few activation rows (decode) times a quantized matrix, fused per block
  (sum_j q_j x_j in f32, then times the block's scale, plus the block's offset times the block
  sum of x). Exact f32 arithmetic on the exact dequantized values, only the order of the sums
  differs from a float32 matmul; activations are NOT rounded to 8 bits the way llama.cpp does.
- `dequantize_rows`: rows of a quantized matrix as float32, value for value what
  gguf.quants.dequantize gives (the same operations in the same order), for prefill, where a
  chunk of rows goes through BLAS against all prompt positions.

Types: Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q4_K, Q5_K, Q6_K (the others stay with gguf.quants).
f16 scales are read through a 65,536-entry float32 table.

numba compiles each kernel on first use and caches the machine code (cache=True) under the
user's cache folder (platformdirs: ~/.cache/companion/numba on Linux; NUMBA_CACHE_DIR wins
when set), so the compile time (~tens of seconds on a 2-core machine) is paid once per machine;
`warm_up()` compiles or loads them and says how long it took."""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from gguf import GGML_QUANT_SIZES
from gguf import GGMLQuantizationType as QT


def _cache_dir() -> str:
    if os.environ.get("NUMBA_CACHE_DIR"):
        return os.environ["NUMBA_CACHE_DIR"]
    import platformdirs

    return str(Path(platformdirs.user_cache_dir("companion", appauthor=False)) / "numba")


CACHE_DIR = _cache_dir()


def compiled_before() -> bool:
    """True when this machine's cache holds compiled kernels (numba's index files)."""
    return any(Path(CACHE_DIR).rglob("*.nbi")) if Path(CACHE_DIR).is_dir() else False
os.environ.setdefault("NUMBA_CACHE_DIR", CACHE_DIR)  # read by numba at import

import numba  # noqa: E402
from llvmlite import ir  # noqa: E402
from numba import njit, prange, types  # noqa: E402
from numba.core import cgutils  # noqa: E402
from numba.extending import intrinsic  # noqa: E402

numba.config.CACHE_DIR = CACHE_DIR  # type: ignore[attr-defined]  # numba may have been imported before us


def _tbb_loaded() -> bool:
    """Load the tbb wheel's libtbb.so.12 (it lies in the environment's lib/, where the dynamic
    loader does not look) so that numba's TBB layer can start; False where there is none."""
    import ctypes
    import sys

    # the wheel's folders (Linux lib/, Windows Library/bin), or a frozen app's top folder
    dirs = [Path(sys.prefix) / "lib", Path(sys.prefix) / "Library" / "bin", Path(getattr(sys, "_MEIPASS", sys.prefix))]
    for d in dirs:
        for name in ("libtbb.so.12", "tbb12.dll"):
            if (d / name).is_file():
                try:
                    ctypes.CDLL(str(d / name), mode=getattr(ctypes, "RTLD_GLOBAL", 0))
                    import numba.np.ufunc.tbbpool  # noqa: F401  (links against it)
                except (OSError, ImportError):
                    return False
                return True
    try:
        import numba.np.ufunc.tbbpool  # noqa: F401,F811  (found by the system's loader)
    except ImportError:
        return False
    return True


# numba's thread pool for the products of one decode step (~120 a token, each 40-300 us):
# - TBB: ~3 us a launch and work stealing, so a thread descheduled by another busy process
#   delays nothing (its chunks are taken by the other).
# - OpenMP: ~2 us a launch, but static chunks and spinning: beside another busy process or
#   OpenBLAS's threads on a 2-core machine a call took 4-90 ms instead of 0.2 ms.
# - workqueue (always there): ~50 us a launch, so only large products are worth it.
# Measured on a 2-core machine, 2026-12-01 (SmolLM2's layer products, Q4_1).
_REQUESTED = os.environ.get("NUMBA_THREADING_LAYER", "")  # the user's choice wins
_TBB = _REQUESTED not in ("omp", "workqueue") and _tbb_loaded()
if not _REQUESTED:
    numba.config.THREADING_LAYER = "tbb" if _TBB else "workqueue"  # type: ignore[attr-defined]
THREADING = str(numba.config.THREADING_LAYER)  # type: ignore[attr-defined]

# Reassociation lets LLVM vectorise the block sums (the order of a sum is all that changes);
# no nnan/ninf: infinities and NaNs propagate as in numpy.
_FAST = {"reassoc", "contract", "nsz"}

# Rows ahead of the one being multiplied whose bytes the products prefetch (0: none). The
# products do about as much arithmetic per byte as this machine's memory delivers, and without
# a hint the hardware prefetcher left the two apart: the output head (30 MB of Q8_0) ran at ~3
# GB/s, where reading it alone goes at 7-9 GB/s and multiplying it from cache at 8.6 GMAC/s.
# (A constant: numba's cache would keep code compiled with another value.)
PREFETCH_ROWS = 4


@intrinsic
def _prefetch(typingctx, arr, idx):  # pragma: no cover - compiled
    """A read prefetch of arr[idx] into every cache level (llvm.prefetch: a hint, it never faults)."""
    sig = types.void(arr, idx)

    def codegen(context, builder, signature, args):
        aryty = signature.args[0]
        ary = context.make_array(aryty)(context, builder, args[0])
        ptr = cgutils.get_item_pointer2(
            context, builder, data=ary.data, shape=cgutils.unpack_tuple(builder, ary.shape),
            strides=cgutils.unpack_tuple(builder, ary.strides), layout=aryty.layout, inds=[args[1]],
            wraparound=False, boundscheck=False,
        )  # fmt: skip
        i8p = ir.IntType(8).as_pointer()
        i32 = ir.IntType(32)
        # declare_intrinsic mangles the name as this llvmlite's pointers need: .p0 (opaque) or .p0i8
        fn = builder.module.declare_intrinsic("llvm.prefetch", [i8p], ir.FunctionType(ir.VoidType(), [i8p, i32, i32, i32]))
        builder.call(fn, [builder.bitcast(ptr, i8p), ir.Constant(i32, 0), ir.Constant(i32, 3), ir.Constant(i32, 1)])
        return context.get_dummy_value()

    return sig, codegen


@njit(inline="always")
def _prefetch_row(w, i):  # pragma: no cover - compiled
    """Prefetch row i of w (rows, bytes), a hint per 64 bytes; nothing past the last row."""
    if PREFETCH_ROWS and i < w.shape[0]:
        row = w[i]
        for o in range(0, row.shape[0], 64):
            _prefetch(row, o)


# kernel id of each supported type (the kernels branch on it)
KIND = {QT.Q4_0: 0, QT.Q4_1: 1, QT.Q5_0: 2, QT.Q5_1: 3, QT.Q8_0: 4, QT.Q4_K: 5, QT.Q5_K: 6, QT.Q6_K: 7}
SUPPORTED = frozenset(KIND)

F16_TABLE = np.arange(65536, dtype=np.uint32).astype(np.uint16).view(np.float16).astype(np.float32)  # (65536,)


@njit(inline="always")
def _h(row, o, f16):  # pragma: no cover - compiled
    """The little-endian f16 at row[o:o+2] as float32."""
    return f16[np.int64(row[o]) | (np.int64(row[o + 1]) << 8)]


@njit(inline="always")
def _k_scale_min(row, o, s):  # pragma: no cover - compiled
    """6-bit scale and min of sub-block s (0..7) from the 12 packed bytes at row[o:]
    (gguf.quants.Q4_K.get_scale_min)."""
    if s < 4:
        return np.int64(row[o + s]) & 63, np.int64(row[o + 4 + s]) & 63
    md = np.int64(row[o + 4 + s])
    sc = (md & 15) | ((np.int64(row[o + s - 4]) >> 2) & 0x30)
    mn = (md >> 4) | ((np.int64(row[o + s]) >> 2) & 0x30)
    return sc, mn


# ----------------------------------------------------------------------------- dot products
# One row of blocks (bytes) with one activation row x (f32, length cols). xs: sums of x over
# each 32 values (the types with an offset per block or sub-block: offset * xs). a: 32 float32
# lanes the products accumulate in, a[j] += (scale * x) * q, one lane per position in a block
# of 32, so that LLVM vectorises across the lanes (the order of the sum is all that differs
# from a float32 matmul of the dequantized values).


@njit(inline="always", fastmath=_FAST)
def _row_q4_0(row, x, xs, f16, a):  # pragma: no cover - compiled
    """Q4_0 (18 bytes: d, qs[16]; d*(q-8)): byte j holds value j (low nibble) and value j+16
    (high nibble). The -8 goes through the block sum of x; the high nibble is used as
    q & 0xF0 = 16q with d/16 (exact, a power of two), which LLVM vectorises better than a shift.
    (Each type has its own loop with constant offsets: shared code with a runtime block size
    ran at half the speed.)"""
    a[:] = 0
    off = np.float32(0)
    for b in range(x.shape[0] // 32):
        o, xb = b * 18, b * 32
        d = _h(row, o, f16)
        d16 = d * np.float32(0.0625)
        off -= np.float32(8) * d * xs[b]
        for j in range(16):
            q = row[o + 2 + j]
            a[j] += (d * x[xb + j]) * np.float32(q & 15)
            a[16 + j] += (d16 * x[xb + 16 + j]) * np.float32(q & 240)
    return a.sum() + off


@njit(inline="always", fastmath=_FAST)
def _row_q4_1(row, x, xs, f16, a):  # pragma: no cover - compiled
    """Q4_1 (20 bytes: d, m, qs[16]; d*q + m), nibbles as in Q4_0; m through the block sum."""
    a[:] = 0
    off = np.float32(0)
    for b in range(x.shape[0] // 32):
        o, xb = b * 20, b * 32
        d = _h(row, o, f16)
        d16 = d * np.float32(0.0625)
        off += _h(row, o + 2, f16) * xs[b]
        for j in range(16):
            q = row[o + 4 + j]
            a[j] += (d * x[xb + j]) * np.float32(q & 15)
            a[16 + j] += (d16 * x[xb + 16 + j]) * np.float32(q & 240)
    return a.sum() + off


@njit(inline="always", fastmath=_FAST)
def _row2_q4_1(row, row2, x, xs, f16, a, c):  # pragma: no cover - compiled
    """_row_q4_1 of two rows at once (each x value loaded once: ~1.3x the speed)."""
    a[:] = 0
    c[:] = 0
    off = np.float32(0)
    off2 = np.float32(0)
    for b in range(x.shape[0] // 32):
        o, xb = b * 20, b * 32
        d = _h(row, o, f16)
        e = _h(row2, o, f16)
        d16 = d * np.float32(0.0625)
        e16 = e * np.float32(0.0625)
        off += _h(row, o + 2, f16) * xs[b]
        off2 += _h(row2, o + 2, f16) * xs[b]
        for j in range(16):
            q = row[o + 4 + j]
            p = row2[o + 4 + j]
            xl = x[xb + j]
            xh = x[xb + 16 + j]
            a[j] += (d * xl) * np.float32(q & 15)
            a[16 + j] += (d16 * xh) * np.float32(q & 240)
            c[j] += (e * xl) * np.float32(p & 15)
            c[16 + j] += (e16 * xh) * np.float32(p & 240)
    return a.sum() + off, c.sum() + off2


@njit(inline="always", fastmath=_FAST)
def _row2_q8_0(row, row2, x, f16, a, c):  # pragma: no cover - compiled
    """_row_q8_0 of two rows at once."""
    a[:] = 0
    c[:] = 0
    for b in range(x.shape[0] // 32):
        o, xb = b * 34, b * 32
        d = _h(row, o, f16)
        e = _h(row2, o, f16)
        for j in range(32):
            xv = x[xb + j]
            a[j] += (d * xv) * np.float32(np.int8(row[o + 2 + j]))
            c[j] += (e * xv) * np.float32(np.int8(row2[o + 2 + j]))
    return a.sum(), c.sum()


@njit(inline="always")
def _u32(row, p):  # pragma: no cover - compiled
    return np.int32(row[p]) | (np.int32(row[p + 1]) << 8) | (np.int32(row[p + 2]) << 16) | (np.int32(row[p + 3]) << 24)


@njit(inline="always", fastmath=_FAST)
def _row_q5_0(row, x, xs, f16, a):  # pragma: no cover - compiled
    """Q5_0 (22 bytes: d, qh (u32), qs[16]; d*(q-16)); bit j of qh is the fifth bit of value j."""
    a[:] = 0
    off = np.float32(0)
    for b in range(x.shape[0] // 32):
        o, xb = b * 22, b * 32
        d = _h(row, o, f16)
        d16 = d * np.float32(0.0625)
        off -= np.float32(16) * d * xs[b]
        qh = _u32(row, o + 2)
        for j in range(16):
            q = np.int32(row[o + 6 + j])
            lo = (q & 15) | (((qh >> j) & 1) << 4)
            hi = (q & 240) | (((qh >> (j + 16)) & 1) << 8)  # 16 * value
            a[j] += (d * x[xb + j]) * np.float32(lo)
            a[16 + j] += (d16 * x[xb + 16 + j]) * np.float32(hi)
    return a.sum() + off


@njit(inline="always", fastmath=_FAST)
def _row_q5_1(row, x, xs, f16, a):  # pragma: no cover - compiled
    """Q5_1 (24 bytes: d, m, qh (u32), qs[16]; d*q + m)."""
    a[:] = 0
    off = np.float32(0)
    for b in range(x.shape[0] // 32):
        o, xb = b * 24, b * 32
        d = _h(row, o, f16)
        d16 = d * np.float32(0.0625)
        off += _h(row, o + 2, f16) * xs[b]
        qh = _u32(row, o + 4)
        for j in range(16):
            q = np.int32(row[o + 8 + j])
            lo = (q & 15) | (((qh >> j) & 1) << 4)
            hi = (q & 240) | (((qh >> (j + 16)) & 1) << 8)  # 16 * value
            a[j] += (d * x[xb + j]) * np.float32(lo)
            a[16 + j] += (d16 * x[xb + 16 + j]) * np.float32(hi)
    return a.sum() + off


@njit(inline="always", fastmath=_FAST)
def _row_q8_0(row, x, f16, a):  # pragma: no cover - compiled
    """Q8_0 (34 bytes: d, qs[32] int8; d*q)."""
    a[:] = 0
    for b in range(x.shape[0] // 32):
        o, xb = b * 34, b * 32
        d = _h(row, o, f16)
        for j in range(32):
            a[j] += (d * x[xb + j]) * np.float32(np.int8(row[o + 2 + j]))
    return a.sum()


@njit(inline="always", fastmath=_FAST)
def _row_q45_k(kind, row, x, xs, f16, a):  # pragma: no cover - compiled
    """Q4_K (144 bytes: d, dmin (f16), scales[12], qs[128]) and Q5_K (176 bytes: d, dmin,
    scales[12], qh[32], qs[128]). Sub-block s of 32 values: qs[32*(s//2) + l], low nibble for
    even s, high for odd, and for Q5_K bit s of qh[l] on top; value d*sc*q - dmin*m."""
    a[:] = 0
    off = np.float32(0)
    size = 144 if kind == 5 else 176
    for b in range(x.shape[0] // 256):
        o, xb = b * size, b * 256
        d = _h(row, o, f16)
        dmin = _h(row, o + 2, f16)
        qo = o + 16 if kind == 5 else o + 48
        for c in range(4):
            sc0, m0 = _k_scale_min(row, o + 4, 2 * c)
            sc1, m1 = _k_scale_min(row, o + 4, 2 * c + 1)
            d0 = d * np.float32(sc0)
            d1 = d * np.float32(sc1) * np.float32(0.0625)
            off -= (dmin * np.float32(m0)) * xs[8 * b + 2 * c] + (dmin * np.float32(m1)) * xs[8 * b + 2 * c + 1]
            x0 = xb + 64 * c
            if kind == 5:
                for j in range(32):
                    q = row[qo + 32 * c + j]
                    a[j] += (d0 * x[x0 + j]) * np.float32(q & 15) + (d1 * x[x0 + 32 + j]) * np.float32(q & 240)
            else:
                for j in range(32):
                    q = np.int32(row[qo + 32 * c + j])
                    h = np.int32(row[o + 16 + j]) >> (2 * c)
                    lo = (q & 15) | ((h & 1) << 4)
                    hi = (q & 240) | ((h & 2) << 7)  # 16 * value
                    a[j] += (d0 * x[x0 + j]) * np.float32(lo) + (d1 * x[x0 + 32 + j]) * np.float32(hi)
    return a.sum() + off


@njit(inline="always", fastmath=_FAST)
def _row_q6_k(row, x, f16, a):  # pragma: no cover - compiled
    """Q6_K (210 bytes: ql[128], qh[64], scales[16] int8, d f16). Group g (0..7) of 32 values,
    half h = g//4, k = g%4: low 4 bits from ql[64h + 32(k%2) + l] >> 4(k//2), high 2 bits from
    qh[32h + l] >> 2k; value d*scale[(32g + l)//16]*(q - 32)."""
    a[:] = 0
    for b in range(x.shape[0] // 256):
        o, xb = b * 210, b * 256
        d = _h(row, o + 208, f16)
        for g in range(8):
            h, k = g // 4, g % 4
            lo_o = o + 64 * h + 32 * (k % 2)
            hi_o = o + 128 + 32 * h
            sh_l, sh_h = 4 * (k // 2), 2 * k
            d0 = d * np.float32(np.int8(row[o + 192 + 2 * g]))
            d1 = d * np.float32(np.int8(row[o + 192 + 2 * g + 1]))
            x0 = xb + 32 * g
            for j in range(16):
                q0 = ((np.int32(row[lo_o + j]) >> sh_l) & 15) | (((np.int32(row[hi_o + j]) >> sh_h) & 3) << 4)
                q1 = ((np.int32(row[lo_o + 16 + j]) >> sh_l) & 15) | (((np.int32(row[hi_o + 16 + j]) >> sh_h) & 3) << 4)
                a[j] += (d0 * x[x0 + j]) * np.float32(q0 - 32)
                a[16 + j] += (d1 * x[x0 + 16 + j]) * np.float32(q1 - 32)
    return a.sum()


@njit(inline="always")
def _dot(kind, row, x, xs, f16, a):  # pragma: no cover - compiled
    if kind == 0:
        return _row_q4_0(row, x, xs, f16, a)
    if kind == 1:
        return _row_q4_1(row, x, xs, f16, a)
    if kind == 2:
        return _row_q5_0(row, x, xs, f16, a)
    if kind == 3:
        return _row_q5_1(row, x, xs, f16, a)
    if kind == 4:
        return _row_q8_0(row, x, f16, a)
    if kind <= 6:
        return _row_q45_k(kind, row, x, xs, f16, a)
    return _row_q6_k(row, x, f16, a)


@njit(fastmath=_FAST)
def _sums32(x, xs):  # pragma: no cover - compiled
    """xs[t, b] = sum of x[t, 32b : 32b + 32]."""
    for t in range(x.shape[0]):
        for b in range(xs.shape[1]):
            s = np.float32(0)
            for j in range(32):
                s += x[t, 32 * b + j]
            xs[t, b] = s


@njit(inline="always")
def _pick(w0, w1, w2, r):  # pragma: no cover - compiled
    """(matrix, row in it) of row r of w0, w1, w2 stacked."""
    n0, n1 = w0.shape[0], w1.shape[0]
    if r < n0:
        return w0, r
    if r < n0 + n1:
        return w1, r - n0
    return w2, r - n0 - n1


@njit(inline="always", fastmath=_FAST)
def _rows(kind, w0, w1, w2, x, xs, f16, out, r_lo, r_hi, a, c):  # pragma: no cover - compiled
    """out[t, r] for rows r_lo..r_hi-1 of w0, w1, w2 stacked; Q4_1 and Q8_0 two rows at a time
    where both are in one matrix."""
    r = r_lo
    while r < r_hi:
        w, i = _pick(w0, w1, w2, r)
        _prefetch_row(w, i + PREFETCH_ROWS)
        if (kind == 1 or kind == 4) and r + 1 < r_hi and i + 1 < w.shape[0]:
            _prefetch_row(w, i + 1 + PREFETCH_ROWS)
            for t in range(x.shape[0]):
                if kind == 1:
                    y0, y1 = _row2_q4_1(w[i], w[i + 1], x[t], xs[t], f16, a, c)
                else:
                    y0, y1 = _row2_q8_0(w[i], w[i + 1], x[t], f16, a, c)
                out[t, r] = y0
                out[t, r + 1] = y1
            r += 2
        else:
            for t in range(x.shape[0]):
                out[t, r] = _dot(kind, w[i], x[t], xs[t], f16, a)
            r += 1


# fastmath on the callers too: numba inlines `inline="always"` functions into the caller's IR,
# which is compiled with the caller's flags (without them: no FMA, ~7% slower products)
@njit(parallel=True, cache=True, fastmath=_FAST)
def _matvec(kind, w0, w1, w2, x, f16, out):  # pragma: no cover - compiled
    """out[t, r] = row r of the blocks of w0, w1, w2 stacked (each (rows, bytes per row), the
    unused ones with 0 rows) . x[t] for t < T; rows in chunks of 64 over the threads."""
    n_rows = w0.shape[0] + w1.shape[0] + w2.shape[0]
    xs = np.empty((x.shape[0], x.shape[1] // 32), np.float32)
    _sums32(x, xs)
    for c in prange((n_rows + 63) // 64):
        _rows(kind, w0, w1, w2, x, xs, f16, out, 64 * c, min(n_rows, 64 * c + 64), np.empty(32, np.float32), np.empty(32, np.float32))


@njit(cache=True, fastmath=_FAST)
def _matvec_serial(kind, w0, w1, w2, x, f16, out):  # pragma: no cover - compiled
    """_matvec on the calling thread: a parallel launch costs ~60 us (measured on the 2-core
    machine), more than a small matrix's whole product."""
    xs = np.empty((x.shape[0], x.shape[1] // 32), np.float32)
    _sums32(x, xs)
    _rows(kind, w0, w1, w2, x, xs, f16, out, 0, w0.shape[0] + w1.shape[0] + w2.shape[0], np.empty(32, np.float32), np.empty(32, np.float32))


# ----------------------------------------------------------------------------- dequantize
# The same operations as gguf.quants' dequantize_blocks, element by element (no fastmath, no
# fused multiply-add), so the values are identical.


@njit(inline="always")
def _deq_row(kind, row, f16, out):  # pragma: no cover - compiled
    n = out.shape[0]
    if kind == 0 or kind == 1 or kind == 2 or kind == 3:
        size = 18 + 2 * kind  # Q4_0 18, Q4_1 20, Q5_0 22, Q5_1 24 bytes
        for b in range(n // 32):
            o, xb = b * size, b * 32
            d = _h(row, o, f16)
            m = _h(row, o + 2, f16) if kind == 1 or kind == 3 else np.float32(0)
            qh = np.int64(0)
            if kind == 2 or kind == 3:
                p = o + 2 if kind == 2 else o + 4
                qh = np.int64(row[p]) | (np.int64(row[p + 1]) << 8) | (np.int64(row[p + 2]) << 16) | (np.int64(row[p + 3]) << 24)
            qo = o + size - 16
            for j in range(16):
                q = np.int64(row[qo + j])
                lo, hi = q & 15, q >> 4
                if kind >= 2:
                    lo |= ((qh >> j) & 1) << 4
                    hi |= ((qh >> (j + 16)) & 1) << 4
                if kind == 0:
                    out[xb + j] = d * np.float32(lo - 8)
                    out[xb + 16 + j] = d * np.float32(hi - 8)
                elif kind == 2:
                    out[xb + j] = d * np.float32(lo - 16)
                    out[xb + 16 + j] = d * np.float32(hi - 16)
                else:
                    out[xb + j] = d * np.float32(lo) + m
                    out[xb + 16 + j] = d * np.float32(hi) + m
    elif kind == 4:
        for b in range(n // 32):
            o, xb = b * 34, b * 32
            d = _h(row, o, f16)
            for j in range(32):
                out[xb + j] = np.float32(np.int8(row[o + 2 + j])) * d
    elif kind == 5 or kind == 6:
        size = 144 if kind == 5 else 176
        for b in range(n // 256):
            o, xb = b * size, b * 256
            d = _h(row, o, f16)
            dmin = _h(row, o + 2, f16)
            qo = o + 16 if kind == 5 else o + 48
            for s in range(8):
                sc, mn = _k_scale_min(row, o + 4, s)
                ds = d * np.float32(sc)
                dm = dmin * np.float32(mn)
                c, shift = s // 2, 4 * (s % 2)
                for j in range(32):
                    q = (np.int64(row[qo + 32 * c + j]) >> shift) & 15
                    if kind == 6:
                        q |= ((np.int64(row[o + 16 + j]) >> s) & 1) << 4
                    out[xb + 32 * s + j] = ds * np.float32(q) - dm
    else:
        for b in range(n // 256):
            o, xb = b * 210, b * 256
            d = _h(row, o + 208, f16)
            for g in range(8):
                h, k = g // 4, g % 4
                lo_o = o + 64 * h + 32 * (k % 2)
                hi_o = o + 128 + 32 * h
                for j in range(32):
                    q = ((np.int64(row[lo_o + j]) >> (4 * (k // 2))) & 15) | (((np.int64(row[hi_o + j]) >> (2 * k)) & 3) << 4)
                    e = 32 * g + j
                    sc = d * np.float32(np.int8(row[o + 192 + e // 16]))
                    out[xb + e] = sc * np.float32(q - 32)


@njit(parallel=True, cache=True)
def _dequantize_rows(kind, raw, rows, f16, out):  # pragma: no cover - compiled
    """out[i] = row rows[i] of raw, dequantized."""
    for i in prange(rows.shape[0]):
        _deq_row(kind, raw[rows[i]], f16, out[i])


# ----------------------------------------------------------------------------- Python side


def block_bytes(qtype: QT, cols: int) -> int:
    """Bytes of one row of `cols` values of type qtype."""
    block, size = GGML_QUANT_SIZES[qtype]
    return cols // block * size


# products of at least this many multiply-adds run on numba's threads: with TBB every product
# (SmolLM2's smallest, attn_output, 0.33M: 53 -> 42 us; a ~3 us launch is lost in any product,
# and the serial kernel need not be built); with workqueue's ~50 us launch only the large ones
# (gate+up 1.8M, the output head 28M)
PARALLEL_MACS = 0 if THREADING == "tbb" else 1_500_000


class Matvec:
    """x @ [W1; W2; W3].T for up to three quantized matrices of one type, each raw (rows, bytes
    per row), stacked by rows: the arguments checked and laid out once, so a call costs the
    kernel plus ~5 us."""

    def __init__(self, qtype: QT, raws: Sequence[np.ndarray]):
        if not 1 <= len(raws) <= 3:
            raise ValueError(f"matvec takes 1 to 3 matrices, got {len(raws)}")
        w = [np.ascontiguousarray(r, dtype=np.uint8).view() for r in raws]
        for r in w:  # one compiled signature: read-only, as the memory map's
            r.flags.writeable = False
        empty = np.empty((0, w[0].shape[1]), np.uint8)
        empty.flags.writeable = False
        self.rows = sum(r.shape[0] for r in w)
        self.cols = w[0].shape[1] // GGML_QUANT_SIZES[qtype][1] * GGML_QUANT_SIZES[qtype][0]
        self.kind, self.w = KIND[qtype], (w + [empty] * 3)[:3]
        self.kernel = _matvec if self.rows * self.cols >= PARALLEL_MACS else _matvec_serial

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """x (T, cols) -> (T, rows) float32."""
        if x.dtype != np.float32 or not x.flags.c_contiguous:
            x = np.ascontiguousarray(x, dtype=np.float32)
        out = np.empty((x.shape[0], self.rows), np.float32)  # (T, rows)
        w0, w1, w2 = self.w
        self.kernel(self.kind, w0, w1, w2, x, F16_TABLE, out)
        return out


def matvec(qtype: QT, raws: Sequence[np.ndarray], x: np.ndarray) -> np.ndarray:
    """x (T, cols) float32 times up to three quantized matrices of one type, each raw (rows,
    bytes per row), stacked by rows and transposed: (T, sum of rows) float32, like
    x @ concatenate([dequantize(raw) for raw in raws]).T."""
    return Matvec(qtype, raws)(x)


def dequantize_rows(qtype: QT, raw: np.ndarray, cols: int, rows: np.ndarray | slice | None = None) -> np.ndarray:
    """Rows of the quantized matrix raw (rows, bytes per row) as float32 (n, cols), equal to
    gguf.quants.dequantize's values."""
    if rows is None:
        idx = np.arange(raw.shape[0], dtype=np.int64)
    elif isinstance(rows, slice):
        idx = np.arange(raw.shape[0], dtype=np.int64)[rows]
    else:
        idx = np.asarray(rows, dtype=np.int64).reshape(-1)
    out = np.empty((idx.shape[0], cols), np.float32)  # (n, cols)
    if raw.flags.writeable:  # one compiled signature: read-only, as the memory map's
        raw = raw.view()
        raw.flags.writeable = False
    _dequantize_rows(KIND[qtype], raw, idx, F16_TABLE, out)
    return out


_warm: dict[str, float] = {}


def warm_up() -> float:
    """Compile (first run on this machine) or load from the cache the kernels a model's products
    use; returns the seconds it took (0 after the first call in a process). Each kernel is one
    compiled signature for every type (~10-35 s to build on a 2-core machine); the serial matvec
    is built here only where small products use it (workqueue pool), else on first use."""
    if "s" in _warm:
        return 0.0
    t0 = time.perf_counter()
    x = np.random.default_rng(0).standard_normal((1, 256)).astype(np.float32)
    raw = np.zeros((1, block_bytes(QT.Q8_0, 256)), np.uint8)
    mv = Matvec(QT.Q8_0, [raw])
    for kernel in (_matvec, _matvec_serial) if THREADING != "tbb" else (_matvec,):
        mv.kernel = kernel
        mv(x)
    dequantize_rows(QT.Q8_0, raw, 256, np.zeros(1, np.int64))
    _warm["s"] = time.perf_counter() - t0
    return _warm["s"]
