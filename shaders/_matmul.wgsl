// Shared helper (included with `//!include _matmul.wgsl`, after _prec.wgsl and _quant.wgsl): the inner loop of
// every matmul kernel. Two weight rows times up to four token rows of x, dequantizing each
// weight vec4 once. Plain scalar/vector accumulators only: dynamically indexed private arrays
// become per-lane memory on CPU rasterizers (lavapipe, SwiftShader) and spill on GPUs.
// The including file declares `x: array<vec4<f32>>` (rows of K floats), the override TT
// (token rows per invocation, 1..4) and `fn in_scale(j: u32) -> vec4<f32>`, a per-column
// factor applied to x (the RMSNorm weight, or 1); matmul_rows' `inv` is a per-token factor (the
// RMSNorm scale, or 1), applied before the inputs are rounded to hf: normalized inputs stay in
// f16 range where the raw residual stream may not. Each dot of four raw quant values
// with four inputs is taken in hf (_prec.wgsl: f32, or f16 on the shader-f16 path) and summed
// in f32; a block's scale applies once: sum(w x) = d sum(q x) + m sum(x) (Q6_K's two 16-element
// halves: d sum(q x) over the first, m sum(q x) over the second; _quant.wgsl qsplit).

struct Acc {
    a: vec4<f32>,  // row r0, tokens t0 .. t0+3
    b: vec4<f32>,  // row r1, tokens t0 .. t0+3
}

fn matmul_rows(r0: u32, r1: u32, t0: u32, n_tok: u32, inv: vec4<f32>) -> Acc {
    let k4 = K / 4u;
    let last = n_tok - 1u;
    let o0 = min(t0, last) * k4;
    let o1 = min(t0 + 1u, last) * k4;
    let o2 = min(t0 + 2u, last) * k4;
    let o3 = min(t0 + 3u, last) * k4;
    let one = hf4(1.0);
    var a = vec4<f32>(0.0);
    var c = vec4<f32>(0.0);
    let ng = qgroups();
    let per = 8u / ng;  // element vec4s per quant group
    for (var b = 0u; b < K / 32u; b++) {
        var pa = vec4<f32>(0.0);  // this block's sum of q * x, row r0, tokens t0 .. t0+3
        var pc = vec4<f32>(0.0);  // row r1
        var xs = vec4<f32>(0.0);  // this block's sum of x (for the offset m)
        var la = vec4<f32>(0.0);  // qsplit: the first half's pa
        var lc = vec4<f32>(0.0);  // qsplit: the first half's pc
        let h0 = qhigh(r0, b);
        let h1 = qhigh(r1, b);
        for (var gi = 0u; gi < ng; gi++) {
            let u0 = qload(r0, b, gi);
            let u1 = qload(r1, b, gi);
            for (var e = 0u; e < per; e++) {
                if (qsplit() && e == 4u) {  // G = 1: e runs over the whole block
                    la = pa;
                    lc = pc;
                    pa = vec4<f32>(0.0);
                    pc = vec4<f32>(0.0);
                }
                let w0 = qv(u0, h0, e);
                let w1 = qv(u1, h1, e);
                let j = b * 8u + gi * per + e;
                let g = in_scale(j);
                let x0 = hf4(x[o0 + j] * (g * inv.x));
                pa.x += f32(dot(w0, x0));
                pc.x += f32(dot(w1, x0));
                if (qhas_m()) {
                    xs.x += f32(dot(x0, one));
                }
                if (TT > 1u) {
                    let x1 = hf4(x[o1 + j] * (g * inv.y));
                    pa.y += f32(dot(w0, x1));
                    pc.y += f32(dot(w1, x1));
                    if (qhas_m()) {
                        xs.y += f32(dot(x1, one));
                    }
                }
                if (TT > 2u) {
                    let x2 = hf4(x[o2 + j] * (g * inv.z));
                    pa.z += f32(dot(w0, x2));
                    pc.z += f32(dot(w1, x2));
                    if (qhas_m()) {
                        xs.z += f32(dot(x2, one));
                    }
                }
                if (TT > 3u) {
                    let x3 = hf4(x[o3 + j] * (g * inv.w));
                    pa.w += f32(dot(w0, x3));
                    pc.w += f32(dot(w1, x3));
                    if (qhas_m()) {
                        xs.w += f32(dot(x3, one));
                    }
                }
            }
        }
        let s0 = qscale(r0, b);
        let s1 = qscale(r1, b);
        if (qsplit()) {
            a += s0.x * la + s0.y * pa;
            c += s1.x * lc + s1.y * pc;
        } else if (qhas_m()) {
            a += s0.x * pa + s0.y * xs;
            c += s1.x * pc + s1.y * xs;
        } else {
            a += s0.x * pa;
            c += s1.x * pc;
        }
    }
    return Acc(a, c);
}
