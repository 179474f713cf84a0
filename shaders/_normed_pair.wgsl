// Shared helper (included with `//!include _normed_pair.wgsl`, after _matmul.wgsl, _rmsnorm.wgsl
// and _matvec.wgsl): the front half of the fused "RMSNorm then two weight rows" kernels
// (matmul_qkv, matmul_swiglu). It picks the row pair (p, p + M/2) and the token rows of this
// invocation and returns their dot products with rmsnorm(x) * g, in either layout:
//   rows    invocation gid.x owns pair p = gid.x for TT tokens from wid.y * TT (CPU rasterizers)
//   SPLITK  workgroup (p, t) owns pair p of token t; its threads split K (GPUs, _matvec.wgsl)
// With PAIRS (_matvec.wgsl) a split-K workgroup computes several row pairs at once.
// With FUSED_NORM (split-K f32 kernels) the RMSNorm's sum of squares comes from the matvec's
// own loop (_matvec.wgsl matvec_pair_ss: one pass over x and one reduction, not two) and the
// scale is applied to the two dot products. The f16 kernels round the scaled inputs, so they
// take the scale first (inv_rms_sk).
// Every invocation must call it (it holds workgroup barriers); only those with ok == true
// write results. The including file declares the overrides WG, TT, SPLITK and `step`.

override FUSED_NORM: bool = false;  // SPLITK: the norm's sum of squares from the matvec loop

struct NormedPair {
    ok: bool,  // this invocation writes the results
    p: u32,  // the row pair: blob rows p and p + M/2
    t0: u32,  // first token row
    nt: u32,  // token rows held in acc (1..TT)
    acc: Acc,  // acc.a: row p, acc.b: row p + M/2, one lane per token
}

fn normed_pair(gid: vec3<u32>, wid: vec3<u32>, lid: u32) -> NormedPair {
    let n_pair = M / 2u;
    var out: NormedPair;
    out.ok = false;
    out.t0 = wid.y * TT;
    if (SPLITK) {
        out.t0 = wid.y;
    }
    if (out.t0 >= step.n_tokens) {
        return out;
    }
    if (SPLITK) {
        // PAIRS row pairs per workgroup, each summed by its own WG / PAIRS lanes (1: all of them)
        let lanes = WG / PAIRS;
        let p = wid.x * PAIRS + lid / lanes;
        if (wid.x * PAIRS >= n_pair) {
            return out;
        }
        let pc = min(p, n_pair - 1u);  // lanes past the last pair repeat it and write nothing
        var v: vec2<f32>;
        if (FUSED_NORM) {
            let s = matvec_rows(pc, pc + n_pair, out.t0, 1.0, lid, true);
            v = s.xy * inverseSqrt(s.z / f32(K) + EPS);
        } else {
            v = matvec_rows(pc, pc + n_pair, out.t0, inv_rms_sk(out.t0, lid), lid, false).xy;
        }
        out.ok = lid % lanes == 0u && p < n_pair;
        out.p = p;
        out.nt = 1u;
        out.acc = Acc(vec4<f32>(v.x), vec4<f32>(v.y));
        return out;
    }
    let inv = inv_rms4(out.t0, step.n_tokens, lid);
    out.p = gid.x;
    if (out.p >= n_pair) {
        return out;
    }
    out.acc = matmul_rows(out.p, out.p + n_pair, out.t0, step.n_tokens, inv);
    out.nt = min(TT, step.n_tokens - out.t0);
    out.ok = true;
    return out;
}
