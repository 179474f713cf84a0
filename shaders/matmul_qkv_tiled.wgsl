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

override EPS: f32 = 1e-5;
override NQ: u32;
override NK: u32;
override HD: u32;
override NEOX: bool = false;
const NORM: bool = true;

@group(0) @binding(0) var<uniform> step: Step;
@group(0) @binding(1) var<storage, read> wq: array<vec4<u32>>;
@group(0) @binding(2) var<storage, read> x: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read> g: array<vec4<f32>>;
@group(0) @binding(4) var<storage, read> rope: array<vec2<f32>>;
@group(0) @binding(5) var<storage, read_write> q: array<f32>;
@group(0) @binding(6) var<storage, read_write> kc: array<kv>;
@group(0) @binding(7) var<storage, read_write> vc: array<kv>;

fn in_scale(j: u32) -> vec4<f32> {
    return g[j];
}

// Rotate and store pair p's values (v0: blob row p, v1: row p + M/2) of token row t.
fn store_pair(p: u32, t: u32, v0_in: f32, v1_in: f32) {
    let hh = HD / 2u;
    let pq = NQ / 2u;
    let pk = NK / 2u;
    var l = p;
    var region = 0u;
    if (p >= pq + pk) {
        region = 2u;
        l = p - pq - pk;
    } else if (p >= pq) {
        region = 1u;
        l = p - pq;
    }
    let h = l / hh;
    let j = l % hh;
    var d0 = 2u * l;
    var d1 = d0 + 1u;
    if (region < 2u) {
        if (NEOX) {
            d0 = h * HD + j;
            d1 = d0 + hh;
        } else {
            d0 = h * HD + 2u * j;
            d1 = d0 + 1u;
        }
    }
    var v0 = v0_in;
    var v1 = v1_in;
    let pos = step.n_past + t;
    if (region < 2u) {
        let cs = rope[pos * hh + j];
        let r0 = v0 * cs.x - v1 * cs.y;
        v1 = v0 * cs.y + v1 * cs.x;
        v0 = r0;
    }
    if (region == 0u) {
        q[t * NQ + d0] = v0;
        q[t * NQ + d1] = v1;
    } else if (region == 1u) {
        kc[pos * NK + d0] = kv(v0);
        kc[pos * NK + d1] = kv(v1);
    } else {
        vc[pos * NK + d0] = kv(v0);
        vc[pos * NK + d1] = kv(v1);
    }
}

@compute @workgroup_size(64u * KS)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let n_tok = step.n_tokens;
    if (wid.y * TILE_TOKENS >= n_tok) {
        return;
    }
    let n_pair = M / 2u;
    let tl = tile_matmul(wid, lid, n_pair, n_tok);
    for (var i = 0u; i < 4u; i++) {
        let t = tl.t0 + i;
        if (!tl.ok || t >= n_tok) {
            break;
        }
        if (tl.p0 < n_pair) {
            store_pair(tl.p0, t, tl.a0[i], tl.b0[i]);
        }
        if (tl.p0 + 16u < n_pair) {
            store_pair(tl.p0 + 16u, t, tl.a1[i], tl.b1[i]);
        }
    }
}
