// y = W x (or y += W x with ADD, for a residual) for a batch of token rows.
// W is a quantized weight blob (layout in _quant.wgsl). Each invocation computes rows i and
// i + ceil(M/2) (neighbouring invocations read neighbouring words) for TT tokens; with SPLITK
// (GPUs; ROWMAJOR blob) workgroup (i, t) computes the same two rows for token t (_matvec.wgsl).
//
// binding  name  type                          shape
// 0        step  uniform Step                  n_tokens
// 1        wq    storage read  array<vec4u32> blob of W (M, K)
// 2        x     storage read  array<vec4f32>  (n_tokens, K)
// 3        y     storage rw    array<f32>      (n_tokens, M)
// overrides: QTYPE, M, K, WG, TT (tokens per invocation, 1..4), ADD, SPLITK (with ROWMAJOR, TT 1)
// dispatch: (ceil(ceil(M / 2) / WG), ceil(n_tokens / TT), 1); SPLITK: (ceil(M / 2), n_tokens, 1)
//!include _step.wgsl
//!include _prec.wgsl
//!include _quant.wgsl
//!include _matmul.wgsl
//!include _reduce.wgsl
//!include _matvec.wgsl
//!include _in_plain.wgsl

override WG: u32 = 64u;
override TT: u32 = 1u;
override ADD: bool = false;
override SPLITK: bool = false;


@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>,
        @builtin(workgroup_id) wid: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
    let half = (M + 1u) / 2u;
    var r0 = gid.x;
    var t0 = gid.y * TT;
    var nt = 0u;
    var acc: Acc;
    if (SPLITK) {
        let r = wid.x;
        let t = wid.y;
        if (r >= half || t >= step.n_tokens) {
            return;
        }
        // the residual read before the matvec, so its round trip overlaps the weights'
        var yr = vec2<f32>(0.0);
        if (ADD && lid == 0u) {
            yr = vec2<f32>(y[t * M + r], y[t * M + min(r + half, M - 1u)]);
        }
        let v = matvec_pair(r, min(r + half, M - 1u), t, 1.0, lid);
        if (lid != 0u) {
            return;
        }
        y[t * M + r] = v.x + yr.x;
        if (r + half < M) {
            y[t * M + r + half] = v.y + yr.y;
        }
        return;
    } else {
        if (r0 >= half || t0 >= step.n_tokens) {
            return;
        }
        acc = matmul_rows(r0, min(r0 + half, M - 1u), t0, step.n_tokens, vec4<f32>(1.0));
        nt = min(TT, step.n_tokens - t0);
    }
    for (var t = 0u; t < nt; t++) {
        let o = (t0 + t) * M;
        var v0 = acc.a[t];
        var v1 = acc.b[t];
        if (ADD) {
            v0 += y[o + r0];
            if (r0 + half < M) {
                v1 += y[o + r0 + half];
            }
        }
        y[o + r0] = v0;
        if (r0 + half < M) {
            y[o + r0 + half] = v1;
        }
    }
}
