// Shared helper (included with `//!include _quant.wgsl`): reading a weight matrix stored in
// Companion's "interleaved blob" layout, repacked once at load by companion.gpu.builder.repack.
// The including file declares the binding `wq: array<vec4<u32>>` and includes _prec.wgsl first.
//
// Weight W: (M rows, K cols), nb = K / 32 blocks per row, G = vec4s of quants per block
// (F32 8, F16 4, Q8_0 2, the 4-, 5- and 6-bit types 1), SOFF = nb * G * M,
// HOFF = SOFF + ceil(nb * M / 2) (vec4 units):
//   quants  wq[(b * G + g) * M + r]                 vec4<u32>: words 4g .. 4g+3 of block b of row r
//   scales  wq[SOFF + (b * M + r) / 2]              (d, m) f32 pairs, .xy for even b*M+r, .zw odd
//           element = q * d + m  (Q4_0: m = -8 d; Q8_0: m = 0, q signed); no scales for F32/F16
//   high    u32 word w of block i = b * M + r at HOFF * 4 + i * H + w (H = qhigh_words(): Q5_0
//           and Q5_K 1, Q6_K 2): the quants' high bits, bit k (Q6_K: bits 2k, 2k+1) for element k
// Rows are innermost so neighbouring invocations (neighbouring rows) read neighbouring 16-byte
// vectors: coalesced on GPUs, contiguous vector loads on CPU rasterizers.
// With ROWMAJOR (the split-K layout, builder.repack(rowmajor=True)) each row is contiguous
// instead, for workgroups whose invocations stride along K:
//   quants  wq[(r * nb + b) * G + g]
//   scales  wq[SOFF + (r * nb + b) / 2]             .xy for even r*nb+b, .zw odd
//   high    block i = r * nb + b
// Element order inside a block follows ggml's Q4_0: byte j holds element j (low nibble) and
// element j + 16 (high nibble); Q8_0 bytes are int8 elements in order. The 5- and 6-bit types
// (Q5_0, Q4_K, Q5_K, Q6_K) are unpacked at load into 32-element blocks of that Q4_0 byte order,
// with the high bits apart and each block's own scales (builder.split_blocks):
//   Q4_K, Q5_K  element = q d + m       (d = super d * 6-bit scale, m = -dmin * 6-bit min)
//   Q5_0        element = (q - 16) d
//   Q6_K        element = (q - 32) d for elements 0..15, (q - 32) m for 16..31 (two sub-blocks)

override QTYPE: u32;  // GGML type id: 0 F32, 1 F16, 2 Q4_0, 3 Q4_1, 6 Q5_0, 8 Q8_0, 12 Q4_K, 13 Q5_K, 14 Q6_K
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

// u32 words of high bits per block (0: the type has none).
fn qhigh_words() -> u32 {
    switch QTYPE {
        case 6u, 13u: { return 1u; }
        case 14u: { return 2u; }
        default: { return 0u; }
    }
}

// Index of block b of row r in the scale and high-bit regions.
fn qblock(r: u32, b: u32) -> u32 {
    return select(b * M + r, r * (K / 32u) + b, ROWMAJOR);
}

// (d, m) of block b of row r; (1, 0) for F32 / F16 (Q6_K: the two halves' scales).
fn qscale(r: u32, b: u32) -> vec2<f32> {
    if (QTYPE == 0u || QTYPE == 1u) {
        return vec2<f32>(1.0, 0.0);
    }
    let i = qblock(r, b);
    let v = wq[(K / 32u) * qgroups() * M + i / 2u];
    return bitcast<vec2<f32>>(select(v.xy, v.zw, (i & 1u) == 1u));
}

// The high-bit words of block b of row r (zeros for types without them).
fn qhigh(r: u32, b: u32) -> vec2<u32> {
    let hw = qhigh_words();
    if (hw == 0u) {
        return vec2<u32>(0u);
    }
    let nb = K / 32u;
    let base = (nb * qgroups() * M + (nb * M + 1u) / 2u) * 4u;  // HOFF in words
    let w = base + qblock(r, b) * hw;
    let lo = wq[w / 4u][w % 4u];
    if (hw == 1u) {
        return vec2<u32>(lo, 0u);
    }
    return vec2<u32>(lo, wq[(w + 1u) / 4u][(w + 1u) % 4u]);
}

// The quant group g of block b of row r.
fn qload(r: u32, b: u32, g: u32) -> vec4<u32> {
    if (ROWMAJOR) {
        return wq[(r * (K / 32u) + b) * qgroups() + g];
    }
    return wq[(b * qgroups() + g) * M + r];
}

// Raw quant values of element vec4 e (elements 4e .. 4e+3) of a 4-bit-based block: the low
// nibbles from word e & 3 of u, plus the high bits from h for the 5- and 6-bit types, less the
// type's zero point (Q4_0 8, Q5_0 16, Q6_K 32: exact small integers, no cancellation against m).
fn qv_nibbles(u: vec4<u32>, h: vec2<u32>, e: u32) -> vec4<i32> {
    let w = u[e & 3u] >> (4u * (e >> 2u));
    var q = vec4<u32>(w & 15u, (w >> 8u) & 15u, (w >> 16u) & 15u, (w >> 24u) & 15u);
    switch QTYPE {
        case 2u: {
            return vec4<i32>(q) - vec4<i32>(8);
        }
        case 6u, 13u: {  // bit 4e + j of h.x: the fifth bit of element 4e + j
            let hb = h.x >> (4u * e);
            q |= vec4<u32>(hb & 1u, (hb >> 1u) & 1u, (hb >> 2u) & 1u, (hb >> 3u) & 1u) << vec4<u32>(4u);
            if (QTYPE == 6u) {
                return vec4<i32>(q) - vec4<i32>(16);
            }
            return vec4<i32>(q);
        }
        case 14u: {  // bits 8e + 2j, 8e + 2j + 1 of (h.x, h.y): the two high bits of element 4e + j
            let hb = select(h.x, h.y, e >= 4u) >> (8u * (e & 3u));
            q |= vec4<u32>(hb & 3u, (hb >> 2u) & 3u, (hb >> 4u) & 3u, (hb >> 6u) & 3u) << vec4<u32>(4u);
            return vec4<i32>(q) - vec4<i32>(32);
        }
        default: {
            return vec4<i32>(q);
        }
    }
}

// Element vec4 e (0 .. 8 / G - 1) of a loaded quant group (u, with its block's high bits h)
// as raw quant values q (element = q * d + m with qscale's (d, m); the values themselves for
// F32 / F16), in the inner-product type hf of _prec.wgsl. Small integers, exact in f16; the
// scale is applied per block in f32.
fn qv(u: vec4<u32>, h: vec2<u32>, e: u32) -> hf4 {
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
        default: {
            return hf4(qv_nibbles(u, h, e));
        }
    }
}

// True when the block offset m must be applied (Q4_1, Q4_K, Q5_K; the zero points of Q4_0,
// Q5_0 and Q6_K are folded into qv): inner products then also need the block's sum of x.
fn qhas_m() -> bool {
    return QTYPE == 3u || QTYPE == 12u || QTYPE == 13u;
}

// True when the block has two scales, d for elements 0..15 and m for 16..31 (Q6_K): inner
// products then sum the halves apart (element vec4s e < 4 and e >= 4).
fn qsplit() -> bool {
    return QTYPE == 14u;
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
            let q = vec4<f32>(qv_nibbles(u, qhigh(r, b), e));
            if (qsplit()) {
                return q * select(s.x, s.y, e >= 4u);
            }
            if (qhas_m()) {
                return q * s.x + s.y;
            }
            return q * s.x;
        }
    }
}
