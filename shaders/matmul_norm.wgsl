// y = W rmsnorm(x) * g for a batch of token rows (RMSNorm fused into the matmul input): the
// output head, or any projection that follows a norm. With LAST_ONLY only the last token row
// is computed and written to y row 0 (prefill logits).
//
// binding  name  type                          shape
// 0        step  uniform Step                  n_tokens
// 1        wq    storage read  array<u32>      blob of W (M, K)   (layout in _quant.wgsl)
// 2        x     storage read  array<vec4f32>  (n_tokens, K)
// 3        g     storage read  array<vec4f32>  (K,) norm weight
// 4        y     storage rw    array<f32>      (n_tokens or 1, M)
// overrides: QTYPE, M, K, EPS, WG (power of two <= 256), TT (<= 8), LAST_ONLY
// dispatch: (ceil(ceil(M / 2) / WG), LAST_ONLY ? 1 : ceil(n_tokens / TT), 1)
//!include _step.wgsl
//!include _quant.wgsl
//!include _rmsnorm.wgsl

override WG: u32 = 64u;
override TT: u32 = 1u;
override LAST_ONLY: bool = false;

@group(0) @binding(0) var<uniform> step: Step;
@group(0) @binding(1) var<storage, read> wq: array<u32>;
@group(0) @binding(2) var<storage, read> x: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read> g: array<vec4<f32>>;
@group(0) @binding(4) var<storage, read_write> y: array<f32>;

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>,
        @builtin(workgroup_id) wid: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
    let half = (M + 1u) / 2u;
    var t0 = wid.y * TT;
    var nt = min(TT, max(step.n_tokens, t0) - t0);
    if (LAST_ONLY) {
        t0 = step.n_tokens - 1u;
        nt = 1u;
    }
    var inv: array<f32, 8>;
    for (var t = 0u; t < nt; t++) {
        inv[t] = inv_rms(t0 + t, lid);  // every invocation joins the barriers
    }
    let r0 = gid.x;
    if (r0 >= half) {
        return;
    }
    let r1 = min(r0 + half, M - 1u);
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
                let v = x[xo + i] * g[b * 8u + i];
                s0 += dot(w0[i], v);
                s1 += dot(w1[i], v);
            }
            a0[t] += s0;
            a1[t] += s1;
        }
    }
    for (var t = 0u; t < nt; t++) {
        var o = (t0 + t) * M;
        if (LAST_ONLY) {
            o = 0u;
        }
        y[o + r0] = a0[t] * inv[t];
        if (r0 + half < M) {
            y[o + r0 + half] = a1[t] * inv[t];
        }
    }
}
