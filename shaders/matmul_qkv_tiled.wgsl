// The attention input half for a batch of token rows, tiled (prefill on GPUs): matmul_qkv.wgsl's
// computation (h = rmsnorm(x) * g, q, k, v = Wqkv h, RoPE, k and v stored into the KV cache at
// n_past + t) with _tile.wgsl's workgroup tiles: 32 rotation pairs (blob rows p, p + M/2,
// builder.qkv_pair_order) x 16 tokens.
//
// binding  name  type                          shape
// 0        step  uniform Step                  n_past, n_tokens
// 1        wq    storage read  array<vec4u32> blob of Wqkv (NQ + 2 NK, K), ROWMAJOR, pair order
// 2        x     storage read  array<vec4f32>  (n_tokens, K)
// 3        g     storage read  array<vec4f32>  (K,) attn_norm weight
// 4        rope  storage read  array<vec2f32>  (n_ctx, HD/2) cos, sin
// 5        q     storage rw    array<f32>      (n_tokens, NQ)
// 6        kc    storage rw    array<kv>       (n_ctx, NK) this layer's keys   (kv: _prec.wgsl)
// 7        vc    storage rw    array<kv>       (n_ctx, NK) this layer's values
// overrides: QTYPE, M (= NQ + 2 NK), K, ROWMAJOR (true), KB, KS (_tile.wgsl), NQ, NK, HD, NEOX, EPS
// dispatch: (ceil(M / 2 / 32), ceil(n_tokens / 16), 1), workgroups of 64 KS invocations
//!include _step.wgsl
//!include _prec.wgsl
//!include _quant.wgsl
//!include _tile.wgsl
//!include _in_normed.wgsl
//!include _qkv_out.wgsl

override EPS: f32 = 1e-5;
const NORM: bool = true;

@group(0) @binding(4) var<storage, read> rope: array<vec2<f32>>;
@group(0) @binding(5) var<storage, read_write> q: array<f32>;
@group(0) @binding(6) var<storage, read_write> kc: array<kv>;
@group(0) @binding(7) var<storage, read_write> vc: array<kv>;

fn tile_put(p: u32, t: u32, v0: f32, v1: f32) {
    store_pair(p, t, v0, v1);
}

@compute @workgroup_size(64u * KS)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    tile_run(wid, lid, M / 2u);
}
