// y += Wo att for the one new token of a decode step, where att is merged here from
// attention_flash.wgsl's partials: the flash-decoding merge fused into the output projection,
// so splitting the keys costs no dispatch. Every workgroup (a row pair, as split-K matmul.wgsl)
// first rebuilds the whole (NH * HD,) attention output in workgroup memory: per head,
// m* = max_s m_s, w_s = exp(m_s - m*) / sum_s l_s exp(m_s - m*), att = sum_s w_s o_s (a few
// thousand floats from L2, the same for every workgroup), then runs _matvec.wgsl's split-K
// inner loop on it; where each invocation has at most one unit of the two rows (K / 32 * G <=
// WG), it loads that unit's weights before the merge, so the weights' trip to memory and the
// merge's overlap.
//
// binding  name  type                          shape
// 0        step  uniform Step                  n_past (the token's position)
// 1        wq    storage read  array<vec4u32> blob of Wo (M, K = NH * HD), ROWMAJOR   (_quant.wgsl)
// 2        part  storage read  array<vec4f32>  (NH, S, HD / 4 + 1)  attention_flash.wgsl's partials
// 3        y     storage rw    array<f32>      (M,)  the residual stream, y += Wo att
// overrides: QTYPE, M, K (= NH * HD, <= 1024), NH, HD, WG (power of two, 64..256: the merge
//            spreads over it, the split-K loop leaves the extra invocations idle), S, WINDOW,
//            FLASH_WG (as attention_flash.wgsl's, _flash.wgsl)
// dispatch: (ceil(M / 2), 1, 1)
//!include _step.wgsl
//!include _prec.wgsl
//!include _quant.wgsl
//!include _flash.wgsl
//!include _reduce.wgsl
//!include _matvec.wgsl

override WG: u32 = 64u;
override NH: u32;
override HD: u32;

@group(0) @binding(0) var<uniform> step: Step;
@group(0) @binding(1) var<storage, read> wq: array<vec4<u32>>;
@group(0) @binding(2) var<storage, read> part: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read_write> y: array<f32>;

var<workgroup> x: array<vec4<f32>, 256>;  // (K / 4,) the merged attention output: _matvec's input
var<workgroup> wts: array<f32, 512>;      // (NH, S) merge weights of the partials (NH * S <= 512)
var<workgroup> mls: array<vec2<f32>, 512>; // (NH, S) the partials' (m, l)

fn in_scale(j: u32) -> vec4<f32> {
    return vec4<f32>(1.0);
}

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let half = (M + 1u) / 2u;
    let r = wid.x;
    if (r >= half) {
        return;
    }
    let r1 = min(r + half, M - 1u);
    // this invocation's unit of the two weight rows (one each: K / 32 * G <= WG), and the
    // residual, loaded now so that their round trips overlap the merge's instead of following it
    let nu = (K / 32u) * qgroups();
    let early = nu <= WG;
    var wu: Unit;
    if (early) {
        wu = unit_load(r, r1, min(lid, nu - 1u));
    }
    var y0 = 0.0;
    var y1 = 0.0;
    if (lid == 0u) {
        y0 = y[r];
        y1 = y[r1];
    }
    let d4 = HD / 4u;
    let sp = flash_span(step.n_past + 1u);
    let u = sp.used;
    // every (m, l) pair into workgroup memory at once (independent loads), then the per-head
    // max and denominator from there, then the weighted sums with four loads in flight
    for (var i = lid; i < NH * u; i += WG) {
        let h = i / u;
        let s = i % u;
        mls[h * S + s] = part[(h * S + s) * (d4 + 1u) + d4].xy;
    }
    workgroupBarrier();
    for (var h = lid; h < NH; h += WG) {
        var mx = -3.0e38;
        for (var s = 0u; s < u; s++) {
            mx = max(mx, mls[h * S + s].x);
        }
        var l = 0.0;
        for (var s = 0u; s < u; s++) {
            let ml = mls[h * S + s];
            let e = exp(ml.x - mx);
            wts[h * S + s] = e;
            l += ml.y * e;
        }
        let inv = 1.0 / l;
        for (var s = 0u; s < u; s++) {
            wts[h * S + s] *= inv;
        }
    }
    workgroupBarrier();
    for (var i = lid; i < K / 4u; i += WG) {
        let h = i / d4;
        let lane = i % d4;
        let pb = h * S * (d4 + 1u) + lane;
        let wb = h * S;
        var a0 = vec4<f32>(0.0);
        var a1 = vec4<f32>(0.0);
        var a2 = vec4<f32>(0.0);
        var a3 = vec4<f32>(0.0);
        var s = 0u;
        for (; s + 8u <= u; s += 8u) {  // eight loads in flight, summed in the 4-wide loop's order
            let p0 = part[pb + s * (d4 + 1u)];
            let p1 = part[pb + (s + 1u) * (d4 + 1u)];
            let p2 = part[pb + (s + 2u) * (d4 + 1u)];
            let p3 = part[pb + (s + 3u) * (d4 + 1u)];
            let p4 = part[pb + (s + 4u) * (d4 + 1u)];
            let p5 = part[pb + (s + 5u) * (d4 + 1u)];
            let p6 = part[pb + (s + 6u) * (d4 + 1u)];
            let p7 = part[pb + (s + 7u) * (d4 + 1u)];
            a0 += wts[wb + s] * p0;
            a1 += wts[wb + s + 1u] * p1;
            a2 += wts[wb + s + 2u] * p2;
            a3 += wts[wb + s + 3u] * p3;
            a0 += wts[wb + s + 4u] * p4;
            a1 += wts[wb + s + 5u] * p5;
            a2 += wts[wb + s + 6u] * p6;
            a3 += wts[wb + s + 7u] * p7;
        }
        for (; s + 4u <= u; s += 4u) {
            let p0 = part[pb + s * (d4 + 1u)];
            let p1 = part[pb + (s + 1u) * (d4 + 1u)];
            let p2 = part[pb + (s + 2u) * (d4 + 1u)];
            let p3 = part[pb + (s + 3u) * (d4 + 1u)];
            a0 += wts[wb + s] * p0;
            a1 += wts[wb + s + 1u] * p1;
            a2 += wts[wb + s + 2u] * p2;
            a3 += wts[wb + s + 3u] * p3;
        }
        for (; s < u; s++) {
            a0 += wts[wb + s] * part[pb + s * (d4 + 1u)];
        }
        x[i] = (a0 + a1) + (a2 + a3);
    }
    workgroupBarrier();
    var v: vec2<f32>;
    if (early) {
        var a = vec3<f32>(0.0);
        if (lid < nu) {
            a = unit_acc(a, wu, lid, 0u, 1.0);
        }
        v = wg_sum2(a.xy, lid);
    } else {
        v = matvec_pair(r, r1, 0u, 1.0, lid);
    }
    if (lid == 0u) {
        y[r] = y0 + v.x;
        if (r + half < M) {
            y[r + half] = y1 + v.y;
        }
    }
}
