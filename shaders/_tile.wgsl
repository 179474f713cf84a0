// Shared helper (included with `//!include _tile.wgsl`, after _prec.wgsl and _quant.wgsl): the
// core of the tiled prefill matmuls (matmul_tiled, matmul_swiglu_tiled, matmul_qkv_tiled; GPUs,
// ROWMAJOR blob). A workgroup of 64 invocations computes TILE_PAIRS row pairs for TILE_TOKENS
// token rows: invocation (tr, tc) = (lid % 16, lid / 16) owns pairs p0 = P0 + tr and
// p1 = p0 + 16 (rows p, p + half) for tokens t0 = T0 + 4 tc .. t0 + 3 (vec4 lanes). The inputs
// of all 16 tokens are staged in workgroup memory KB blocks (32 elements each) at a time, scaled
// by in_scale and, with NORM, by each token's RMSNorm; each weight vec4 is dequantized once per
// invocation and used for its 4 tokens, each staged input for 4 rows. Weights then leave L2
// once per 16 tokens instead of once per token (the split-K matvec), and the work is plain FMAs.
// With KS > 1 the workgroup is KS such groups of 64 (64 KS invocations), group g taking the
// g-th of KS equal runs of blocks, and the groups' sums meet in workgroup memory at the end:
// a K-long serial loop per invocation became the latency of a prefill chunk on GPUs (a few
// warps per multiprocessor), so the K loop is split rather than the tile made smaller.
// Inner products per block as _matmul.wgsl: dot(q, x) in hf summed in f32, then
// d sum(q x) + m sum(x) (Q6_K: its two halves' scales).
// The including file declares `x: array<vec4<f32>>` (n_tokens rows of K floats),
// `fn in_scale(j: u32) -> vec4<f32>`, `const NORM: bool`, `override EPS` (used when NORM) and
// `fn tile_put(p: u32, t: u32, a: f32, b: f32)`, which stores row pair p (a: row p, b: row
// p + half) of token row t; its entry point calls tile_run. Call from uniform control flow
// (barriers).

const TILE_PAIRS: u32 = 32u;   // row pairs per workgroup
const TILE_TOKENS: u32 = 16u;  // token rows per workgroup
override KB: u32 = 2u;         // blocks staged per step and group (KS * KB <= 4; K / 32 a multiple of KS * KB)
override KS: u32 = 1u;         // K groups of 64 invocations (1, 2 or 4): dispatch workgroups of 64 KS

// staging: (KS, TILE_TOKENS, KB * 8) scaled inputs; after the K loop, groups 1.. leave their
// sums here ((KS - 1) * 64 * 4 vec4s)
var<workgroup> xt: array<vec4<f32>, 768>;
var<workgroup> tsq: array<f32, 64>;        // partial sums of squares, 4 per token
var<workgroup> tinv: array<f32, 16>;       // (TILE_TOKENS,) inverse RMS

struct Tile {
    a0: vec4<f32>,  // row p0, tokens t0 .. t0 + 3
    b0: vec4<f32>,  // row p0 + half
    a1: vec4<f32>,  // row p1 = p0 + 16
    b1: vec4<f32>,  // row p1 + half
    p0: u32,
    t0: u32,
    ok: bool,  // this invocation holds the sums (K group 0)
}

// (x0.w, x1.w, x2.w, x3.w): one weight vec4 against four tokens' inputs (lanes = tokens).
fn tile_dots(x0: hf4, x1: hf4, x2: hf4, x3: hf4, w: hf4) -> vec4<f32> {
    return vec4<f32>(f32(dot(x0, w)), f32(dot(x1, w)), f32(dot(x2, w)), f32(dot(x3, w)));
}

// The tile of workgroup wid for a matrix whose pairs are (p, p + half), n_tok token rows.
fn tile_matmul(wid: vec3<u32>, lid: u32, half: u32, n_tok: u32) -> Tile {
    let kg = lid / 64u;  // K group
    let l64 = lid % 64u;
    let tr = l64 % 16u;
    let tc = l64 / 16u;
    let p0 = wid.x * TILE_PAIRS + tr;
    let p1 = p0 + 16u;
    let T0 = wid.y * TILE_TOKENS;
    let k4 = K / 4u;
    // rows clamped into the matrix (loads only; the caller drops results past it)
    let r0 = min(p0, M - 1u);
    let r1 = min(p0 + half, M - 1u);
    let r2 = min(p1, M - 1u);
    let r3 = min(p1 + half, M - 1u);
    if (NORM) {
        if (kg == 0u) {
            let tok = min(T0 + l64 / 4u, n_tok - 1u);
            var s = 0.0;
            for (var i = l64 % 4u; i < k4; i += 4u) {
                let v = x[tok * k4 + i];
                s += dot(v, v);
            }
            tsq[l64] = s;
        }
        workgroupBarrier();
        if (lid < TILE_TOKENS) {
            let t = (tsq[4u * lid] + tsq[4u * lid + 1u]) + (tsq[4u * lid + 2u] + tsq[4u * lid + 3u]);
            tinv[lid] = inverseSqrt(t / f32(K) + EPS);
        }
    }
    let E = KB * 8u;  // staged vec4s per token
    let ng = qgroups();
    let per = 8u / ng;
    let one = hf4(1.0);
    // accumulators: lanes are the 4 tokens; a* rows of pair p0, c* rows of pair p1
    var a = vec4<f32>(0.0);
    var b = vec4<f32>(0.0);
    var c = vec4<f32>(0.0);
    var d = vec4<f32>(0.0);
    let nbg = K / 32u / KS;  // blocks of this K group
    let xg = kg * TILE_TOKENS * E;  // its staging region
    let xb = xg + tc * 4u * E;  // this invocation's first token row in xt
    for (var g0 = 0u; g0 < nbg; g0 += KB) {
        let c0 = kg * nbg + g0;  // first block of this step
        workgroupBarrier();  // the last step's reads of xt are done (and tinv is published)
        for (var i = l64; i < TILE_TOKENS * E; i += 64u) {
            let t = i / E;
            let j = c0 * 8u + i % E;
            let tok = min(T0 + t, n_tok - 1u);
            var v = x[tok * k4 + j] * in_scale(j);
            if (NORM) {
                v *= tinv[t];
            }
            xt[xg + i] = v;
        }
        workgroupBarrier();
        for (var bb = 0u; bb < KB; bb++) {
            let blk = c0 + bb;
            let h0 = qhigh(r0, blk);
            let h1 = qhigh(r1, blk);
            let h2 = qhigh(r2, blk);
            let h3 = qhigh(r3, blk);
            // this block's sums of q x per row (lanes: tokens); l*: Q6_K's first half
            var qa = vec4<f32>(0.0);
            var qb = vec4<f32>(0.0);
            var qc = vec4<f32>(0.0);
            var qd = vec4<f32>(0.0);
            var la = vec4<f32>(0.0);
            var lb = vec4<f32>(0.0);
            var lc = vec4<f32>(0.0);
            var ld = vec4<f32>(0.0);
            var xs = vec4<f32>(0.0);  // sum of x per token (for the offset m)
            for (var gi = 0u; gi < ng; gi++) {
                let u0 = qload(r0, blk, gi);
                let u1 = qload(r1, blk, gi);
                let u2 = qload(r2, blk, gi);
                let u3 = qload(r3, blk, gi);
                for (var e = 0u; e < per; e++) {
                    if (qsplit() && e == 4u) {
                        la = qa;
                        lb = qb;
                        lc = qc;
                        ld = qd;
                        qa = vec4<f32>(0.0);
                        qb = vec4<f32>(0.0);
                        qc = vec4<f32>(0.0);
                        qd = vec4<f32>(0.0);
                    }
                    let k = xb + bb * 8u + gi * per + e;
                    let x0 = hf4(xt[k]);
                    let x1 = hf4(xt[k + E]);
                    let x2 = hf4(xt[k + 2u * E]);
                    let x3 = hf4(xt[k + 3u * E]);
                    let w0 = qv(u0, h0, e);
                    let w1 = qv(u1, h1, e);
                    let w2 = qv(u2, h2, e);
                    let w3 = qv(u3, h3, e);
                    qa += tile_dots(x0, x1, x2, x3, w0);
                    qb += tile_dots(x0, x1, x2, x3, w1);
                    qc += tile_dots(x0, x1, x2, x3, w2);
                    qd += tile_dots(x0, x1, x2, x3, w3);
                    if (qhas_m()) {
                        xs += tile_dots(x0, x1, x2, x3, one);
                    }
                }
            }
            let s0 = qscale(r0, blk);
            let s1 = qscale(r1, blk);
            let s2 = qscale(r2, blk);
            let s3 = qscale(r3, blk);
            if (qsplit()) {
                a += s0.x * la + s0.y * qa;
                b += s1.x * lb + s1.y * qb;
                c += s2.x * lc + s2.y * qc;
                d += s3.x * ld + s3.y * qd;
            } else if (qhas_m()) {
                a += s0.x * qa + s0.y * xs;
                b += s1.x * qb + s1.y * xs;
                c += s2.x * qc + s2.y * xs;
                d += s3.x * qd + s3.y * xs;
            } else {
                a += s0.x * qa;
                b += s1.x * qb;
                c += s2.x * qc;
                d += s3.x * qd;
            }
        }
    }
    if (KS > 1u) {  // the K groups' sums meet in group 0
        workgroupBarrier();  // staging reads are done
        if (kg > 0u) {
            let o = ((kg - 1u) * 64u + l64) * 4u;
            xt[o] = a;
            xt[o + 1u] = b;
            xt[o + 2u] = c;
            xt[o + 3u] = d;
        }
        workgroupBarrier();
        if (kg == 0u) {
            for (var g = 1u; g < KS; g++) {
                let o = ((g - 1u) * 64u + l64) * 4u;
                a += xt[o];
                b += xt[o + 1u];
                c += xt[o + 2u];
                d += xt[o + 3u];
            }
        }
    }
    return Tile(a, b, c, d, p0, T0 + tc * 4u, kg == 0u);
}

// The whole kernel for row pairs (p, p + half), p < half: this workgroup's tile, each result
// handed to the including file's tile_put.
fn tile_run(wid: vec3<u32>, lid: u32, half: u32) {
    let n_tok = step.n_tokens;
    if (wid.y * TILE_TOKENS >= n_tok) {
        return;
    }
    let tl = tile_matmul(wid, lid, half, n_tok);
    for (var i = 0u; i < 4u; i++) {
        let t = tl.t0 + i;
        if (!tl.ok || t >= n_tok) {
            break;
        }
        if (tl.p0 < half) {
            tile_put(tl.p0, t, tl.a0[i], tl.b0[i]);
        }
        if (tl.p0 + 16u < half) {
            tile_put(tl.p0 + 16u, t, tl.a1[i], tl.b1[i]);
        }
    }
}
