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
//!include _in_normed.wgsl
//!include _act.wgsl

override EPS: f32 = 1e-5;
const NORM: bool = true;

@group(0) @binding(4) var<storage, read_write> y: array<f32>;

fn tile_put(p: u32, t: u32, gate: f32, up: f32) {
    y[t * (M / 2u) + p] = act(gate) * up;
}

@compute @workgroup_size(64u * KS)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    tile_run(wid, lid, M / 2u);
}
