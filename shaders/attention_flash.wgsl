// Flash-decoding attention for the one new token of a decode step (GPUs): the visible keys are
// split over S workgroups per head, so a long context adds workgroups, not a longer serial walk
// (attention_split.wgsl gives each head one workgroup). Workgroup (h, s) takes keys
// k0 + s C .. k0 + (s + 1) C - 1 (_flash.wgsl flash_span: C = ceil(visible / S) rounded up to
// whole chunks of WG), walks them in chunks of WG as attention_split does (one
// online-softmax step per chunk), and leaves its unnormalised partial output with its running
// max m and sum l. matmul_attn.wgsl merges the S partials of each head while it computes the
// output projection. Workgroups past the last visible key write nothing (the merge knows).
//
// binding  name  type                          shape
// 0        step  uniform Step                  n_past (the new token's position)
// 1        q     storage read  array<f32>      (NH * HD,)            roped query
// 2        kc    storage read  array<kv4>      (n_ctx, NKV * HD)     roped keys  (kv: _prec.wgsl, f32 or f16)
// 3        vc    storage read  array<kv4>      (n_ctx, NKV * HD)
// 4        part  storage rw    array<vec4f32>  (NH, S, HD / 4 + 1)   sum_j exp(s_j - m) v_j, then (m, l, 0, 0)
// overrides: NH, NKV, HD (multiple of 4, <= 256), WG (power of two, 64..256, >= HD / 4, = FLASH_WG),
//            SCALE (factor on q.k; 0 = 1 / sqrt(HD)); S, WINDOW, FLASH_WG (_flash.wgsl)
// dispatch: (NH, S, 1)
//!include _step.wgsl
//!include _prec.wgsl
//!include _flash.wgsl

override NH: u32;
override NKV: u32;
override HD: u32;
override WG: u32 = 64u;
override SCALE: f32 = 0.0;

@group(0) @binding(0) var<uniform> step: Step;
@group(0) @binding(1) var<storage, read> q: array<f32>;
@group(0) @binding(2) var<storage, read> kc: array<kv4>;
@group(0) @binding(3) var<storage, read> vc: array<kv4>;
@group(0) @binding(4) var<storage, read_write> part: array<vec4<f32>>;

var<workgroup> qs: array<vec4<f32>, 64>;    // (HD / 4,) scaled query
var<workgroup> sc: array<f32, 256>;         // probabilities of one chunk
var<workgroup> acc_g: array<vec4<f32>, 256>; // (G, HD / 4) partial value sums

//!include _reduce.wgsl

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let h = wid.x;
    let s = wid.y;
    let d4 = HD / 4u;
    let nk4 = NKV * d4;
    let kvh = h / (NH / NKV);
    let sp = flash_span(step.n_past + 1u);
    let a = sp.k0 + s * sp.c;
    if (s >= sp.used) {
        return;  // uniform: the whole workgroup leaves, the merge reads only `used` splits
    }
    let b = min(a + sp.c, sp.n_kv);
    let scale = select(inverseSqrt(f32(HD)), SCALE, SCALE > 0.0);
    if (lid < d4) {
        let qb = h * HD + 4u * lid;
        qs[lid] = vec4<f32>(q[qb], q[qb + 1u], q[qb + 2u], q[qb + 3u]) * scale;
    }
    workgroupBarrier();
    let ng = WG / d4;  // key groups of the value sum
    let lane = lid % d4;
    let grp = lid / d4;
    var m = -3.0e38;  // running max
    var l = 0.0;      // running sum of exp(score - m)
    var acc = vec4<f32>(0.0);  // dims 4 lane .. of keys grp, grp + ng, ...
    for (var c0 = a; c0 < b; c0 += WG) {
        let cn = min(WG, b - c0);
        var sj = -3.0e38;
        if (lid < cn) {
            let kb = (c0 + lid) * nk4 + kvh * d4;
            var t = vec4<f32>(0.0);  // four independent chains: four loads in flight
            var d = 0u;
            for (; d + 4u <= d4; d += 4u) {
                t.x += dot(qs[d], vec4<f32>(kc[kb + d]));
                t.y += dot(qs[d + 1u], vec4<f32>(kc[kb + d + 1u]));
                t.z += dot(qs[d + 2u], vec4<f32>(kc[kb + d + 2u]));
                t.w += dot(qs[d + 3u], vec4<f32>(kc[kb + d + 3u]));
            }
            for (; d < d4; d++) {
                t.x += dot(qs[d], vec4<f32>(kc[kb + d]));
            }
            sj = (t.x + t.y) + (t.z + t.w);
        }
        let mn = max(m, wg_max(sj, lid));
        let e = select(0.0, exp(sj - mn), lid < cn);
        sc[lid] = e;
        let corr = exp(m - mn);
        l = l * corr + wg_sum(e, lid);  // its barriers also publish sc
        acc *= corr;
        if (grp < ng) {
            let vb = c0 * nk4 + kvh * d4 + lane;
            // eight keys' loads issued before their sums: one round trip to L2 per eight keys
            // (two chains made a chunk's value sum eight dependent round trips)
            var a1 = vec4<f32>(0.0);
            var a2 = vec4<f32>(0.0);
            var a3 = vec4<f32>(0.0);
            var j = grp;
            for (; j + 7u * ng < cn; j += 8u * ng) {
                let v0 = vec4<f32>(vc[vb + j * nk4]);
                let v1 = vec4<f32>(vc[vb + (j + ng) * nk4]);
                let v2 = vec4<f32>(vc[vb + (j + 2u * ng) * nk4]);
                let v3 = vec4<f32>(vc[vb + (j + 3u * ng) * nk4]);
                let v4 = vec4<f32>(vc[vb + (j + 4u * ng) * nk4]);
                let v5 = vec4<f32>(vc[vb + (j + 5u * ng) * nk4]);
                let v6 = vec4<f32>(vc[vb + (j + 6u * ng) * nk4]);
                let v7 = vec4<f32>(vc[vb + (j + 7u * ng) * nk4]);
                acc += sc[j] * v0 + sc[j + 4u * ng] * v4;
                a1 += sc[j + ng] * v1 + sc[j + 5u * ng] * v5;
                a2 += sc[j + 2u * ng] * v2 + sc[j + 6u * ng] * v6;
                a3 += sc[j + 3u * ng] * v3 + sc[j + 7u * ng] * v7;
            }
            for (; j < cn; j += ng) {
                acc += sc[j] * vec4<f32>(vc[vb + j * nk4]);
            }
            acc += (a1 + a2) + a3;
        }
        m = mn;
        workgroupBarrier();  // sc is rewritten by the next chunk
    }
    acc_g[lid] = acc;
    workgroupBarrier();
    let ob = (h * S + s) * (d4 + 1u);
    if (lid < d4) {
        var r = vec4<f32>(0.0);
        for (var g = 0u; g < ng; g++) {
            r += acc_g[g * d4 + lid];
        }
        part[ob + lid] = r;
    }
    if (lid == 0u) {
        part[ob + d4] = vec4<f32>(m, l, 0.0, 0.0);
    }
}
