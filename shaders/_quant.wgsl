// Shared helper (included with `//!include _quant.wgsl`): reading a weight matrix stored in
// Companion's "interleaved blob" layout, repacked once at load by companion.gpu.builder.repack.
// The including file declares the binding `wq: array<vec4<u32>>`.
//
// Weight W: (M rows, K cols), nb = K / 32 blocks per row, G = vec4s of quants per block
// (F32 8, F16 4, Q8_0 2, Q4_0/Q4_1 1), SOFF = nb * G * M:
//   quants  wq[(b * G + g) * M + r]                 vec4<u32>: words 4g .. 4g+3 of block b of row r
//   scales  wq[SOFF + (b * M + r) / 2]              (d, m) f32 pairs, .xy for even b*M+r, .zw odd
//           element = q * d + m  (Q4_0: m = -8 d; Q8_0: m = 0, q signed); no scales for F32/F16
// Rows are innermost so neighbouring invocations (neighbouring rows) read neighbouring 16-byte
// vectors: coalesced on GPUs, contiguous vector loads on CPU rasterizers.
// Element order inside a block follows ggml: Q4_x byte j holds element j (low nibble) and
// element j + 16 (high nibble); Q8_0 bytes are int8 elements in order.

override QTYPE: u32;  // GGML type id: 0 F32, 1 F16, 2 Q4_0, 3 Q4_1, 8 Q8_0
override M: u32;      // rows of W
override K: u32;      // cols of W (multiple of 32)

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
    let i = b * M + r;
    let v = wq[(K / 32u) * qgroups() * M + i / 2u];
    return bitcast<vec2<f32>>(select(v.xy, v.zw, (i & 1u) == 1u));
}

// The quant group g of block b of row r.
fn qload(r: u32, b: u32, g: u32) -> vec4<u32> {
    return wq[(b * qgroups() + g) * M + r];
}

// Element vec4 e (0 .. 8 / G - 1) of a loaded quant group, dequantized with s = (d, m).
fn dqv(u: vec4<u32>, e: u32, s: vec2<f32>) -> vec4<f32> {
    switch QTYPE {
        case 0u: {
            return bitcast<vec4<f32>>(u);
        }
        case 1u: {
            if (e == 0u) {
                return vec4<f32>(unpack2x16float(u.x), unpack2x16float(u.y));
            }
            return vec4<f32>(unpack2x16float(u.z), unpack2x16float(u.w));
        }
        case 8u: {
            let w = bitcast<i32>(u[e]);
            let q = vec4<f32>(f32(extractBits(w, 0u, 8u)), f32(extractBits(w, 8u, 8u)),
                              f32(extractBits(w, 16u, 8u)), f32(extractBits(w, 24u, 8u)));
            return q * s.x;
        }
        default: {  // Q4_0 / Q4_1: word e & 3, low nibbles for e < 4, high nibbles for e >= 4
            let w = u[e & 3u] >> (4u * (e >> 2u));
            let q = vec4<f32>(f32(w & 15u), f32((w >> 8u) & 15u), f32((w >> 16u) & 15u), f32((w >> 24u) & 15u));
            return q * s.x + s.y;
        }
    }
}

// Elements 4i .. 4i+3 (i < 8) of block b of row r; s = qscale(r, b). (Simple, not fast.)
fn dq4(r: u32, b: u32, i: u32, s: vec2<f32>) -> vec4<f32> {
    let per = 8u / qgroups();
    return dqv(qload(r, b, i / per), i % per, s);
}
