// Causal grouped-query attention of a batch of query rows over this layer's KV cache.
// One workgroup per (head h, token t); query t sits at position n_past + t and sees keys
// 0 ..= n_past + t. Keys are visited in chunks of 256 with an online (running-max) softmax,
// so there is no limit on n_ctx and no scratch buffer.
//
// binding  name  type                          shape
// 0        step  uniform Step                  n_past, n_tokens
// 1        q     storage read  array<f32>      (n_tokens, NH * HD)   roped queries
// 2        kc    storage read  array<kv4>      (n_ctx, NKV * HD)     roped keys  (kv: _prec.wgsl, f32 or f16)
// 3        vc    storage read  array<kv>       (n_ctx, NKV * HD)
// 4        o     storage rw    array<f32>      (n_tokens, NH * HD)
// overrides: NH, NKV, HD (multiple of 4, <= 256), WINDOW (sliding window: query p sees keys
//            p - WINDOW + 1 ..= p; 0 = all), SCALE (factor on q.k; 0 = 1 / sqrt(HD)), WG (power of two <= 256)
// dispatch: (NH, n_tokens, 1)
//!include _step.wgsl
//!include _prec.wgsl

override WG: u32 = 64u;
override WINDOW: u32 = 0u;  // sliding window in keys (llama.cpp: masked when p - p_key >= n_swa); 0 = off

const CH: u32 = 256u;  // keys per chunk

@group(0) @binding(0) var<uniform> step: Step;
@group(0) @binding(1) var<storage, read> q: array<f32>;
@group(0) @binding(2) var<storage, read> kc: array<kv4>;
@group(0) @binding(3) var<storage, read> vc: array<kv>;
@group(0) @binding(4) var<storage, read_write> o: array<f32>;

var<workgroup> sc: array<f32, CH>;        // scores, then probabilities, of one chunk

//!include _reduce.wgsl
//!include _attn.wgsl

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let h = wid.x;
    let t = wid.y;
    let nq = NH * HD;
    let nk = NKV * HD;
    let kvh = h / (NH / NKV);
    let n_kv = step.n_past + t + 1u;
    load_query(t * nq + h * HD, lid);
    var m = -3.0e38;  // running max
    var l = 0.0;      // running sum of exp(score - m)
    var acc: array<f32, 4>;  // dims lid + i * WG
    for (var c0 = first_key(n_kv); c0 < n_kv; c0 += CH) {
        let cn = min(CH, n_kv - c0);
        var lmax = -3.0e38;
        for (var j = lid; j < cn; j += WG) {
            let kb = ((c0 + j) * nk + kvh * HD) / 4u;
            let s = key_dot(kb);
            sc[j] = s;
            lmax = max(lmax, s);
        }
        let mn = max(m, wg_max(lmax, lid));
        var ls = 0.0;
        for (var j = lid; j < cn; j += WG) {
            let e = exp(sc[j] - mn);
            sc[j] = e;
            ls += e;
        }
        let corr = exp(m - mn);
        l = l * corr + wg_sum(ls, lid);  // its barriers also publish sc
        for (var i = 0u; i < 4u; i++) {
            let d = lid + i * WG;
            if (d < HD) {
                var a = acc[i] * corr;
                let vb = c0 * nk + kvh * HD + d;
                for (var j = 0u; j < cn; j++) {
                    a += sc[j] * f32(vc[vb + j * nk]);
                }
                acc[i] = a;
            }
        }
        m = mn;
        workgroupBarrier();  // sc is rewritten by the next chunk
    }
    for (var i = 0u; i < 4u; i++) {
        let d = lid + i * WG;
        if (d < HD) {
            o[t * nq + h * HD + d] = acc[i] / l;
        }
    }
}
