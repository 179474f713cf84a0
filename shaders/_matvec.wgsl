// Shared helper (included with `//!include _matvec.wgsl`, after _prec.wgsl, _quant.wgsl and
// _reduce.wgsl or its subgroup variant): the split-K inner loop for GPUs. One workgroup computes
// two weight rows for one token row: its WG invocations stride over the row's quant vec4s
// ("units": nb * G per row) and the partial sums meet in wg_sum2. Needs the ROWMAJOR blob
// (_quant.wgsl) so that neighbouring invocations read neighbouring 16-byte vectors of a row.
// The including file declares `x: array<vec4<f32>>` (rows of K floats), WG (a power of two
// <= 256) and `fn in_scale(j: u32) -> vec4<f32>` as for _matmul.wgsl; `inv` is the token's
// RMSNorm scale (or 1), applied before the inputs are rounded to hf. Each unit's dot products
// are taken in hf and summed in f32, scaled by its block's (d, m): sum(w x) = d sum(q x) + m sum(x)
// (Q6_K: d and m scale the two 16-element halves, _quant.wgsl qsplit).
// Call from uniform control flow (barriers); the result is valid in invocation 0. The kernels
// with a fused RMSNorm take the token's scale from _rmsnorm.wgsl's inv_rms_sk, or (f32 kernels,
// FUSED_NORM) from matvec_pair_ss, which sums x^2 in the same loop (one reduction, not two).

// This invocation's share: (row r0, row r1, sum of x^2 over the elements it read).
fn matvec_part(r0: u32, r1: u32, t: u32, inv: f32, lid: u32) -> vec3<f32> {
    return matvec_lanes(r0, r1, t, inv, lid, WG);
}

// The share of lane `lane` of `lanes` invocations that split the row pair's units between them
// (matvec_part: the whole workgroup; matvec_group: WG / PAIRS lanes).
fn matvec_lanes(r0: u32, r1: u32, t: u32, inv: f32, lane: u32, lanes: u32) -> vec3<f32> {
    let nu = (K / 32u) * qgroups();  // units per row
    var acc = vec3<f32>(0.0);  // rows r0, r1, sum of x^2
    for (var u = lane; u < nu; u += lanes) {
        acc = unit_acc(acc, unit_load(r0, r1, u), u, t, inv);
    }
    return acc;
}

// The weights of unit u of rows r0 and r1 (quant groups, high bits, block scales), loaded apart
// from the inner products so that a kernel can issue the loads before its input is ready
// (matmul_attn.wgsl: during the flash merge).
struct Unit {
    u0: vec4<u32>,
    u1: vec4<u32>,
    h0: vec2<u32>,
    h1: vec2<u32>,
    s0: vec2<f32>,
    s1: vec2<f32>,
}

fn unit_load(r0: u32, r1: u32, u: u32) -> Unit {
    let ng = qgroups();
    let b = u / ng;
    let gi = u % ng;
    return Unit(qload(r0, b, gi), qload(r1, b, gi), qhigh(r0, b), qhigh(r1, b), qscale(r0, b), qscale(r1, b));
}

// acc (rows r0, r1, sum of x^2) plus unit u's share with its loaded weights w: its dot products
// taken in hf and summed in f32, scaled by the block's (d, m).
fn unit_acc(acc_in: vec3<f32>, w: Unit, u: u32, t: u32, inv: f32) -> vec3<f32> {
    let ng = qgroups();
    let per = 8u / ng;  // element vec4s per unit
    let b = u / ng;
    let gi = u % ng;
    let xo = t * (K / 4u);
    let one = hf4(1.0);
    var acc = acc_in.xy;
    var ss = acc_in.z;
    var p = vec2<f32>(0.0);  // sum of q x, rows r0 and r1
    var lp = vec2<f32>(0.0);  // qsplit: the first half's p
    var xs = 0.0;  // sum of x (for the offset m)
    for (var e = 0u; e < per; e++) {
        if (qsplit() && e == 4u) {  // G = 1: e runs over the whole block
            lp = p;
            p = vec2<f32>(0.0);
        }
        let j = b * 8u + gi * per + e;
        let xr = x[xo + j];
        ss += dot(xr, xr);
        let xv = hf4(xr * (in_scale(j) * inv));
        p.x += f32(dot(qv(w.u0, w.h0, e), xv));
        p.y += f32(dot(qv(w.u1, w.h1, e), xv));
        if (qhas_m()) {
            xs += f32(dot(xv, one));
        }
    }
    if (qsplit()) {
        acc += vec2<f32>(w.s0.x, w.s1.x) * lp + vec2<f32>(w.s0.y, w.s1.y) * p;
    } else {
        acc += vec2<f32>(w.s0.x, w.s1.x) * p;
    }
    if (qhas_m()) {
        acc += vec2<f32>(w.s0.y, w.s1.y) * xs;
    }
    return vec3<f32>(acc, ss);
}

fn matvec_pair(r0: u32, r1: u32, t: u32, inv: f32, lid: u32) -> vec2<f32> {
    return wg_sum2(matvec_part(r0, r1, t, inv, lid).xy, lid);
}

// (row r0, row r1, sum of x[t]^2) with the input unscaled (inv 1): each row's units read every
// element of x[t] once, so the RMSNorm's sum of squares comes with the dot products (f32 only:
// the caller scales the dot products by the norm afterwards, which the f16 path rounds apart).
fn matvec_pair_ss(r0: u32, r1: u32, t: u32, lid: u32) -> vec3<f32> {
    return wg_sum4(vec4<f32>(matvec_part(r0, r1, t, 1.0, lid), 0.0), lid).xyz;
}

override PAIRS: u32 = 1u;  // row pairs per workgroup, each summed by WG / PAIRS lanes (a power of two)

// (row r0, row r1, sum of x[t]^2) summed over this invocation's group of lanes: with PAIRS > 1
// a workgroup computes PAIRS row pairs at once (fewer, fuller workgroups; builder.SPLITK_PAIRS
// has the H200 figures).
// Call from uniform control flow (barriers).
fn matvec_group(r0: u32, r1: u32, t: u32, inv: f32, lid: u32) -> vec3<f32> {
    let lanes = WG / PAIRS;
    return seg_sum4(vec4<f32>(matvec_lanes(r0, r1, t, inv, lid % lanes, lanes), 0.0), lid, lanes).xyz;
}

// The row pair's sums for the caller's lane group: matvec_group where PAIRS > 1, else the
// whole workgroup's (matvec_pair_ss with ss, the sum of x^2 in .z; matvec_pair without, .z 0).
// Call from uniform control flow (barriers); the result is valid in each group's first lane.
fn matvec_rows(r0: u32, r1: u32, t: u32, inv: f32, lid: u32, ss: bool) -> vec3<f32> {
    if (PAIRS > 1u) {
        return matvec_group(r0, r1, t, inv, lid);
    }
    if (ss) {
        return matvec_pair_ss(r0, r1, t, lid);
    }
    return vec3<f32>(matvec_pair(r0, r1, t, inv, lid), 0.0);
}
