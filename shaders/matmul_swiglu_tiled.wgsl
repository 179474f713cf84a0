// y = act(Wg h) * (Wu h) with h = rmsnorm(x) * g for a batch of token rows, tiled (prefill on
// GPUs): matmul_swiglu.wgsl's computation with _tile.wgsl's workgroup tiles (32 row pairs
// (i, i + N) x 16 tokens, inputs staged and normalised in workgroup memory).
//
// binding  name  type                          shape
// 0        step  uniform Step                  n_tokens
// 1        wq    storage read  array<vec4u32> blob of [Wg; Wu] (2N, K), ROWMAJOR   (_quant.wgsl)
// 2        x     storage read  array<vec4f32>  (n_tokens, K)
// 3        g     storage read  array<vec4f32>  (K,) ffn_norm weight
// 4        y     storage rw    array<f32>      (n_tokens, N)
// overrides: QTYPE, M (= 2N), K, ROWMAJOR (true), KB, KS (_tile.wgsl), EPS, ACT (0 silu, 1 gelu_tanh)
// dispatch: (ceil(N / 32), ceil(n_tokens / 16), 1), workgroups of 64 KS invocations
//!include _step.wgsl
//!include _prec.wgsl
//!include _quant.wgsl
//!include _tile.wgsl

override EPS: f32 = 1e-5;
override ACT: u32 = 0u;
const NORM: bool = true;

@group(0) @binding(0) var<uniform> step: Step;
@group(0) @binding(1) var<storage, read> wq: array<vec4<u32>>;
@group(0) @binding(2) var<storage, read> x: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read> g: array<vec4<f32>>;
@group(0) @binding(4) var<storage, read_write> y: array<f32>;

fn in_scale(j: u32) -> vec4<f32> {
    return g[j];
}

// act(a) as matmul_swiglu.wgsl's (GELU's tanh form through the logistic function).
fn act(a: vec4<f32>) -> vec4<f32> {
    if (ACT == 1u) {
        let u = 0.7978845608028654 * (a + 0.044715 * a * a * a);
        return a / (1.0 + exp(-2.0 * u));
    }
    return a / (1.0 + exp(-a));
}

@compute @workgroup_size(64u * KS)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let n_tok = step.n_tokens;
    if (wid.y * TILE_TOKENS >= n_tok) {
        return;
    }
    let n = M / 2u;
    let tl = tile_matmul(wid, lid, n, n_tok);
    let h0 = act(tl.a0) * tl.b0;
    let h1 = act(tl.a1) * tl.b1;
    for (var i = 0u; i < 4u; i++) {
        let t = tl.t0 + i;
        if (!tl.ok || t >= n_tok) {
            break;
        }
        if (tl.p0 < n) {
            y[t * n + tl.p0] = h0[i];
        }
        if (tl.p0 + 16u < n) {
            y[t * n + tl.p0 + 16u] = h1[i];
        }
    }
}
