// Shared helper, the subgroup variant of _reduce.wgsl (same functions; needs the `subgroups`
// feature, plan pipelines list it in `enable`). Each subgroup reduces in registers and leaves
// its result in the slot of its rank-0 invocation (neutral values elsewhere), so nothing
// assumes how invocations map to subgroups or the subgroup size; then every subgroup folds the
// WG slots in parallel (lane j takes slots j, j + n, j + 2n ..., n its size) and reduces across
// its lanes, and invocation 0 publishes its subgroup's result through workgroupUniformLoad
// (one value for the whole workgroup even if subgroups differ in size). Three barriers, no
// serial fold. The including file declares WG (a power of two <= 256). Call from uniform
// control flow.

var<workgroup> red_f: array<f32, 256>;
var<workgroup> red_u: array<u32, 256>;
var<workgroup> red_rf: f32;  // published result
var<workgroup> red_ru: u32;

// The slots a lane folds: i = lane + c n for c < WG / 4 (subgroups have at least 4
// invocations); a uniform trip count keeps the barriers that follow in uniform control flow
// for every compiler's analysis (Tint's included).

fn wg_sum(v: f32, lid: u32) -> f32 {
    let n = subgroupAdd(1u);
    let lane = subgroupExclusiveAdd(1u);
    red_f[lid] = select(0.0, subgroupAdd(v), lane == 0u);
    workgroupBarrier();
    var t = 0.0;
    for (var c = 0u; c < WG / 4u; c++) {
        let i = lane + c * n;
        if (i < WG) {
            t += red_f[i];
        }
    }
    let r = subgroupAdd(t);
    if (lid == 0u) {
        red_rf = r;
    }
    // the barrier inside workgroupUniformLoad also keeps the next call's writes after the fold
    return workgroupUniformLoad(&red_rf);
}

fn wg_max(v: f32, lid: u32) -> f32 {
    let n = subgroupAdd(1u);
    let lane = subgroupExclusiveAdd(1u);
    red_f[lid] = select(-3.4e38, subgroupMax(v), lane == 0u);
    workgroupBarrier();
    var t = -3.4e38;
    for (var c = 0u; c < WG / 4u; c++) {
        let i = lane + c * n;
        if (i < WG) {
            t = max(t, red_f[i]);
        }
    }
    let r = subgroupMax(t);
    if (lid == 0u) {
        red_rf = r;
    }
    return workgroupUniformLoad(&red_rf);
}

fn wg_sum_u(v: u32, lid: u32) -> u32 {
    let n = subgroupAdd(1u);
    let lane = subgroupExclusiveAdd(1u);
    red_u[lid] = select(0u, subgroupAdd(v), lane == 0u);
    workgroupBarrier();
    var t = 0u;
    for (var c = 0u; c < WG / 4u; c++) {
        let i = lane + c * n;
        if (i < WG) {
            t += red_u[i];
        }
    }
    let r = subgroupAdd(t);
    if (lid == 0u) {
        red_ru = r;
    }
    return workgroupUniformLoad(&red_ru);
}

struct ArgMax {
    v: f32,
    i: u32,
}

// (largest v, its index i); ties go to the lowest index (as numpy.argmax).
fn wg_argmax(v: f32, i: u32, lid: u32) -> ArgMax {
    let n = subgroupAdd(1u);
    let lane = subgroupExclusiveAdd(1u);
    let m = subgroupMax(v);
    let mi = subgroupMin(select(0xffffffffu, i, v == m));
    red_f[lid] = select(-3.4e38, m, lane == 0u);
    red_u[lid] = select(0xffffffffu, mi, lane == 0u);
    workgroupBarrier();
    var bv = -3.4e38;
    var bi = 0xffffffffu;
    for (var c = 0u; c < WG / 4u; c++) {
        let k = lane + c * n;
        if (k < WG) {
            let ov = red_f[k];
            let oi = red_u[k];
            if (ov > bv || (ov == bv && oi < bi)) {
                bv = ov;
                bi = oi;
            }
        }
    }
    let rm = subgroupMax(bv);
    let ri = subgroupMin(select(0xffffffffu, bi, bv == rm));
    if (lid == 0u) {
        red_rf = rm;
        red_ru = ri;
    }
    let r = ArgMax(workgroupUniformLoad(&red_rf), workgroupUniformLoad(&red_ru));
    workgroupBarrier();  // the published values are read by everyone before the next call
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
