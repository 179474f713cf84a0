// y = silu(Wg h) * (Wu h) with h = rmsnorm(x) * g: the feed-forward input half, with the
// RMSNorm, the gate and up projections and the SwiGLU all in one dispatch. The blob holds the
// rows of ffn_gate then ffn_up (M = 2N); invocation i computes rows i and i + N.
//
// binding  name  type                          shape
// 0        step  uniform Step                  n_tokens
// 1        wq    storage read  array<u32>      blob of [Wg; Wu] (2N, K)   (layout in _quant.wgsl)
// 2        x     storage read  array<vec4f32>  (n_tokens, K)
// 3        g     storage read  array<vec4f32>  (K,) ffn_norm weight
// 4        y     storage rw    array<f32>      (n_tokens, N)
// overrides: QTYPE, M (= 2N), K, EPS, WG (power of two <= 256), TT (<= 8)
// dispatch: (ceil(N / WG), ceil(n_tokens / TT), 1)
//!include _step.wgsl
//!include _quant.wgsl
//!include _rmsnorm.wgsl

override WG: u32 = 64u;
override TT: u32 = 1u;

@group(0) @binding(0) var<uniform> step: Step;
@group(0) @binding(1) var<storage, read> wq: array<u32>;
@group(0) @binding(2) var<storage, read> x: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read> g: array<vec4<f32>>;
@group(0) @binding(4) var<storage, read_write> y: array<f32>;

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>,
        @builtin(workgroup_id) wid: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
    let n = M / 2u;
    let t0 = wid.y * TT;
    let nt = min(TT, max(step.n_tokens, t0) - t0);
    var inv: array<f32, 8>;
    for (var t = 0u; t < nt; t++) {
        inv[t] = inv_rms(t0 + t, lid);
    }
    let r = gid.x;
    if (r >= n) {
        return;
    }
    let k4 = K / 4u;
    var ag: array<f32, 8>;
    var au: array<f32, 8>;
    for (var b = 0u; b < K / 32u; b++) {
        let wg = dequant_block(r, b);
        let wu = dequant_block(r + n, b);
        for (var t = 0u; t < nt; t++) {
            let xo = (t0 + t) * k4 + b * 8u;
            var sg = 0.0;
            var su = 0.0;
            for (var i = 0u; i < 8u; i++) {
                let v = x[xo + i] * g[b * 8u + i];
                sg += dot(wg[i], v);
                su += dot(wu[i], v);
            }
            ag[t] += sg;
            au[t] += su;
        }
    }
    for (var t = 0u; t < nt; t++) {
        let a = ag[t] * inv[t];
        y[(t0 + t) * n + r] = a / (1.0 + exp(-a)) * (au[t] * inv[t]);
    }
}
