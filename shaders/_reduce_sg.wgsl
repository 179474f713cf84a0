// Shared helper, the subgroup variant of _reduce.wgsl (same functions; needs the `subgroups`
// feature, plan pipelines list it in `enable`). Two paths, picked by the override SG:
// - SG > 0, linear subgroups: the executor probed on the device that every subgroup is SG
//   invocations wide and laid out in order of local_invocation_index (invocation i is lane
//   i % SG of subgroup i / SG; companion.gpu.adapters.probe_subgroups) and the plan passes SG.
//   Each subgroup reduces in registers, its lane 0 leaves the partial in slot i / SG, and after
//   one barrier every subgroup folds the WG / SG slots itself (lane k reading slot k), so every
//   invocation holds the result with no serial fold: two barriers a call instead of a tree's
//   log2(WG) + 2. Segmented sums narrower than a subgroup take butterfly shuffles, no barrier.
// - SG = 0 (not probed, or the probe failed): no assumption on the subgroup size or on how
//   invocations map to subgroups (the *_any functions below): each subgroup's lowest
//   invocation leaves its partial in its own slot and the slots are folded in index order.
// The including file declares WG (a power of two <= 256). Call from uniform control flow.

override SG: u32 = 0u;  // probed subgroup size (a power of two, 4..128); 0 = not probed
override SGN: u32 = max(SG, 1u);  // what the SG > 0 path divides by

var<workgroup> red_f: array<f32, 256>;
var<workgroup> red_u: array<u32, 256>;

// Subgroups in the workgroup (slots to fold).
fn sg_slots() -> u32 {
    return max(WG / SGN, 1u);
}

var<workgroup> red_v2: array<vec2<f32>, 256>;
var<workgroup> red_v4: array<vec4<f32>, 256>;
var<workgroup> red_rf: f32;  // a scalar result, published workgroup-uniform
var<workgroup> red_ru: u32;

// (largest v, its index i) over the workgroup; ties go to the lowest index (as numpy.argmax).
struct ArgMax {
    v: f32,
    i: u32,
}


// ---- the functions kernels call: the linear path where SG is known

fn wg_sum(v: f32, lid: u32) -> f32 {
    if (SG > 0u) {
        return wg_sum_lin(v, lid);
    }
    return wg_sum_any(v, lid);
}

fn wg_max(v: f32, lid: u32) -> f32 {
    if (SG > 0u) {
        return wg_max_lin(v, lid);
    }
    return wg_max_any(v, lid);
}

fn wg_sum_u(v: u32, lid: u32) -> u32 {
    if (SG > 0u) {
        return wg_sum_u_lin(v, lid);
    }
    return wg_sum_u_any(v, lid);
}

fn wg_argmax(v: f32, i: u32, lid: u32) -> ArgMax {
    if (SG > 0u) {
        return wg_argmax_lin(v, i, lid);
    }
    return wg_argmax_any(v, i, lid);
}

fn wg_sum2(v: vec2<f32>, lid: u32) -> vec2<f32> {
    if (SG > 0u) {
        return wg_sum2_lin(v, lid);
    }
    return wg_sum2_any(v, lid);
}

fn wg_sum4(v: vec4<f32>, lid: u32) -> vec4<f32> {
    if (SG > 0u) {
        return seg_sum4(v, lid, WG);
    }
    return wg_sum4_any(v, lid);
}

fn wg_max4(v: vec4<f32>, lid: u32) -> vec4<f32> {
    if (SG > 0u) {
        return wg_max4_lin(v, lid);
    }
    return wg_max4_any(v, lid);
}

// The sum of v over this invocation's segment of `lanes` invocations (a power of two dividing
// WG; segment lid / lanes), held by every invocation of the segment: subgroup operations where
// SG is known, else the workgroup-memory tree (a subgroup may straddle segments).
fn seg_sum4(v: vec4<f32>, lid: u32, lanes: u32) -> vec4<f32> {
    if (SG > 0u) {
        return seg_sum4_lin(v, lid, lanes);
    }
    red_v4[lid] = v;
    workgroupBarrier();
    for (var s = lanes / 2u; s > 0u; s >>= 1u) {
        if (lid % lanes < s) {
            red_v4[lid] += red_v4[lid + s];
        }
        workgroupBarrier();
    }
    let r = red_v4[lid - lid % lanes];
    workgroupBarrier();
    return r;
}

// ---- SG > 0: linear subgroups of SG invocations (SGN: SG, and 1 where the path is unused)

// Every subgroup holds the same v: returned as a workgroup-uniform value (what Tint's
// uniformity analysis needs where the caller branches on a reduction), through one barrier that
// also keeps the slots from being rewritten before every invocation has read them.
fn uniform_f(v: f32, lid: u32) -> f32 {
    if (lid == 0u) {
        red_rf = v;
    }
    return workgroupUniformLoad(&red_rf);
}

// Sum of v over the workgroup.
fn wg_sum_lin(v: f32, lid: u32) -> f32 {
    let s = subgroupAdd(v);
    if (lid % SGN == 0u) {
        red_f[lid / SGN] = s;
    }
    workgroupBarrier();
    var t = 0.0;
    for (var rd = 0u; rd < (sg_slots() + SGN - 1u) / SGN; rd++) {  // a uniform trip count (Tint)
        let i = lid % SGN + rd * SGN;
        if (i < sg_slots()) {
            t += red_f[i];
        }
    }
    return uniform_f(subgroupAdd(t), lid);
}

// Maximum of v over the workgroup.
fn wg_max_lin(v: f32, lid: u32) -> f32 {
    let s = subgroupMax(v);
    if (lid % SGN == 0u) {
        red_f[lid / SGN] = s;
    }
    workgroupBarrier();
    var t = -3.4e38;
    for (var rd = 0u; rd < (sg_slots() + SGN - 1u) / SGN; rd++) {  // a uniform trip count (Tint)
        let i = lid % SGN + rd * SGN;
        if (i < sg_slots()) {
            t = max(t, red_f[i]);
        }
    }
    return uniform_f(subgroupMax(t), lid);
}

// Sum of v over the workgroup (u32).
fn wg_sum_u_lin(v: u32, lid: u32) -> u32 {
    let s = subgroupAdd(v);
    if (lid % SGN == 0u) {
        red_u[lid / SGN] = s;
    }
    workgroupBarrier();
    var t = 0u;
    for (var rd = 0u; rd < (sg_slots() + SGN - 1u) / SGN; rd++) {  // a uniform trip count (Tint)
        let i = lid % SGN + rd * SGN;
        if (i < sg_slots()) {
            t += red_u[i];
        }
    }
    let r = subgroupAdd(t);
    if (lid == 0u) {
        red_ru = r;
    }
    return workgroupUniformLoad(&red_ru);
}

// (largest v, its index i) over the workgroup; ties go to the lowest index (as numpy.argmax).
fn sg_argmax(v: f32, i: u32) -> ArgMax {
    let m = subgroupMax(v);
    return ArgMax(m, subgroupMin(select(0xffffffffu, i, v == m)));
}

fn wg_argmax_lin(v: f32, i: u32, lid: u32) -> ArgMax {
    let s = sg_argmax(v, i);
    if (lid % SGN == 0u) {
        red_f[lid / SGN] = s.v;
        red_u[lid / SGN] = s.i;
    }
    workgroupBarrier();
    var b = ArgMax(-3.4e38, 0xffffffffu);
    for (var rd = 0u; rd < (sg_slots() + SGN - 1u) / SGN; rd++) {  // a uniform trip count (Tint)
        let k = lid % SGN + rd * SGN;
        if (k < sg_slots()) {
            let ov = red_f[k];
            let oi = red_u[k];
            if (ov > b.v || (ov == b.v && oi < b.i)) {
                b = ArgMax(ov, oi);
            }
        }
    }
    let r = sg_argmax(b.v, b.i);
    if (lid == 0u) {
        red_rf = r.v;
        red_ru = r.i;
    }
    let out = ArgMax(workgroupUniformLoad(&red_rf), workgroupUniformLoad(&red_ru));
    workgroupBarrier();  // both read before the next call writes them
    return out;
}

// Sum of a pair of values over the workgroup (the split-K matvec's two rows, _matvec.wgsl).
fn wg_sum2_lin(v: vec2<f32>, lid: u32) -> vec2<f32> {
    let s = subgroupAdd(v);
    if (lid % SGN == 0u) {
        red_v2[lid / SGN] = s;
    }
    workgroupBarrier();
    var t = vec2<f32>(0.0);
    for (var rd = 0u; rd < (sg_slots() + SGN - 1u) / SGN; rd++) {  // a uniform trip count (Tint)
        let i = lid % SGN + rd * SGN;
        if (i < sg_slots()) {
            t += red_v2[i];
        }
    }
    let r = subgroupAdd(t);
    workgroupBarrier();
    return r;
}

// Maximum of four values over the workgroup, lane by lane (grouped attention's running maxima).
fn wg_max4_lin(v: vec4<f32>, lid: u32) -> vec4<f32> {
    let s = subgroupMax(v);
    if (lid % SGN == 0u) {
        red_v4[lid / SGN] = s;
    }
    workgroupBarrier();
    var t = vec4<f32>(-3.4e38);
    for (var rd = 0u; rd < (sg_slots() + SGN - 1u) / SGN; rd++) {  // a uniform trip count (Tint)
        let i = lid % SGN + rd * SGN;
        if (i < sg_slots()) {
            t = max(t, red_v4[i]);
        }
    }
    let r = subgroupMax(t);
    workgroupBarrier();
    return r;
}

// The sum of v over this invocation's segment of `lanes` invocations (a power of two dividing
// WG; segment lid / lanes). Segments narrower than a subgroup sum by butterfly shuffles, with no
// barrier; wider ones through one slot per subgroup. Every invocation holds its segment's sum.
fn seg_sum4_lin(v: vec4<f32>, lid: u32, lanes: u32) -> vec4<f32> {
    if (lanes <= SGN) {
        var s = v;
        for (var o = lanes / 2u; o > 0u; o >>= 1u) {
            s += subgroupShuffleXor(s, o);
        }
        return s;
    }
    let s = subgroupAdd(v);
    if (lid % SGN == 0u) {
        red_v4[lid / SGN] = s;
    }
    workgroupBarrier();
    let per = lanes / SGN;  // subgroups in a segment
    var t = vec4<f32>(0.0);
    for (var rd = 0u; rd < (per + SGN - 1u) / SGN; rd++) {  // a uniform trip count (Tint)
        let i = lid % SGN + rd * SGN;
        if (i < per) {
            t += red_v4[(lid / lanes) * per + i];
        }
    }
    let r = subgroupAdd(t);
    workgroupBarrier();
    return r;
}

// ---- SG = 0: any subgroup size and layout

fn wg_sum_any(v: f32, lid: u32) -> f32 {
    let s = subgroupAdd(v);
    red_f[lid] = select(0.0, s, subgroupMin(lid) == lid);
    workgroupBarrier();
    if (lid == 0u) {
        var t = 0.0;
        for (var i = 0u; i < WG; i++) {
            t += red_f[i];
        }
        red_rf = t;
    }
    // the barrier inside workgroupUniformLoad also keeps the next call's writes after the fold
    return workgroupUniformLoad(&red_rf);
}

fn wg_max_any(v: f32, lid: u32) -> f32 {
    let s = subgroupMax(v);
    red_f[lid] = select(-3.4e38, s, subgroupMin(lid) == lid);
    workgroupBarrier();
    if (lid == 0u) {
        var t = -3.4e38;
        for (var i = 0u; i < WG; i++) {
            t = max(t, red_f[i]);
        }
        red_rf = t;
    }
    return workgroupUniformLoad(&red_rf);
}

fn wg_sum_u_any(v: u32, lid: u32) -> u32 {
    let s = subgroupAdd(v);
    red_u[lid] = select(0u, s, subgroupMin(lid) == lid);
    workgroupBarrier();
    if (lid == 0u) {
        var t = 0u;
        for (var i = 0u; i < WG; i++) {
            t += red_u[i];
        }
        red_ru = t;
    }
    return workgroupUniformLoad(&red_ru);
}

fn wg_argmax_any(v: f32, i: u32, lid: u32) -> ArgMax {
    let m = subgroupMax(v);
    let mi = subgroupMin(select(0xffffffffu, i, v == m));
    let lead = subgroupMin(lid) == lid;
    red_f[lid] = select(-3.4e38, m, lead);
    red_u[lid] = select(0xffffffffu, mi, lead);
    workgroupBarrier();
    if (lid == 0u) {
        var bv = -3.4e38;
        var bi = 0xffffffffu;
        for (var k = 0u; k < WG; k++) {
            let ov = red_f[k];
            let oi = red_u[k];
            if (ov > bv || (ov == bv && oi < bi)) {
                bv = ov;
                bi = oi;
            }
        }
        red_rf = bv;
        red_ru = bi;
    }
    let r = ArgMax(workgroupUniformLoad(&red_rf), workgroupUniformLoad(&red_ru));
    workgroupBarrier();  // the fold's values are read by everyone before the next call
    return r;
}


// Sum of a pair of values over the workgroup (the split-K matvec's two rows, _matvec.wgsl),
// for any subgroup size and any mapping of invocations to subgroups: each subgroup's sum
// lands in the slot of its rank-0 invocation (zeros elsewhere); then every subgroup folds all
// WG slots, its lane j taking slots j, j + n, j + 2n ... (n its size), and sums across lanes.
// Two barriers and WG / n loads per invocation, no serial fold. (The result is exact in every
// subgroup; callers use it from one invocation.)
fn wg_sum2_any(v: vec2<f32>, lid: u32) -> vec2<f32> {
    let s = subgroupAdd(v);
    let n = subgroupAdd(1u);  // invocations in this subgroup (all active: uniform control flow)
    let lane = subgroupExclusiveAdd(1u);  // rank of this invocation in its subgroup
    red_v2[lid] = select(vec2<f32>(0.0), s, lane == 0u);
    workgroupBarrier();
    var t = vec2<f32>(0.0);
    // a uniform trip count (subgroups have at least 4 invocations) keeps the barrier below in
    // uniform control flow for every compiler's analysis (Tint's included)
    for (var c = 0u; c < WG / 4u; c++) {
        let i = lane + c * n;
        if (i < WG) {
            t += red_v2[i];
        }
    }
    let r = subgroupAdd(t);
    workgroupBarrier();  // the slots are read before the next call writes them
    return r;
}


// Sum of four values over the workgroup (the split-K matvec's two rows and the sum of squares),
// as wg_sum2.
fn wg_sum4_any(v: vec4<f32>, lid: u32) -> vec4<f32> {
    let s = subgroupAdd(v);
    let n = subgroupAdd(1u);
    let lane = subgroupExclusiveAdd(1u);
    red_v4[lid] = select(vec4<f32>(0.0), s, lane == 0u);
    workgroupBarrier();
    var t = vec4<f32>(0.0);
    for (var c = 0u; c < WG / 4u; c++) {
        let i = lane + c * n;
        if (i < WG) {
            t += red_v4[i];
        }
    }
    let r = subgroupAdd(t);
    workgroupBarrier();
    return r;
}

// Maximum of four values over the workgroup, lane by lane, as wg_sum4.
fn wg_max4_any(v: vec4<f32>, lid: u32) -> vec4<f32> {
    let s = subgroupMax(v);
    let n = subgroupAdd(1u);
    let lane = subgroupExclusiveAdd(1u);
    red_v4[lid] = select(vec4<f32>(-3.4e38), s, lane == 0u);
    workgroupBarrier();
    var t = vec4<f32>(-3.4e38);
    for (var c = 0u; c < WG / 4u; c++) {
        let i = lane + c * n;
        if (i < WG) {
            t = max(t, red_v4[i]);
        }
    }
    let r = subgroupMax(t);
    workgroupBarrier();
    return r;
}
