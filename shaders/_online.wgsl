// Shared helper (included with `//!include _online.wgsl`, after _attn.wgsl and _reduce.wgsl):
// the online softmax over keys in chunks of WG with no serial walk per invocation, for the GPU
// attention kernels (attention_split, attention_flash). In a chunk, invocation j scores key j;
// one running-max step per chunk (wg_max, wg_sum); then the values are summed by
// G = WG / (HD / 4) key groups of HD / 4 lanes, lane i holding dims 4i..4i+3 of keys
// j = g, g + G, ..., and the G partial sums meet in workgroup memory at the end. The including
// file declares `vc: array<kv4>` (the layer's values) and WG (a power of two, 64..256,
// >= HD / 4).

var<workgroup> sc: array<f32, 256>;          // probabilities of one chunk
var<workgroup> acc_g: array<vec4<f32>, 256>; // (G, HD / 4) partial value sums

struct Online {
    m: f32,  // running max
    l: f32,  // running sum of exp(score - m)
    acc: vec4<f32>,  // this invocation's value sum (its lane's dims, its group's keys)
}

fn online_start() -> Online {
    return Online(-3.0e38, 0.0, vec4<f32>(0.0));
}

// st after the keys c0 .. c0 + cn - 1 (cn <= WG) of kv head kvh. Call from uniform control
// flow (barriers).
fn online_chunk(st: Online, c0: u32, cn: u32, kvh: u32, lid: u32) -> Online {
    let d4 = HD / 4u;
    let nk4 = NKV * d4;
    let ng = WG / d4;  // key groups of the value sum
    let grp = lid / d4;
    var s = -3.0e38;
    if (lid < cn) {
        s = key_dot((c0 + lid) * nk4 + kvh * d4);
    }
    let mn = max(st.m, wg_max(s, lid));
    let e = select(0.0, exp(s - mn), lid < cn);
    sc[lid] = e;
    let corr = exp(st.m - mn);
    var out = Online(mn, st.l * corr + wg_sum(e, lid), st.acc * corr);  // wg_sum's barriers publish sc
    if (grp < ng) {
        let vb = c0 * nk4 + kvh * d4 + lid % d4;
        // eight keys' loads issued before their sums: one round trip to L2 per eight keys
        var a0 = vec4<f32>(0.0);
        var a1 = vec4<f32>(0.0);
        var a2 = vec4<f32>(0.0);
        var a3 = vec4<f32>(0.0);
        var j = grp;
        for (; j + 7u * ng < cn; j += 8u * ng) {
            let v0 = vec4<f32>(vc[vb + j * nk4]);
            let v1 = vec4<f32>(vc[vb + (j + ng) * nk4]);
            let v2 = vec4<f32>(vc[vb + (j + 2u * ng) * nk4]);
            let v3 = vec4<f32>(vc[vb + (j + 3u * ng) * nk4]);
            let v4 = vec4<f32>(vc[vb + (j + 4u * ng) * nk4]);
            let v5 = vec4<f32>(vc[vb + (j + 5u * ng) * nk4]);
            let v6 = vec4<f32>(vc[vb + (j + 6u * ng) * nk4]);
            let v7 = vec4<f32>(vc[vb + (j + 7u * ng) * nk4]);
            a0 += sc[j] * v0 + sc[j + 4u * ng] * v4;
            a1 += sc[j + ng] * v1 + sc[j + 5u * ng] * v5;
            a2 += sc[j + 2u * ng] * v2 + sc[j + 6u * ng] * v6;
            a3 += sc[j + 3u * ng] * v3 + sc[j + 7u * ng] * v7;
        }
        for (; j < cn; j += ng) {
            a0 += sc[j] * vec4<f32>(vc[vb + j * nk4]);
        }
        out.acc += (a0 + a1) + (a2 + a3);
    }
    workgroupBarrier();  // sc is rewritten by the next chunk
    return out;
}

// The unnormalised output, dims 4 lid .. 4 lid + 3 for lid < HD / 4 (the G groups' sums).
// Call from uniform control flow (a barrier).
fn online_total(st: Online, lid: u32) -> vec4<f32> {
    let d4 = HD / 4u;
    acc_g[lid] = st.acc;
    workgroupBarrier();
    var r = vec4<f32>(0.0);
    if (lid < d4) {
        for (var g = 0u; g < WG / d4; g++) {
            r += acc_g[g * d4 + lid];
        }
    }
    return r;
}
