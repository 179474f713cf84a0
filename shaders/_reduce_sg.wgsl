// Shared helper, the subgroup variant of _reduce.wgsl (same functions; needs the `subgroups`
// feature, plan pipelines list it in `enable`). Each subgroup reduces in registers, its lowest
// invocation (subgroupMin of local_invocation_index, so no assumption on how invocations map to
// subgroups or on the subgroup size) leaves the partial result in its own slot, and invocation
// 0 folds the slots in index order (deterministic). Two barriers instead of log2(WG) + 2.
// The including file declares WG (a power of two <= 256). Call from uniform control flow.

var<workgroup> red_f: array<f32, 256>;
var<workgroup> red_u: array<u32, 256>;
var<workgroup> red_rf: f32;  // folded result
var<workgroup> red_ru: u32;

fn wg_sum(v: f32, lid: u32) -> f32 {
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

fn wg_max(v: f32, lid: u32) -> f32 {
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

fn wg_sum_u(v: u32, lid: u32) -> u32 {
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

struct ArgMax {
    v: f32,
    i: u32,
}

fn wg_argmax(v: f32, i: u32, lid: u32) -> ArgMax {
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

var<workgroup> red_v2: array<vec2<f32>, 256>;

// Sum of a pair of values over the workgroup (the split-K matvec's two rows, _matvec.wgsl),
// for any subgroup size and any mapping of invocations to subgroups: each subgroup's sum
// lands in the slot of its rank-0 invocation (zeros elsewhere); then every subgroup folds all
// WG slots, its lane j taking slots j, j + n, j + 2n ... (n its size), and sums across lanes.
// Two barriers and WG / n loads per invocation, no serial fold. (The result is exact in every
// subgroup; callers use it from one invocation.)
fn wg_sum2(v: vec2<f32>, lid: u32) -> vec2<f32> {
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

var<workgroup> red_v4: array<vec4<f32>, 256>;

// Sum of four values over the workgroup (the split-K matvec's two rows and the sum of squares),
// as wg_sum2.
fn wg_sum4(v: vec4<f32>, lid: u32) -> vec4<f32> {
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
fn wg_max4(v: vec4<f32>, lid: u32) -> vec4<f32> {
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
