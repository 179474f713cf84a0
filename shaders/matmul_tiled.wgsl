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

override ADD: bool = false;
const NORM: bool = false;
const EPS: f32 = 0.0;

@group(0) @binding(0) var<uniform> step: Step;
@group(0) @binding(1) var<storage, read> wq: array<vec4<u32>>;
@group(0) @binding(2) var<storage, read> x: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read_write> y: array<f32>;

fn in_scale(j: u32) -> vec4<f32> {
    return vec4<f32>(1.0);
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
    let n = step.n_tokens;
    if (wid.y * TILE_TOKENS >= n) {
        return;
    }
    let half = (M + 1u) / 2u;
    let tl = tile_matmul(wid, lid, half, n);
    for (var i = 0u; i < 4u; i++) {
        let t = tl.t0 + i;
        if (!tl.ok || t >= n) {
            break;
        }
        let p1 = tl.p0 + 16u;
        if (tl.p0 < half) {
            put(t, tl.p0, tl.a0[i]);
            if (tl.p0 + half < M) {
                put(t, tl.p0 + half, tl.b0[i]);
            }
        }
        if (p1 < half) {
            put(t, p1, tl.a1[i]);
            if (p1 + half < M) {
                put(t, p1 + half, tl.b1[i]);
            }
        }
    }
}
