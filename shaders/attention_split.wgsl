// Causal grouped-query attention for GPUs (the split-K layout's attention over a batch of
// tokens): as attention.wgsl, but no invocation walks the keys serially. One workgroup per
// (GQ query heads of one key/value head, token t); keys come in chunks of WG, invocation j
// scoring key j against the GQ queries (lanes of a vec4), one online-softmax step per chunk for
// the GQ heads at once; then the values are summed by G = WG / (HD / 4) key groups of HD / 4
// lanes (lane i: dims 4i..4i+3 of keys j = g, g + G, ...), each value read once for the GQ heads.
// Sharing the loads of a key/value head between its query heads divides the L2 traffic of a
// prefill's attention by GQ (SmolLM2: 3).
//
// binding  name  type                          shape
// 0        step  uniform Step                  n_past, n_tokens
// 1        q     storage read  array<f32>      (n_tokens, NH * HD)   roped queries
// 2        kc    storage read  array<kv4>      (n_ctx, NKV * HD)     roped keys  (kv: _prec.wgsl, f32 or f16)
// 3        vc    storage read  array<kv4>      (n_ctx, NKV * HD)
// 4        o     storage rw    array<f32>      (n_tokens, NH * HD)
// overrides: NH, NKV, HD (multiple of 4, <= 256), WINDOW (sliding window: query p sees keys
//            p - WINDOW + 1 ..= p; 0 = all), SCALE (factor on q.k; 0 = 1 / sqrt(HD)), WG (power
//            of two, 64..256, >= HD / 4), GQ (query heads per workgroup: a divisor of NH / NKV, <= 4)
// dispatch: (NH / GQ, n_tokens, 1)
//!include _step.wgsl
//!include _prec.wgsl

override WG: u32 = 256u;
override WINDOW: u32 = 0u;  // sliding window in keys (llama.cpp: masked when p - p_key >= n_swa); 0 = off
override GQ: u32 = 1u;  // query heads per workgroup, sharing each key and value load

@group(0) @binding(0) var<uniform> step: Step;
@group(0) @binding(1) var<storage, read> q: array<f32>;
@group(0) @binding(2) var<storage, read> kc: array<kv4>;
@group(0) @binding(3) var<storage, read> vc: array<kv4>;
@group(0) @binding(4) var<storage, read_write> o: array<f32>;

//!include _reduce.wgsl
//!include _attn.wgsl

var<workgroup> qg: array<vec4<f32>, 256>;  // (GQ, HD / 4) the scaled queries
var<workgroup> pg: array<vec4<f32>, 256>;  // one chunk's probabilities, lanes = the GQ heads
var<workgroup> part: array<vec4<f32>, 256>;  // (G, HD / 4) one head's partial value sums

// The key at kc[kb] against the GQ staged queries (lane a: head a; lanes past GQ: 0).
fn key_dots(kb: u32) -> vec4<f32> {
    let d4 = HD / 4u;
    var s = vec4<f32>(0.0);
    for (var d = 0u; d < d4; d++) {
        let k = vec4<f32>(kc[kb + d]);
        s.x += dot(qg[d], k);
        if (GQ > 1u) {
            s.y += dot(qg[d4 + d], k);
        }
        if (GQ > 2u) {
            s.z += dot(qg[2u * d4 + d], k);
        }
        if (GQ > 3u) {
            s.w += dot(qg[3u * d4 + d], k);
        }
    }
    return s;
}

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let h0 = wid.x * GQ;  // first query head of this workgroup
    let t = wid.y;
    let d4 = HD / 4u;
    let nk4 = NKV * d4;
    let kvh = h0 / (NH / NKV);
    let row = t * NH * HD + h0 * HD;  // the first head's query and output
    let scale = select(inverseSqrt(f32(HD)), SCALE, SCALE > 0.0);
    for (var i = lid; i < GQ * d4; i += WG) {
        let b = row + 4u * i;  // head i / d4, dims 4 (i % d4) ..: the heads' rows are adjacent
        qg[i] = vec4<f32>(q[b], q[b + 1u], q[b + 2u], q[b + 3u]) * scale;
    }
    workgroupBarrier();
    let n_kv = step.n_past + t + 1u;
    let ng = WG / d4;  // key groups of the value sums
    let grp = lid / d4;
    let vb = kvh * d4 + lid % d4;
    var m = vec4<f32>(-3.0e38);  // running max and sum per head
    var l = vec4<f32>(0.0);
    var a0 = vec4<f32>(0.0);  // this invocation's value sums, heads 0..3
    var a1 = vec4<f32>(0.0);
    var a2 = vec4<f32>(0.0);
    var a3 = vec4<f32>(0.0);
    for (var c0 = first_key(n_kv); c0 < n_kv; c0 += WG) {
        let cn = min(WG, n_kv - c0);
        var s = vec4<f32>(-3.0e38);
        if (lid < cn) {
            s = key_dots((c0 + lid) * nk4 + kvh * d4);
        }
        let mn = max(m, wg_max4(s, lid));
        let e = select(vec4<f32>(0.0), exp(s - mn), lid < cn);
        pg[lid] = e;
        let corr = exp(m - mn);
        l = l * corr + wg_sum4(e, lid);  // wg_sum4's barriers publish pg
        m = mn;
        a0 *= corr.x;
        a1 *= corr.y;
        a2 *= corr.z;
        a3 *= corr.w;
        if (grp < ng) {
            for (var j = grp; j < cn; j += ng) {
                let v = vec4<f32>(vc[vb + (c0 + j) * nk4]);
                let p = pg[j];
                a0 += p.x * v;
                a1 += p.y * v;
                a2 += p.z * v;
                a3 += p.w * v;
            }
        }
        workgroupBarrier();  // pg is rewritten by the next chunk
    }
    for (var a = 0u; a < GQ; a++) {  // each head's G partial sums meet in `part`
        var mine = a0;
        if (a == 1u) {
            mine = a1;
        } else if (a == 2u) {
            mine = a2;
        } else if (a == 3u) {
            mine = a3;
        }
        part[lid] = mine;
        workgroupBarrier();
        if (lid < d4) {
            var r = vec4<f32>(0.0);
            for (var g = 0u; g < ng; g++) {
                r += part[g * d4 + lid];
            }
            let ob = row + a * HD + 4u * lid;
            let inv = 1.0 / l[a];
            o[ob] = r.x * inv;
            o[ob + 1u] = r.y * inv;
            o[ob + 2u] = r.z * inv;
            o[ob + 3u] = r.w * inv;
        }
        workgroupBarrier();
    }
}
