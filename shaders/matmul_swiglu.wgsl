// y = act(Wg h) * (Wu h) with h = rmsnorm(x) * g: the feed-forward input half, with the
// RMSNorm, the gate and up projections and the gated activation all in one dispatch: act is
// silu (SwiGLU, ACT 0) or the tanh approximation of GELU (GeGLU, ACT 1: Gemma). The blob holds
// the rows of ffn_gate then ffn_up (M = 2N); invocation i computes rows i and i + N.
//
// binding  name  type                          shape
// 0        step  uniform Step                  n_tokens
// 1        wq    storage read  array<vec4u32> blob of [Wg; Wu] (2N, K)   (layout in _quant.wgsl)
// 2        x     storage read  array<vec4f32>  (n_tokens, K)
// 3        g     storage read  array<vec4f32>  (K,) ffn_norm weight
// 4        y     storage rw    array<f32>      (n_tokens, N)
// overrides: QTYPE, M (= 2N), K, EPS, ACT (0 silu, 1 gelu_tanh), WG (power of two <= 256), TT (1..4), SPLITK (GPUs, with
//            ROWMAJOR and TT 1: workgroup (i, t) computes rows i, i + N of token t, _matvec.wgsl)
//            FUSED_NORM (SPLITK, f32: the norm's sum of squares from the matvec loop, _normed_pair.wgsl)
//            PAIRS (SPLITK: workgroup (i, t) computes pairs i PAIRS .. i PAIRS + PAIRS - 1, _matvec.wgsl)
// dispatch: (ceil(N / WG), ceil(n_tokens / TT), 1); SPLITK: (ceil(N / PAIRS), n_tokens, 1)
//!include _step.wgsl
//!include _prec.wgsl
//!include _quant.wgsl
//!include _matmul.wgsl
//!include _reduce.wgsl
//!include _rmsnorm.wgsl
//!include _matvec.wgsl
//!include _normed_pair.wgsl
//!include _in_normed.wgsl
//!include _act.wgsl

override WG: u32 = 64u;
override TT: u32 = 1u;
override SPLITK: bool = false;

@group(0) @binding(4) var<storage, read_write> y: array<f32>;

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>,
        @builtin(workgroup_id) wid: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
    let n = M / 2u;
    let np = normed_pair(gid, wid, lid);
    if (!np.ok) {
        return;
    }
    for (var t = 0u; t < np.nt; t++) {
        y[(np.t0 + t) * n + np.p] = act(np.acc.a[t]) * np.acc.b[t];
    }
}
