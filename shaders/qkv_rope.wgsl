// The attention input's second half where it cannot be fused into one matmul (matmul_qkv.wgsl):
// q, k, v rows of this batch (written by matmul_norm dispatches) get their biases (qwen2), an
// RMSNorm over each q and k head (gemma3's attn_q_norm / attn_k_norm), RoPE, and k, v go into
// this layer's KV cache at positions n_past + t. Workgroup (h, t): head h of token t, where
// h < NH is a q head, h < NH + NKV a k head, and the rest v heads.
// RoPE pairs as _qkv_out.wgsl says.
//
// binding  name  type                          shape
// 0        step  uniform Step                  n_past, n_tokens
// 1        qkv   storage read  array<f32>      (n_tokens, NQ + 2 NK)   q | k | v of each token
// 2        aux   storage read  array<f32>      [bias (NQ + 2 NK) if HAS_BIAS][q_norm (HD), k_norm (HD) if QK_NORM]
// 3        rope  storage read  array<vec2f32>  (n_ctx, HD/2) cos, sin of this layer's angles
// 4        q     storage rw    array<f32>      (n_tokens, NQ)
// 5        kc    storage rw    array<kv>       (n_ctx, NK) this layer's keys   (kv: f32, or f16 with _prec_f16)
// 6        vc    storage rw    array<kv>       (n_ctx, NK) this layer's values
// overrides: NQ, NK, HD (even, <= 256), NEOX, HAS_BIAS, QK_NORM, EPS, WG (power of two <= 256)
// dispatch: (NQ / HD + 2 NK / HD, n_tokens, 1)
//!include _step.wgsl
//!include _prec.wgsl
//!include _reduce.wgsl
//!include _qkv_out.wgsl

override HAS_BIAS: bool = false;
override QK_NORM: bool = false;
override EPS: f32 = 1e-6;
override WG: u32 = 64u;

@group(0) @binding(0) var<uniform> step: Step;
@group(0) @binding(1) var<storage, read> qkv: array<f32>;
@group(0) @binding(2) var<storage, read> aux: array<f32>;
@group(0) @binding(3) var<storage, read> rope: array<vec2<f32>>;
@group(0) @binding(4) var<storage, read_write> q: array<f32>;
@group(0) @binding(5) var<storage, read_write> kc: array<kv>;
@group(0) @binding(6) var<storage, read_write> vc: array<kv>;

var<workgroup> hv: array<f32, 256>;  // (HD,) this head, biased and normed

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let h = wid.x;
    let t = wid.y;
    if (t >= step.n_tokens) {
        return;
    }
    let nqh = NQ / HD;
    let nkh = NK / HD;
    let part = qkv_part(h, nqh, nkh);
    let region = part.x;  // 0 q, 1 k, 2 v
    let hh = part.y;  // head index inside its region
    let col = h * HD;  // this head's first column in q | k | v
    let row = t * (NQ + 2u * NK);
    var ss = 0.0;
    for (var d = lid; d < HD; d += WG) {
        var v = qkv[row + col + d];
        if (HAS_BIAS) {
            v += aux[col + d];
        }
        hv[d] = v;
        ss += v * v;
    }
    let pos = step.n_past + t;
    if (region == 2u) {
        for (var d = lid; d < HD; d += WG) {
            vc[pos * NK + hh * HD + d] = kv(hv[d]);
        }
        return;
    }
    var inv = 1.0;
    if (QK_NORM) {
        inv = inverseSqrt(wg_sum(ss, lid) / f32(HD) + EPS);  // its barriers also publish hv
    } else {
        workgroupBarrier();
    }
    let nb = select(0u, NQ + 2u * NK, HAS_BIAS) + region * HD;  // this region's norm weights
    let half = HD / 2u;
    for (var j = lid; j < half; j += WG) {
        var d0 = 2u * j;
        var d1 = d0 + 1u;
        if (NEOX) {
            d0 = j;
            d1 = j + half;
        }
        var v0 = hv[d0] * inv;
        var v1 = hv[d1] * inv;
        if (QK_NORM) {
            v0 *= aux[nb + d0];
            v1 *= aux[nb + d1];
        }
        qkv_put(region, t, pos, hh * HD + d0, hh * HD + d1, rotate(v0, v1, rope[pos * half + j]));
    }
}
