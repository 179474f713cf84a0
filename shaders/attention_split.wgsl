// Causal grouped-query attention for GPUs (the split-K layout's attention): as attention.wgsl,
// but no invocation walks the keys serially. One workgroup per (head h, token t); keys come in
// chunks of WG, one online-softmax step per chunk (_online.wgsl).
//
// binding  name  type                          shape
// 0        step  uniform Step                  n_past, n_tokens
// 1        q     storage read  array<f32>      (n_tokens, NH * HD)   roped queries
// 2        kc    storage read  array<kv4>      (n_ctx, NKV * HD)     roped keys  (kv: _prec.wgsl, f32 or f16)
// 3        vc    storage read  array<kv4>      (n_ctx, NKV * HD)
// 4        o     storage rw    array<f32>      (n_tokens, NH * HD)
// overrides: NH, NKV, HD (multiple of 4, <= 256), WINDOW (sliding window: query p sees keys
//            p - WINDOW + 1 ..= p; 0 = all), SCALE (factor on q.k; 0 = 1 / sqrt(HD)), WG (power of two, 64..256, >= HD / 4)
// dispatch: (NH, n_tokens, 1)
//!include _step.wgsl
//!include _prec.wgsl

override WG: u32 = 256u;
override WINDOW: u32 = 0u;  // sliding window in keys (llama.cpp: masked when p - p_key >= n_swa); 0 = off

@group(0) @binding(0) var<uniform> step: Step;
@group(0) @binding(1) var<storage, read> q: array<f32>;
@group(0) @binding(2) var<storage, read> kc: array<kv4>;
@group(0) @binding(3) var<storage, read> vc: array<kv4>;
@group(0) @binding(4) var<storage, read_write> o: array<f32>;

//!include _reduce.wgsl
//!include _attn.wgsl
//!include _online.wgsl

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let h = wid.x;
    let t = wid.y;
    let row = t * NH * HD + h * HD;  // this head's query and output
    let n_kv = step.n_past + t + 1u;
    load_query(row, lid);
    var st = online_start();
    for (var c0 = first_key(n_kv); c0 < n_kv; c0 += WG) {
        st = online_chunk(st, c0, min(WG, n_kv - c0), h / (NH / NKV), lid);
    }
    let r = online_total(st, lid) / st.l;
    if (lid < HD / 4u) {
        let ob = row + 4u * lid;
        o[ob] = r.x;
        o[ob + 1u] = r.y;
        o[ob + 2u] = r.z;
        o[ob + 3u] = r.w;
    }
}
