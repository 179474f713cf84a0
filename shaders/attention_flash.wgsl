// Flash-decoding attention for the one new token of a decode step (GPUs): the visible keys are
// split over S workgroups per head, so a long context adds workgroups, not a longer serial walk
// (attention_split.wgsl gives each head one workgroup). Workgroup (h, s) takes keys
// k0 + s C .. k0 + (s + 1) C - 1 (_flash.wgsl flash_span: C = ceil(visible / S) rounded up to
// whole chunks of WG), walks them in chunks of WG as attention_split does (one
// online-softmax step per chunk), and leaves its unnormalised partial output with its running
// max m and sum l. matmul_attn.wgsl merges the S partials of each head while it computes the
// output projection. Workgroups past the last visible key write nothing (the merge knows).
//
// binding  name  type                          shape
// 0        step  uniform Step                  n_past (the new token's position)
// 1        q     storage read  array<f32>      (NH * HD,)            roped query
// 2        kc    storage read  array<kv4>      (n_ctx, NKV * HD)     roped keys  (kv: _prec.wgsl, f32 or f16)
// 3        vc    storage read  array<kv4>      (n_ctx, NKV * HD)
// 4        part  storage rw    array<vec4f32>  (NH, S, HD / 4 + 1)   sum_j exp(s_j - m) v_j, then (m, l, 0, 0)
// overrides: NH, NKV, HD (multiple of 4, <= 256), WG (power of two, 64..256, >= HD / 4, = FLASH_WG),
//            SCALE (factor on q.k; 0 = 1 / sqrt(HD)); S, WINDOW, FLASH_WG (_flash.wgsl)
// dispatch: (NH, S, 1)
//!include _step.wgsl
//!include _prec.wgsl
//!include _flash.wgsl

override WG: u32 = 64u;

@group(0) @binding(0) var<uniform> step: Step;
@group(0) @binding(1) var<storage, read> q: array<f32>;
@group(0) @binding(2) var<storage, read> kc: array<kv4>;
@group(0) @binding(3) var<storage, read> vc: array<kv4>;
@group(0) @binding(4) var<storage, read_write> part: array<vec4<f32>>;

//!include _reduce.wgsl
//!include _attn.wgsl
//!include _online.wgsl

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let h = wid.x;
    let s = wid.y;
    let sp = flash_span(step.n_past + 1u);
    if (s >= sp.used) {
        return;  // uniform: the whole workgroup leaves, the merge reads only `used` splits
    }
    let a = sp.k0 + s * sp.c;
    let b = min(a + sp.c, sp.n_kv);
    load_query(h * HD, lid);
    var st = online_start();
    for (var c0 = a; c0 < b; c0 += WG) {
        st = online_chunk(st, c0, min(WG, b - c0), h / (NH / NKV), lid);
    }
    let r = online_total(st, lid);
    let d4 = HD / 4u;
    let ob = (h * S + s) * (d4 + 1u);
    if (lid < d4) {
        part[ob + lid] = r;
    }
    if (lid == 0u) {
        part[ob + d4] = vec4<f32>(st.m, st.l, 0.0, 0.0);
    }
}
