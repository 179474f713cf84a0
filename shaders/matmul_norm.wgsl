// y = W rmsnorm(x) * g for a batch of token rows (RMSNorm fused into the matmul input): the
// output head, or any projection that follows a norm. With LAST_ONLY only the last token row
// is computed and written to y row 0 (prefill logits). Row t of y starts at t * YS and this
// W's rows land at YO.. (YS = 0: M), so several dispatches can fill one output: the row chunks
// of a head too big for one binding, or q, k, v stored in different types. CAP > 0 soft-caps
// every output: CAP tanh(y / CAP) (final logit soft-capping).
//
// binding  name  type                          shape
// 0        step  uniform Step                  n_tokens
// 1        wq    storage read  array<vec4u32> blob of W (M, K)   (layout in _quant.wgsl)
// 2        x     storage read  array<vec4f32>  (n_tokens, K)
// 3        g     storage read  array<vec4f32>  (K,) norm weight
// 4        y     storage rw    array<f32>      (n_tokens or 1, YS) (YS = 0: M)
// overrides: QTYPE, M, K, EPS, WG (power of two <= 256), TT (1..4; 1 with LAST_ONLY), LAST_ONLY,
//            YS, YO (output row stride and column offset), CAP (soft-capping, 0 = off),
//            SPLITK (GPUs, with ROWMAJOR and TT 1: workgroup (i, t) computes rows i, i + ceil(M/2)
//            of token t, _matvec.wgsl), RP (SPLITK: workgroup (i, t) computes row pairs
//            i RP .. i RP + RP - 1 with one RMSNorm scale; with PAIRS, RP groups of PAIRS pairs
//            computed at once, _matvec.wgsl), CAND (SPLITK, LAST_ONLY: each workgroup also writes
//            its best logit and id, ties to the lowest id, as the f32 pair y[CAND + 2 wid.x],
//            y[CAND + 2 wid.x + 1] (the id's bits): sample.wgsl's greedy path reads these few
//            hundred candidates instead of every logit; 0 = off)
// dispatch: (ceil(ceil(M / 2) / WG), LAST_ONLY ? 1 : ceil(n_tokens / TT), 1);
//           SPLITK: (ceil(ceil(M / 2) / (RP PAIRS)), LAST_ONLY ? 1 : n_tokens, 1)
//!include _step.wgsl
//!include _prec.wgsl
//!include _quant.wgsl
//!include _matmul.wgsl
//!include _reduce.wgsl
//!include _rmsnorm.wgsl
//!include _matvec.wgsl
//!include _in_normed.wgsl

override WG: u32 = 64u;
override TT: u32 = 1u;
override LAST_ONLY: bool = false;
override SPLITK: bool = false;
override RP: u32 = 1u;  // SPLITK: row pairs per workgroup
override YS: u32 = 0u;  // output row stride (0: M)
override YO: u32 = 0u;  // column of y where row 0 of W lands
override CAP: f32 = 0.0;  // soft-capping: y = CAP tanh(y / CAP); 0 = off
override CAND: u32 = 0u;  // SPLITK + LAST_ONLY: where in y the (best logit, id) pairs go; 0 = off

fn out_row(t: u32) -> u32 {
    if (LAST_ONLY) {
        return YO;
    }
    return t * select(M, YS, YS > 0u) + YO;
}

fn capped(v: f32) -> f32 {
    if (CAP > 0.0) {
        return CAP * tanh(v / CAP);
    }
    return v;
}

@group(0) @binding(4) var<storage, read_write> y: array<f32>;

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>,
        @builtin(workgroup_id) wid: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
    let half = (M + 1u) / 2u;
    var t0 = wid.y * TT;
    if (LAST_ONLY) {
        t0 = step.n_tokens - 1u;
    }
    if (t0 >= step.n_tokens) {
        return;
    }
    var r0 = gid.x;
    var nt = 0u;
    var acc: Acc;
    if (SPLITK) {
        // RP row pairs per workgroup share one RMSNorm scale (the output head has ~25k pairs)
        // (PAIRS > 1: RP groups of PAIRS pairs, each pair summed by WG / PAIRS lanes)
        let inv = inv_rms_sk(t0, lid);
        let lanes = WG / PAIRS;
        var bv = -3.4e38;  // CAND: the best logit this lane wrote, ties to the lowest id
        var bi = 0u;
        for (var k = 0u; k < RP; k++) {
            let p = (wid.x * RP + k) * PAIRS + lid / lanes;
            let pc = min(p, half - 1u);  // every invocation joins the barriers
            let v = matvec_rows(pc, min(pc + half, M - 1u), t0, inv, lid, false).xy;
            if (lid % lanes == 0u && p < half) {
                let o = out_row(t0);
                let c0 = capped(v.x);
                y[o + p] = c0;
                if (c0 > bv || (c0 == bv && p < bi)) {
                    bv = c0;
                    bi = p;
                }
                if (p + half < M) {
                    let c1 = capped(v.y);
                    y[o + p + half] = c1;
                    if (c1 > bv || (c1 == bv && p + half < bi)) {
                        bv = c1;
                        bi = p + half;
                    }
                }
            }
        }
        if (CAND > 0u) {
            let best = wg_argmax(bv, bi, lid);
            if (lid == 0u) {
                y[CAND + 2u * wid.x] = best.v;
                y[CAND + 2u * wid.x + 1u] = bitcast<f32>(best.i);
            }
        }
        return;
    } else {
        let inv = inv_rms4(t0, step.n_tokens, lid);  // every invocation joins the barriers
        if (r0 >= half) {
            return;
        }
        acc = matmul_rows(r0, min(r0 + half, M - 1u), t0, step.n_tokens, inv);
        nt = min(TT, step.n_tokens - t0);
    }
    for (var t = 0u; t < nt; t++) {
        let o = out_row(t0 + t);
        y[o + r0] = capped(acc.a[t]);
        if (r0 + half < M) {
            y[o + r0 + half] = capped(acc.b[t]);
        }
    }
}
