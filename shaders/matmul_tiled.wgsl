// y = W x (or y += W x with ADD) for a batch of token rows, tiled (prefill on GPUs): as
// matmul.wgsl, but each workgroup computes 32 row pairs (rows p, p + ceil(M/2)) for 16 tokens
// with its inputs staged in workgroup memory (_tile.wgsl), so the weights are read once per
// 16 tokens.
//
// binding  name  type                          shape
// 0        step  uniform Step                  n_tokens
// 1        wq    storage read  array<vec4u32> blob of W (M, K), ROWMAJOR   (_quant.wgsl)
// 2        x     storage read  array<vec4f32>  (n_tokens, K)
// 3        y     storage rw    array<f32>      (n_tokens, M)
// overrides: QTYPE, M, K, ROWMAJOR (true), KB, KS (_tile.wgsl), ADD
// dispatch: (ceil(ceil(M / 2) / 32), ceil(n_tokens / 16), 1), workgroups of 64 KS invocations
//!include _step.wgsl
//!include _prec.wgsl
//!include _quant.wgsl
//!include _tile.wgsl
//!include _in_plain.wgsl

override ADD: bool = false;
const NORM: bool = false;
const EPS: f32 = 0.0;

// Row pair p of token row t: a at row p, b at row p + half (when there is one).
fn tile_put(p: u32, t: u32, a: f32, b: f32) {
    put(t, p, a);
    if (p + (M + 1u) / 2u < M) {
        put(t, p + (M + 1u) / 2u, b);
    }
}

fn put(t: u32, r: u32, v: f32) {
    let o = t * M + r;
    if (ADD) {
        y[o] += v;
    } else {
        y[o] = v;
    }
}

@compute @workgroup_size(64u * KS)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    tile_run(wid, lid, (M + 1u) / 2u);
}
