// y = W x (or y += W x with ADD, for a residual) for a batch of token rows.
// W is a quantized weight blob (layout in _quant.wgsl). Each invocation computes rows i and
// i + ceil(M/2) (neighbouring invocations read neighbouring words) for TT tokens.
//
// binding  name  type                          shape
// 0        step  uniform Step                  n_tokens
// 1        wq    storage read  array<u32>      blob of W (M, K)
// 2        x     storage read  array<vec4f32>  (n_tokens, K)
// 3        y     storage rw    array<f32>      (n_tokens, M)
// overrides: QTYPE, M, K, WG, TT (tokens per invocation, <= 8), ADD
// dispatch: (ceil(ceil(M / 2) / WG), ceil(n_tokens / TT), 1)
//!include _step.wgsl
//!include _quant.wgsl

override WG: u32 = 64u;
override TT: u32 = 1u;
override ADD: bool = false;

@group(0) @binding(0) var<uniform> step: Step;
@group(0) @binding(1) var<storage, read> wq: array<u32>;
@group(0) @binding(2) var<storage, read> x: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read_write> y: array<f32>;

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let half = (M + 1u) / 2u;
    let r0 = gid.x;
    let t0 = gid.y * TT;
    if (r0 >= half || t0 >= step.n_tokens) {
        return;
    }
    let r1 = min(r0 + half, M - 1u);
    let nt = min(TT, step.n_tokens - t0);
    let k4 = K / 4u;
    var a0: array<f32, 8>;
    var a1: array<f32, 8>;
    for (var b = 0u; b < K / 32u; b++) {
        let w0 = dequant_block(r0, b);
        let w1 = dequant_block(r1, b);
        for (var t = 0u; t < nt; t++) {
            let xo = (t0 + t) * k4 + b * 8u;
            var s0 = 0.0;
            var s1 = 0.0;
            for (var i = 0u; i < 8u; i++) {
                let v = x[xo + i];
                s0 += dot(w0[i], v);
                s1 += dot(w1[i], v);
            }
            a0[t] += s0;
            a1[t] += s1;
        }
    }
    for (var t = 0u; t < nt; t++) {
        let o = (t0 + t) * M;
        if (ADD) {
            y[o + r0] += a0[t];
        } else {
            y[o + r0] = a0[t];
        }
        if (r0 + half < M) {
            if (ADD) {
                y[o + r0 + half] += a1[t];
            } else {
                y[o + r0 + half] = a1[t];
            }
        }
    }
}
