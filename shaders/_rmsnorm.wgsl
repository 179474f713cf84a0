// Shared helper (included with `//!include _rmsnorm.wgsl`): the RMSNorm scale of one input row,
// computed cooperatively by the workgroup. The including file declares `x: array<vec4<f32>>`
// (rows of K floats) and the overrides WG (a power of two <= 256) and TT (1..4), and includes
// _reduce.wgsl (or its subgroup variant) before this file.

override EPS: f32 = 1e-5;  // {arch}.attention.layer_norm_rms_epsilon

// This invocation's share of sum(x[t]^2).
fn sumsq_part(t: u32, lid: u32) -> f32 {
    let k4 = K / 4u;
    var s = 0.0;
    for (var i = lid; i < k4; i += WG) {
        let v = x[t * k4 + i];
        s += dot(v, v);
    }
    return s;
}

// 1 / sqrt(mean(x[t]^2) + EPS). Call from uniform control flow (it has barriers).
fn inv_rms(t: u32, lid: u32) -> f32 {
    return inverseSqrt(wg_sum(sumsq_part(t, lid), lid) / f32(K) + EPS);
}

// RMSNorm scales of the (up to four) token rows t0.. (uniform control flow: barriers).
fn inv_rms4(t0: u32, n_tok: u32, lid: u32) -> vec4<f32> {
    let last = n_tok - 1u;
    var r = vec4<f32>(inv_rms(min(t0, last), lid), 1.0, 1.0, 1.0);
    if (TT > 1u) {
        r.y = inv_rms(min(t0 + 1u, last), lid);
    }
    if (TT > 2u) {
        r.z = inv_rms(min(t0 + 2u, last), lid);
    }
    if (TT > 3u) {
        r.w = inv_rms(min(t0 + 3u, last), lid);
    }
    return r;
}

// 1 / sqrt(mean(x[t]^2) + EPS) (inv_rms through wg_sum2's short fold: the
// split-K kernels).
// Call from uniform control flow (barriers).
fn inv_rms_sk(t: u32, lid: u32) -> f32 {
    return inverseSqrt(wg_sum2(vec2<f32>(sumsq_part(t, lid), 0.0), lid).x / f32(K) + EPS);
}
