// The attention input half in one dispatch: h = rmsnorm(x) * g, then q, k, v = Wqkv h, RoPE on
// q and k, and k, v stored into this layer's KV cache at positions n_past + t.
// The blob rows are ordered by rotation pair (builder.qkv_pair_order): invocation p computes
// blob rows p and p + P (P = M / 2) and writes them to the two dims of pair p:
//   p <  PQ            q head h = p / (HD/2), j = p % (HD/2)
//   p <  PQ + PK       k head (same formula), rotated, into kc
//   otherwise          v dims 2l, 2l + 1 (l = p - PQ - PK), into vc
// normal RoPE pairs dims (2j, 2j+1), neox pairs (j, j + HD/2); both rotate by table[pos, j].
//
// binding  name  type                          shape
// 0        step  uniform Step                  n_past, n_tokens
// 1        wq    storage read  array<vec4u32> blob of Wqkv (NQ + 2 NK, K)   (layout in _quant.wgsl)
// 2        x     storage read  array<vec4f32>  (n_tokens, K)
// 3        g     storage read  array<vec4f32>  (K,) attn_norm weight
// 4        rope  storage read  array<vec2f32>  (n_ctx, HD/2) cos, sin of pos * base^(-2j/HD)
// 5        q     storage rw    array<f32>      (n_tokens, NQ)
// 6        kc    storage rw    array<kv>       (n_ctx, NK) this layer's keys   (kv: f32, or f16 with _prec_f16)
// 7        vc    storage rw    array<kv>       (n_ctx, NK) this layer's values
// overrides: QTYPE, M (= NQ + 2 NK), K, NQ, NK, HD, NEOX, EPS, WG (power of two <= 256), TT (1..4),
//            SPLITK (GPUs, with ROWMAJOR and TT 1: workgroup (p, t) computes pair p of token t,
//            _matvec.wgsl)
//            FUSED_NORM (SPLITK, f32: the norm's sum of squares from the matvec loop, _normed_pair.wgsl)
//            PAIRS (SPLITK: workgroup (p, t) computes pairs p PAIRS .. p PAIRS + PAIRS - 1, _matvec.wgsl)
// dispatch: (ceil(M / 2 / WG), ceil(n_tokens / TT), 1); SPLITK: (ceil(M / 2 / PAIRS), n_tokens, 1)
//!include _step.wgsl
//!include _prec.wgsl
//!include _quant.wgsl
//!include _matmul.wgsl
//!include _reduce.wgsl
//!include _rmsnorm.wgsl
//!include _matvec.wgsl
//!include _normed_pair.wgsl
//!include _in_normed.wgsl
//!include _qkv_out.wgsl

override WG: u32 = 64u;
override TT: u32 = 1u;
override SPLITK: bool = false;

@group(0) @binding(4) var<storage, read> rope: array<vec2<f32>>;
@group(0) @binding(5) var<storage, read_write> q: array<f32>;
@group(0) @binding(6) var<storage, read_write> kc: array<kv>;
@group(0) @binding(7) var<storage, read_write> vc: array<kv>;

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>,
        @builtin(workgroup_id) wid: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
    let np = normed_pair(gid, wid, lid);
    if (!np.ok) {
        return;
    }
    for (var t = 0u; t < np.nt; t++) {
        store_pair(np.p, np.t0 + t, np.acc.a[t], np.acc.b[t]);
    }
}
