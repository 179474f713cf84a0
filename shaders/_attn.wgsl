// Shared helper (included with `//!include _attn.wgsl`, after _prec.wgsl): the query side of
// the attention kernels (attention, attention_split, attention_flash). The including file
// declares the overrides WG and WINDOW (directly or through _flash.wgsl), `q: array<f32>` (rows
// of NH * HD roped queries) and `kc: array<kv4>` (the layer's keys, rows of NKV * HD).

override NH: u32;   // query heads
override NKV: u32;  // key/value heads (NH a multiple of it)
override HD: u32;   // head dimension: a multiple of 4, <= 256
override SCALE: f32 = 0.0;  // factor on q.k; 0 = 1 / sqrt(HD)

var<workgroup> qs: array<vec4<f32>, 64>;  // (HD / 4,) the scaled query

// The first key a query at position n_kv - 1 sees (all of them, or the sliding window's).
fn first_key(n_kv: u32) -> u32 {
    if (WINDOW > 0u && n_kv > WINDOW) {
        return n_kv - WINDOW;
    }
    return 0u;
}

// Stage the query starting at q[b], times SCALE (0: 1 / sqrt(HD)), in qs. Call from uniform
// control flow (it ends with a barrier).
fn load_query(b: u32, lid: u32) {
    let scale = select(inverseSqrt(f32(HD)), SCALE, SCALE > 0.0);
    for (var d = lid; d < HD / 4u; d += WG) {
        let i = b + 4u * d;
        qs[d] = vec4<f32>(q[i], q[i + 1u], q[i + 2u], q[i + 3u]) * scale;
    }
    workgroupBarrier();
}

// The staged query's score against the key starting at kc[kb]: four independent chains, so
// four loads are in flight.
fn key_dot(kb: u32) -> f32 {
    let d4 = HD / 4u;
    var a = vec4<f32>(0.0);
    var d = 0u;
    for (; d + 8u <= d4; d += 8u) {  // eight loads in flight, summed in the 4-wide loop's order
        let k0 = vec4<f32>(kc[kb + d]);
        let k1 = vec4<f32>(kc[kb + d + 1u]);
        let k2 = vec4<f32>(kc[kb + d + 2u]);
        let k3 = vec4<f32>(kc[kb + d + 3u]);
        let k4 = vec4<f32>(kc[kb + d + 4u]);
        let k5 = vec4<f32>(kc[kb + d + 5u]);
        let k6 = vec4<f32>(kc[kb + d + 6u]);
        let k7 = vec4<f32>(kc[kb + d + 7u]);
        a.x += dot(qs[d], k0);
        a.y += dot(qs[d + 1u], k1);
        a.z += dot(qs[d + 2u], k2);
        a.w += dot(qs[d + 3u], k3);
        a.x += dot(qs[d + 4u], k4);
        a.y += dot(qs[d + 5u], k5);
        a.z += dot(qs[d + 6u], k6);
        a.w += dot(qs[d + 7u], k7);
    }
    for (; d + 4u <= d4; d += 4u) {
        a.x += dot(qs[d], vec4<f32>(kc[kb + d]));
        a.y += dot(qs[d + 1u], vec4<f32>(kc[kb + d + 1u]));
        a.z += dot(qs[d + 2u], vec4<f32>(kc[kb + d + 2u]));
        a.w += dot(qs[d + 3u], vec4<f32>(kc[kb + d + 3u]));
    }
    for (; d < d4; d++) {
        a.x += dot(qs[d], vec4<f32>(kc[kb + d]));
    }
    return (a.x + a.y) + (a.z + a.w);
}
