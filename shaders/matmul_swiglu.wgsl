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
// dispatch: (ceil(N / WG), ceil(n_tokens / TT), 1); SPLITK: (N, n_tokens, 1)
//!include _step.wgsl
//!include _prec.wgsl
//!include _quant.wgsl
//!include _matmul.wgsl
//!include _reduce.wgsl
//!include _rmsnorm.wgsl
//!include _matvec.wgsl
//!include _normed_pair.wgsl

override WG: u32 = 64u;
override TT: u32 = 1u;
override SPLITK: bool = false;
override ACT: u32 = 0u;  // 0: silu, 1: GELU (tanh approximation)

// act(a) for the gate values of up to four tokens. GELU's tanh form is written through the
// logistic function, 0.5 (1 + tanh(u)) = 1 / (1 + exp(-2u)): no tanh of a large argument
// (NaN on some implementations), and exp overflowing to +inf gives the right limit 0.
fn act(a: vec4<f32>) -> vec4<f32> {
    if (ACT == 1u) {
        let u = 0.7978845608028654 * (a + 0.044715 * a * a * a);  // sqrt(2 / pi) (a + 0.044715 a^3)
        return a / (1.0 + exp(-2.0 * u));
    }
    return a / (1.0 + exp(-a));
}

@group(0) @binding(0) var<uniform> step: Step;
@group(0) @binding(1) var<storage, read> wq: array<vec4<u32>>;
@group(0) @binding(2) var<storage, read> x: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read> g: array<vec4<f32>>;
@group(0) @binding(4) var<storage, read_write> y: array<f32>;

fn in_scale(j: u32) -> vec4<f32> {
    return g[j];
}

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>,
        @builtin(workgroup_id) wid: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
    let n = M / 2u;
    let np = normed_pair(gid, wid, lid);
    if (!np.ok) {
        return;
    }
    let r = np.p;
    let t0 = np.t0;
    let nt = np.nt;
    let acc = np.acc;
    let gate = acc.a;
    let up = acc.b;
    let h = act(gate) * up;
    for (var t = 0u; t < nt; t++) {
        y[(t0 + t) * n + r] = h[t];
    }
}
