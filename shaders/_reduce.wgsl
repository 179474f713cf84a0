// Shared helper (included with `//!include _reduce.wgsl`): workgroup-wide reductions through
// workgroup memory (a tree of barriers), the path that needs no optional feature. The plan
// swaps in _reduce_sg.wgsl (same functions, subgroup operations) where the adapter offers
// subgroups. The including file declares WG (a power of two <= 256) as override or const.
// Call from uniform control flow (barriers); every result is workgroup-uniform.

var<workgroup> red_f: array<f32, 256>;
var<workgroup> red_u: array<u32, 256>;

// Sum of v over the workgroup.
fn wg_sum(v: f32, lid: u32) -> f32 {
    red_f[lid] = v;
    workgroupBarrier();
    for (var s = WG / 2u; s > 0u; s >>= 1u) {
        if (lid < s) {
            red_f[lid] += red_f[lid + s];
        }
        workgroupBarrier();
    }
    let r = workgroupUniformLoad(&red_f[0]);
    workgroupBarrier();
    return r;
}

// Maximum of v over the workgroup.
fn wg_max(v: f32, lid: u32) -> f32 {
    red_f[lid] = v;
    workgroupBarrier();
    for (var s = WG / 2u; s > 0u; s >>= 1u) {
        if (lid < s) {
            red_f[lid] = max(red_f[lid], red_f[lid + s]);
        }
        workgroupBarrier();
    }
    let r = workgroupUniformLoad(&red_f[0]);
    workgroupBarrier();
    return r;
}

// Sum of v over the workgroup (u32).
fn wg_sum_u(v: u32, lid: u32) -> u32 {
    red_u[lid] = v;
    workgroupBarrier();
    for (var s = WG / 2u; s > 0u; s >>= 1u) {
        if (lid < s) {
            red_u[lid] += red_u[lid + s];
        }
        workgroupBarrier();
    }
    let r = workgroupUniformLoad(&red_u[0]);
    workgroupBarrier();
    return r;
}

// (largest v, its index i) over the workgroup; ties go to the lowest index (as numpy.argmax).
struct ArgMax {
    v: f32,
    i: u32,
}

fn wg_argmax(v: f32, i: u32, lid: u32) -> ArgMax {
    red_f[lid] = v;
    red_u[lid] = i;
    workgroupBarrier();
    for (var s = WG / 2u; s > 0u; s >>= 1u) {
        if (lid < s) {
            let ov = red_f[lid + s];
            let oi = red_u[lid + s];
            if (ov > red_f[lid] || (ov == red_f[lid] && oi < red_u[lid])) {
                red_f[lid] = ov;
                red_u[lid] = oi;
            }
        }
        workgroupBarrier();
    }
    let r = ArgMax(workgroupUniformLoad(&red_f[0]), workgroupUniformLoad(&red_u[0]));
    workgroupBarrier();
    return r;
}

var<workgroup> red_v2: array<vec2<f32>, 256>;

// Sum of a pair of values over the workgroup (the split-K matvec's two rows, _matvec.wgsl).
fn wg_sum2(v: vec2<f32>, lid: u32) -> vec2<f32> {
    red_v2[lid] = v;
    workgroupBarrier();
    for (var s = WG / 2u; s > 0u; s >>= 1u) {
        if (lid < s) {
            red_v2[lid] += red_v2[lid + s];
        }
        workgroupBarrier();
    }
    let r = workgroupUniformLoad(&red_v2[0]);
    workgroupBarrier();
    return r;
}

var<workgroup> red_v4: array<vec4<f32>, 256>;

// Sum of four values over the workgroup (the split-K matvec's two rows and the sum of squares).
fn wg_sum4(v: vec4<f32>, lid: u32) -> vec4<f32> {
    red_v4[lid] = v;
    workgroupBarrier();
    for (var s = WG / 2u; s > 0u; s >>= 1u) {
        if (lid < s) {
            red_v4[lid] += red_v4[lid + s];
        }
        workgroupBarrier();
    }
    let r = workgroupUniformLoad(&red_v4[0]);
    workgroupBarrier();
    return r;
}

// Maximum of four values over the workgroup, lane by lane (grouped attention's running maxima).
fn wg_max4(v: vec4<f32>, lid: u32) -> vec4<f32> {
    red_v4[lid] = v;
    workgroupBarrier();
    for (var s = WG / 2u; s > 0u; s >>= 1u) {
        if (lid < s) {
            red_v4[lid] = max(red_v4[lid], red_v4[lid + s]);
        }
        workgroupBarrier();
    }
    let r = workgroupUniformLoad(&red_v4[0]);
    workgroupBarrier();
    return r;
}

// The sum of v over this invocation's segment of `lanes` invocations (a power of two dividing
// WG; segment lid / lanes), held by every invocation of the segment.
fn seg_sum4(v: vec4<f32>, lid: u32, lanes: u32) -> vec4<f32> {
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
