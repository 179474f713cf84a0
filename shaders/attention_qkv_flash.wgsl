// The attention of a decode step's one new token with its own q, k and v computed in the same
// dispatch (GPUs): matmul_qkv.wgsl's norm + qkv + RoPE + cache write folded into
// attention_flash.wgsl, one dispatch per layer fewer. Workgroup (h, s):
//   s < S   split s of the cached keys (_flash.wgsl flash_split with CUR), as attention_flash
//           does, after computing head h's query itself: rmsnorm(x) * g times the head's HD
//           rows of Wq, roped. Splits past the last used one leave at once.
//   s == S  the new key: the query as above, plus k and v of head h's kv head (2 HD more rows);
//           its partial is the one key (m = q.k, l = 1, o = v), in slot flash_split().used; the
//           first query head of each kv head writes k and v into the caches. No other
//           workgroup of this dispatch reads that cache row (the splits end before it).
// Each query row pair is split over WG / (HD / 2) lanes (_matvec.wgsl matvec_lanes), so a
// head's HD rows take one pass of the workgroup. matmul_attn.wgsl (CUR) merges the partials.
// The blob rows are ordered by rotation pair (builder.qkv_pair_order), as for matmul_qkv:
// pairs 0 .. NH HD / 2 - 1 are q, then NKV HD / 2 of k, then NKV HD / 2 of v.
//
// binding  name  type                          shape
// 0        step  uniform Step                  n_past (the new token's position)
// 1        wq    storage read  array<vec4u32> blob of Wqkv (M = (NH + 2 NKV) HD, K), ROWMAJOR (_quant.wgsl)
// 2        x     storage read  array<vec4f32>  (K,) the residual stream
// 3        g     storage read  array<vec4f32>  (K,) attn_norm weight
// 4        rope  storage read  array<vec2f32>  (n_ctx, HD / 2) cos, sin of pos * base^(-2j/HD)
// 5        kc    storage rw    array<kv4>      (n_ctx, NKV * HD) roped keys  (kv: _prec.wgsl)
// 6        vc    storage rw    array<kv4>      (n_ctx, NKV * HD)
// 7        part  storage rw    array<vec4f32>  (NH, S + 1, HD / 4 + 1) partials (_flash.wgsl)
// overrides: QTYPE, M, K, EPS; NH, NKV, HD (multiple of 4, <= 256), SCALE (_attn.wgsl); NEOX;
//            WG (power of two, 64..256, = FLASH_WG, a multiple of HD / 2); S, WINDOW, FLASH_WG,
//            CUR (true) (_flash.wgsl)
// dispatch: (NH, S + 1, 1)
//!include _step.wgsl
//!include _prec.wgsl
//!include _quant.wgsl
//!include _reduce.wgsl
//!include _rmsnorm.wgsl
//!include _matvec.wgsl
//!include _in_normed.wgsl
//!include _flash.wgsl

override WG: u32 = 128u;
override NEOX: bool = false;  // the pairing of RoPE dims (_qkv_out.wgsl)
const TT: u32 = 1u;  // one token row (_rmsnorm.wgsl)

@group(0) @binding(4) var<storage, read> rope: array<vec2<f32>>;
@group(0) @binding(5) var<storage, read_write> kc: array<kv4>;
@group(0) @binding(6) var<storage, read_write> vc: array<kv4>;
@group(0) @binding(7) var<storage, read_write> part: array<vec4<f32>>;

var<workgroup> q: array<f32, 256>;   // (HD,) head h's roped query, load_query's input
var<workgroup> kn: array<f32, 256>;  // (HD,) the new key of its kv head, roped, as the cache holds it
var<workgroup> vn: array<f32, 256>;  // (HD,) the new value

//!include _attn.wgsl
//!include _online.wgsl

// The two dot products of row pair p0 + j (j = lid / lanes) with rmsnorm(x) * g, valid in the
// first of the pair's lanes. Call from uniform control flow (barriers).
fn head_pairs(p0: u32, inv: f32, lid: u32) -> vec2<f32> {
    let lanes = WG / (HD / 2u);
    let p = p0 + lid / lanes;
    red_v2[lid] = matvec_lanes(p, p + M / 2u, 0u, inv, lid % lanes, lanes).xy;
    workgroupBarrier();
    var v = vec2<f32>(0.0);
    if (lid % lanes == 0u) {
        for (var i = 0u; i < lanes; i++) {
            v += red_v2[lid + i];
        }
    }
    workgroupBarrier();
    return v;
}

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let h = wid.x;
    let s = wid.y;
    let grp = NH / NKV;  // query heads per kv head
    let kvh = h / grp;
    let pos = step.n_past;
    let sp = flash_split(pos);
    let cur = s == S;
    if (!cur && s >= sp.used) {
        return;  // uniform: the whole workgroup leaves, the merge reads only the used slots
    }
    let hh = HD / 2u;
    let lanes = WG / hh;
    let j = lid / lanes;
    let lead = lid % lanes == 0u;
    var c0 = 2u * j;  // the dims RoPE pair j rotates
    var c1 = c0 + 1u;
    if (NEOX) {
        c0 = j;
        c1 = j + hh;
    }
    let cs = rope[pos * hh + j];
    let inv = inv_rms_sk(0u, lid);
    let vq = head_pairs(h * hh, inv, lid);
    if (lead) {
        q[c0] = vq.x * cs.x - vq.y * cs.y;
        q[c1] = vq.x * cs.y + vq.y * cs.x;
    }
    if (cur) {
        let vk = head_pairs((NH + kvh) * hh, inv, lid);
        let vv = head_pairs((NH + NKV + kvh) * hh, inv, lid);
        if (lead) {
            kn[c0] = f32(kv(vk.x * cs.x - vk.y * cs.y));
            kn[c1] = f32(kv(vk.x * cs.y + vk.y * cs.x));
            vn[2u * j] = f32(kv(vv.x));
            vn[2u * j + 1u] = f32(kv(vv.y));
        }
    }
    workgroupBarrier();
    load_query(0u, lid);
    let d4 = HD / 4u;
    if (!cur) {
        let a = sp.k0 + s * sp.c;
        let b = min(a + sp.c, sp.n_kv);
        var st = online_start();
        for (var k = a; k < b; k += WG) {
            st = online_chunk(st, k, min(WG, b - k), kvh, lid);
        }
        let r = online_total(st, lid);
        let ob = (h * flash_slots() + s) * (d4 + 1u);
        if (lid < d4) {
            part[ob + lid] = r;
        }
        if (lid == 0u) {
            part[ob + d4] = vec4<f32>(st.m, st.l, 0.0, 0.0);
        }
        return;
    }
    var e = 0.0;
    var kq = vec4<f32>(0.0);
    var vq4 = vec4<f32>(0.0);
    if (lid < d4) {
        kq = vec4<f32>(kn[4u * lid], kn[4u * lid + 1u], kn[4u * lid + 2u], kn[4u * lid + 3u]);
        vq4 = vec4<f32>(vn[4u * lid], vn[4u * lid + 1u], vn[4u * lid + 2u], vn[4u * lid + 3u]);
        e = dot(qs[lid], kq);
    }
    let score = wg_sum(e, lid);
    let ob = (h * flash_slots() + sp.used) * (d4 + 1u);
    if (lid < d4) {
        part[ob + lid] = vq4;  // exp(score - m) v with m = score
        if (h % grp == 0u) {
            let cb = pos * NKV * d4 + kvh * d4 + lid;
            kc[cb] = kv4(kq);
            vc[cb] = kv4(vq4);
        }
    }
    if (lid == 0u) {
        part[ob + d4] = vec4<f32>(score, 1.0, 0.0, 0.0);
    }
}
