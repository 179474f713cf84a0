// Shared helper (included with `//!include _matmul.wgsl`, after _quant.wgsl): the inner loop of
// every matmul kernel. Two weight rows times up to four token rows of x, dequantizing each
// weight vec4 once. Plain scalar/vector accumulators only: dynamically indexed private arrays
// become per-lane memory on CPU rasterizers (lavapipe, SwiftShader) and spill on GPUs.
// The including file declares `x: array<vec4<f32>>` (rows of K floats), the override TT
// (token rows per invocation, 1..4) and `fn in_scale(j: u32) -> vec4<f32>`, a per-column
// factor applied to x (the RMSNorm weight, or 1).

struct Acc {
    a: vec4<f32>,  // row r0, tokens t0 .. t0+3
    b: vec4<f32>,  // row r1, tokens t0 .. t0+3
}

fn matmul_rows(r0: u32, r1: u32, t0: u32, n_tok: u32) -> Acc {
    let k4 = K / 4u;
    let last = n_tok - 1u;
    let o0 = min(t0, last) * k4;
    let o1 = min(t0 + 1u, last) * k4;
    let o2 = min(t0 + 2u, last) * k4;
    let o3 = min(t0 + 3u, last) * k4;
    var a = vec4<f32>(0.0);
    var c = vec4<f32>(0.0);
    let ng = qgroups();
    let per = 8u / ng;  // element vec4s per quant group
    for (var b = 0u; b < K / 32u; b++) {
        let s0 = qscale(r0, b);
        let s1 = qscale(r1, b);
        for (var gi = 0u; gi < ng; gi++) {
            let u0 = qload(r0, b, gi);
            let u1 = qload(r1, b, gi);
            for (var e = 0u; e < per; e++) {
                let w0 = dqv(u0, e, s0);
                let w1 = dqv(u1, e, s1);
                let j = b * 8u + gi * per + e;
                let g = in_scale(j);
                let x0 = x[o0 + j] * g;
                a.x += dot(w0, x0);
                c.x += dot(w1, x0);
                if (TT > 1u) {
                    let x1 = x[o1 + j] * g;
                    a.y += dot(w0, x1);
                    c.y += dot(w1, x1);
                }
                if (TT > 2u) {
                    let x2 = x[o2 + j] * g;
                    a.z += dot(w0, x2);
                    c.z += dot(w1, x2);
                }
                if (TT > 3u) {
                    let x3 = x[o3 + j] * g;
                    a.w += dot(w0, x3);
                    c.w += dot(w1, x3);
                }
            }
        }
    }
    return Acc(a, c);
}
