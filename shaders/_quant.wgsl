// Shared helper (included with `//!include _quant.wgsl`): dequantize one 32-element block of a
// weight matrix stored in Companion's "interleaved blob" layout, repacked once at load by
// companion.gpu.builder. The including file declares the binding `wq: array<u32>`.
//
// Weight W: (M rows, K cols), nb = K / 32 blocks per row, Wd = words per block (qwords()).
//   words   q[(b * Wd + w) * M + r]          quants (or raw f32 / packed f16 values)
//   scales  d[SOFF + b * M + r]  f32 bits     Q4_0, Q4_1, Q8_0
//   mins    m[MOFF + b * M + r]  f32 bits     Q4_1 only
// Rows are innermost so that neighbouring invocations (neighbouring rows) read neighbouring
// words: coalesced on GPUs, contiguous vector loads on CPU rasterizers.
// Element order inside a block follows ggml: Q4_x byte j holds element j (low nibble) and
// element j + 16 (high nibble); Q8_0 bytes are int8 elements in order.

override QTYPE: u32;  // GGML type id: 0 F32, 1 F16, 2 Q4_0, 3 Q4_1, 8 Q8_0
override M: u32;      // rows of W
override K: u32;      // cols of W (multiple of 32)

fn qwords() -> u32 {
    switch QTYPE {
        case 0u: { return 32u; }
        case 1u: { return 16u; }
        case 8u: { return 8u; }
        default: { return 4u; }
    }
}

// Dequantize block b of row r into 8 vec4s (elements 0..31 of the block).
fn dequant_block(r: u32, b: u32) -> array<vec4<f32>, 8> {
    var o: array<vec4<f32>, 8>;
    let nb = K / 32u;
    let wd = qwords();
    let base = b * wd * M + r;
    let soff = nb * wd * M;
    if (QTYPE == 0u) {
        for (var i = 0u; i < 8u; i++) {
            let p = base + 4u * i * M;
            o[i] = vec4<f32>(bitcast<f32>(wq[p]), bitcast<f32>(wq[p + M]),
                             bitcast<f32>(wq[p + 2u * M]), bitcast<f32>(wq[p + 3u * M]));
        }
    } else if (QTYPE == 1u) {
        for (var i = 0u; i < 8u; i++) {
            let p = base + 2u * i * M;
            o[i] = vec4<f32>(unpack2x16float(wq[p]), unpack2x16float(wq[p + M]));
        }
    } else if (QTYPE == 8u) {
        let d = bitcast<f32>(wq[soff + b * M + r]);
        for (var i = 0u; i < 8u; i++) {
            let u = bitcast<i32>(wq[base + i * M]);
            o[i] = d * vec4<f32>(f32(extractBits(u, 0u, 8u)), f32(extractBits(u, 8u, 8u)),
                                 f32(extractBits(u, 16u, 8u)), f32(extractBits(u, 24u, 8u)));
        }
    } else {
        let d = bitcast<f32>(wq[soff + b * M + r]);
        var mn = -8.0 * d;  // Q4_0: d * (q - 8)
        if (QTYPE == 3u) {
            mn = bitcast<f32>(wq[soff + nb * M + b * M + r]);  // Q4_1: d * q + m
        }
        for (var i = 0u; i < 4u; i++) {
            let u = wq[base + i * M];
            let lo = vec4<f32>(f32(u & 15u), f32((u >> 8u) & 15u), f32((u >> 16u) & 15u), f32((u >> 24u) & 15u));
            let hi = vec4<f32>(f32((u >> 4u) & 15u), f32((u >> 12u) & 15u), f32((u >> 20u) & 15u), f32(u >> 28u));
            o[i] = lo * d + mn;
            o[4u + i] = hi * d + mn;
        }
    }
    return o;
}
