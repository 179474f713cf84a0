// res[t] += rmsnorm(x[t]) * g: a block's output, normed, added to the residual stream (Gemma's
// post-attention and post-FFN norms). One workgroup per token.
//
// binding  name  type                          shape
// 0        step  uniform Step                  n_tokens
// 1        x     storage read  array<vec4f32>  (n_tokens, K)   the block's output
// 2        g     storage read  array<vec4f32>  (K,) norm weight
// 3        res   storage rw    array<vec4f32>  (n_tokens, K)   residual stream
// overrides: K (multiple of 4), EPS, WG (power of two <= 256)
// dispatch: (1, n_tokens, 1)
//!include _step.wgsl
//!include _reduce.wgsl
//!include _rmsnorm.wgsl

override K: u32;
override WG: u32 = 64u;
const TT: u32 = 1u;  // (_rmsnorm.wgsl's token rows per invocation)

@group(0) @binding(0) var<uniform> step: Step;
@group(0) @binding(1) var<storage, read> x: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> g: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read_write> res: array<vec4<f32>>;

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let t = wid.y;
    if (t >= step.n_tokens) {
        return;
    }
    let inv = inv_rms(t, lid);
    let k4 = K / 4u;
    for (var i = lid; i < k4; i += WG) {
        res[t * k4 + i] += x[t * k4 + i] * inv * g[i];
    }
}
