// Causal grouped-query attention for GPUs (the split-K layout's attention): as attention.wgsl,
// but no invocation walks the keys serially. One workgroup per (head h, token t); keys come in
// chunks of WG: invocation j scores key j of the chunk, one online-softmax step per chunk
// (wg_max, wg_sum), then the values are summed by G = WG / (HD / 4) key groups of HD / 4
// lanes, lane i holding dims 4i..4i+3 of the keys j = g, g + G, ..., and the G partial sums
// meet in workgroup memory at the end.
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

override NH: u32;
override NKV: u32;
override HD: u32;
override WG: u32 = 256u;
override WINDOW: u32 = 0u;  // sliding window in keys (llama.cpp: masked when p - p_key >= n_swa); 0 = off
override SCALE: f32 = 0.0;  // factor on q.k; 0 = 1 / sqrt(HD)

@group(0) @binding(0) var<uniform> step: Step;
@group(0) @binding(1) var<storage, read> q: array<f32>;
@group(0) @binding(2) var<storage, read> kc: array<kv4>;
@group(0) @binding(3) var<storage, read> vc: array<kv4>;
@group(0) @binding(4) var<storage, read_write> o: array<f32>;

var<workgroup> qs: array<vec4<f32>, 64>;    // (HD / 4,) scaled query
var<workgroup> sc: array<f32, 256>;         // probabilities of one chunk
var<workgroup> part: array<vec4<f32>, 256>; // (G, HD / 4) partial value sums

//!include _reduce.wgsl

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let h = wid.x;
    let t = wid.y;
    let nq = NH * HD;
    let d4 = HD / 4u;
    let nk4 = NKV * d4;
    let kvh = h / (NH / NKV);
    let n_kv = step.n_past + t + 1u;
    var k0 = 0u;  // first visible key
    if (WINDOW > 0u && n_kv > WINDOW) {
        k0 = n_kv - WINDOW;
    }
    let scale = select(inverseSqrt(f32(HD)), SCALE, SCALE > 0.0);
    if (lid < d4) {
        let b = t * nq + h * HD + 4u * lid;
        qs[lid] = vec4<f32>(q[b], q[b + 1u], q[b + 2u], q[b + 3u]) * scale;
    }
    workgroupBarrier();
    let ng = WG / d4;  // key groups
    let lane = lid % d4;
    let grp = lid / d4;
    var m = -3.0e38;  // running max
    var l = 0.0;      // running sum of exp(score - m)
    var acc = vec4<f32>(0.0);  // dims 4 lane .. of keys grp, grp + ng, ...
    for (var c0 = k0; c0 < n_kv; c0 += WG) {
        let cn = min(WG, n_kv - c0);
        var s = -3.0e38;
        if (lid < cn) {
            let kb = (c0 + lid) * nk4 + kvh * d4;
            var a = vec4<f32>(0.0);  // four independent chains: four loads in flight
            var d = 0u;
            for (; d + 4u <= d4; d += 4u) {
                a.x += dot(qs[d], vec4<f32>(kc[kb + d]));
                a.y += dot(qs[d + 1u], vec4<f32>(kc[kb + d + 1u]));
                a.z += dot(qs[d + 2u], vec4<f32>(kc[kb + d + 2u]));
                a.w += dot(qs[d + 3u], vec4<f32>(kc[kb + d + 3u]));
            }
            for (; d < d4; d++) {
                a.x += dot(qs[d], vec4<f32>(kc[kb + d]));
            }
            s = (a.x + a.y) + (a.z + a.w);
        }
        let mn = max(m, wg_max(s, lid));
        let e = select(0.0, exp(s - mn), lid < cn);
        sc[lid] = e;
        let corr = exp(m - mn);
        l = l * corr + wg_sum(e, lid);  // its barriers also publish sc
        acc *= corr;
        if (grp < ng) {
            let vb = c0 * nk4 + kvh * d4 + lane;
            var a1 = vec4<f32>(0.0);  // a second chain: two keys' loads in flight
            var j = grp;
            for (; j + ng < cn; j += 2u * ng) {
                acc += sc[j] * vec4<f32>(vc[vb + j * nk4]);
                a1 += sc[j + ng] * vec4<f32>(vc[vb + (j + ng) * nk4]);
            }
            if (j < cn) {
                acc += sc[j] * vec4<f32>(vc[vb + j * nk4]);
            }
            acc += a1;
        }
        m = mn;
        workgroupBarrier();  // sc is rewritten by the next chunk
    }
    part[lid] = acc;
    workgroupBarrier();
    if (lid < d4) {
        var r = vec4<f32>(0.0);
        for (var g = 0u; g < ng; g++) {
            r += part[g * d4 + lid];
        }
        r /= l;
        let ob = t * nq + h * HD + 4u * lid;
        o[ob] = r.x;
        o[ob + 1u] = r.y;
        o[ob + 2u] = r.z;
        o[ob + 3u] = r.w;
    }
}
