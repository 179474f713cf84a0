// Shared helper (included with `//!include _quant.wgsl`): reading a weight matrix stored in
// Companion's "interleaved blob" layout, repacked once at load by companion.gpu.builder.repack.
// The including file declares the binding `wq: array<vec4<u32>>` and includes _prec.wgsl first.
//
// Weight W: (M rows, K cols), nb = K / 32 blocks per row, G = vec4s of quants per block
// (F32 8, F16 4, Q8_0 2, Q4_0/Q4_1 1), SOFF = nb * G * M:
//   quants  wq[(b * G + g) * M + r]                 vec4<u32>: words 4g .. 4g+3 of block b of row r
//   scales  wq[SOFF + (b * M + r) / 2]              (d, m) f32 pairs, .xy for even b*M+r, .zw odd
//           element = q * d + m  (Q4_0: m = -8 d; Q8_0: m = 0, q signed); no scales for F32/F16
// Rows are innermost so neighbouring invocations (neighbouring rows) read neighbouring 16-byte
// vectors: coalesced on GPUs, contiguous vector loads on CPU rasterizers.
// With ROWMAJOR (the split-K layout, builder.repack(rowmajor=True)) each row is contiguous
// instead, for workgroups whose invocations stride along K:
//   quants  wq[(r * nb + b) * G + g]
//   scales  wq[SOFF + (r * nb + b) / 2]             .xy for even r*nb+b, .zw odd
// Element order inside a block follows ggml: Q4_x byte j holds element j (low nibble) and
// element j + 16 (high nibble); Q8_0 bytes are int8 elements in order.

override QTYPE: u32;  // GGML type id: 0 F32, 1 F16, 2 Q4_0, 3 Q4_1, 8 Q8_0
override M: u32;      // rows of W
override K: u32;      // cols of W (multiple of 32)
override ROWMAJOR: bool = false;  // blob layout: rows innermost (false) or rows contiguous (true)

// vec4<u32> groups of quants per block
fn qgroups() -> u32 {
    switch QTYPE {
        case 0u: { return 8u; }
        case 1u: { return 4u; }
        case 8u: { return 2u; }
        default: { return 1u; }
    }
}

// (d, m) of block b of row r; (1, 0) for F32 / F16.
fn qscale(r: u32, b: u32) -> vec2<f32> {
    if (QTYPE == 0u || QTYPE == 1u) {
        return vec2<f32>(1.0, 0.0);
    }
    let i = select(b * M + r, r * (K / 32u) + b, ROWMAJOR);
    let v = wq[(K / 32u) * qgroups() * M + i / 2u];
    return bitcast<vec2<f32>>(select(v.xy, v.zw, (i & 1u) == 1u));
}

// The quant group g of block b of row r.
fn qload(r: u32, b: u32, g: u32) -> vec4<u32> {
    if (ROWMAJOR) {
        return wq[(r * (K / 32u) + b) * qgroups() + g];
    }
    return wq[(b * qgroups() + g) * M + r];
}

// Element vec4 e (0 .. 8 / G - 1) of a loaded quant group as raw quant values q (element =
// q * d + m with qscale's (d, m); the values themselves for F32 / F16), in the inner-product
// type hf of _prec.wgsl. Small integers, exact in f16; the scale is applied per block in f32.
fn qv(u: vec4<u32>, e: u32) -> hf4 {
    switch QTYPE {
        case 0u: {
            return hf4(bitcast<vec4<f32>>(u));
        }
        case 1u: {
            return unpack4h(select(u.zw, u.xy, e == 0u));
        }
        case 8u: {
            let w = bitcast<i32>(u[e]);
            return hf4(vec4<i32>(extractBits(w, 0u, 8u), extractBits(w, 8u, 8u),
                                 extractBits(w, 16u, 8u), extractBits(w, 24u, 8u)));
        }
        default: {  // Q4_0 / Q4_1: word e & 3, low nibbles for e < 4, high nibbles for e >= 4
            let w = u[e & 3u] >> (4u * (e >> 2u));
            let q = vec4<u32>(w & 15u, (w >> 8u) & 15u, (w >> 16u) & 15u, (w >> 24u) & 15u);
            if (QTYPE == 2u) {  // Q4_0: q - 8, so m is not needed (no cancellation against m)
                return hf4(vec4<i32>(q) - vec4<i32>(8));
            }
            return hf4(q);
        }
    }
}

// True when the block offset m must be applied (Q4_1; Q4_0's -8 d is folded into qv):
// inner products then also need the block's sum of x.
fn qhas_m() -> bool {
    return QTYPE == 3u;
}

// Elements 4i .. 4i+3 (i < 8) of block b of row r in f32 (exact: no f16 rounding of the
// result on either precision path). (Simple, not fast.)
fn dq4(r: u32, b: u32, i: u32) -> vec4<f32> {
    let per = 8u / qgroups();
    let u = qload(r, b, i / per);
    let e = i % per;
    let s = qscale(r, b);
    switch QTYPE {
        case 0u: {
            return bitcast<vec4<f32>>(u);
        }
        case 1u: {
            let h = select(u.zw, u.xy, e == 0u);
            return vec4<f32>(unpack2x16float(h.x), unpack2x16float(h.y));
        }
        case 8u: {
            let w = bitcast<i32>(u[e]);
            return vec4<f32>(vec4<i32>(extractBits(w, 0u, 8u), extractBits(w, 8u, 8u),
                                       extractBits(w, 16u, 8u), extractBits(w, 24u, 8u))) * s.x;
        }
        default: {
            let w = u[e & 3u] >> (4u * (e >> 2u));
            return vec4<f32>(vec4<u32>(w & 15u, (w >> 8u) & 15u, (w >> 16u) & 15u, (w >> 24u) & 15u)) * s.x + s.y;
        }
    }
}
