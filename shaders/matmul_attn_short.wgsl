// y += Wo att for the one new token of a decode step at a short context, with the attention
// itself computed here: no attention dispatch before it. On a GPU each dependent dispatch costs
// microseconds of launch and barrier, more than a few thousand keys' worth of redundant work,
// so every workgroup recomputes the whole (NH * HD,) attention output of the token from q and
// the caches (a few hundred KB from L2 at ~100 keys), then computes its RP * PAIRS row pairs of
// the output projection with _matvec.wgsl's split-K loop. Long contexts take
// attention_flash.wgsl + matmul_attn.wgsl instead (the plan's "decode" program; this kernel is
// in "decode_short", which serves KV lengths up to its max_kv).
//
// The keys are walked in chunks of CH, the softmax online across chunks:
//   scores   invocation i < NKV * cn scores key i % cn against the GQ query heads of kv head
//            i / cn (one load of the key for GQ dot products), into sc (NH, CH)
//   softmax  LH = WG / 16 lanes per query head: each lane's (max, sum) over its keys, one tree of
//            (max, sum) pairs, then each lane rewrites its keys as exp(s - m) with the running m
//   values   invocation (kv head, HD / 4 lane, key group g of G = WG / (NKV HD / 4)) sums its
//            group's keys times the probabilities of the GQ heads (one load of the value each),
//            rescaled by exp(m_old - m) per chunk; the G groups meet in workgroup memory at the end
//
// binding  name  type                          shape
// 0        step  uniform Step                  n_past (the token's position)
// 1        wq    storage read  array<vec4u32> blob of Wo (M, K = NH * HD), ROWMAJOR   (_quant.wgsl)
// 2        q     storage read  array<vec4f32>  (NH * HD / 4,)         roped query
// 3        kc    storage read  array<kv4>      (n_ctx, NKV * HD / 4)  roped keys (kv: _prec.wgsl)
// 4        vc    storage read  array<kv4>      (n_ctx, NKV * HD / 4)
// 5        y     storage rw    array<f32>      (M,)  the residual stream, y += Wo att
// overrides: QTYPE, M, K (= NH * HD, <= 1024), NH, NKV (NH / NKV <= 4), HD (multiple of 4,
//            NKV * HD / 4 <= WG), SCALE (factor on q.k; 0 = 1 / sqrt(HD)), WINDOW (sliding
//            window in keys, 0 = off), CH (keys per chunk, NH * CH <= 1536), WG (256),
//            PAIRS (row pairs summed at once, WG / PAIRS lanes each, _matvec.wgsl), RP (serial
//            groups of PAIRS row pairs per workgroup)
// dispatch: (ceil(ceil(M / 2) / (RP PAIRS)), 1, 1)
//!include _step.wgsl
//!include _prec.wgsl
//!include _quant.wgsl
//!include _reduce.wgsl
//!include _matvec.wgsl

override WG: u32 = 256u;
override NH: u32;
override NKV: u32;
override HD: u32;
override SCALE: f32 = 0.0;
override WINDOW: u32 = 0u;
override CH: u32 = 128u;
override RP: u32 = 1u;

@group(0) @binding(0) var<uniform> step: Step;
@group(0) @binding(1) var<storage, read> wq: array<vec4<u32>>;
@group(0) @binding(2) var<storage, read> q: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read> kc: array<kv4>;
@group(0) @binding(4) var<storage, read> vc: array<kv4>;
@group(0) @binding(5) var<storage, read_write> y: array<f32>;

var<workgroup> x: array<vec4<f32>, 256>;  // the scaled query, then the attention output (_matvec's input)
var<workgroup> sc: array<f32, 1536>;      // (NH, CH) one chunk's scores, then probabilities
var<workgroup> hm: array<f32, 64>;        // per head: running max
var<workgroup> hl: array<f32, 64>;        // per head: running sum of exp(s - m)
var<workgroup> hc: array<f32, 64>;        // per head: this chunk's rescale of the earlier sums

fn in_scale(j: u32) -> vec4<f32> {
    return vec4<f32>(1.0);
}

// (max, sum of exp(s - max)) of two parts of one softmax.
fn ml_merge(a: vec2<f32>, b: vec2<f32>) -> vec2<f32> {
    let m = max(a.x, b.x);
    return vec2<f32>(m, a.y * exp(a.x - m) + b.y * exp(b.x - m));
}

// The (max, sum) pair of this invocation's group of LH lanes (uniform control flow).
fn lanes_ml(v: vec2<f32>, lid: u32, lh: u32) -> vec2<f32> {
    red_v4[lid] = vec4<f32>(v, 0.0, 0.0);
    workgroupBarrier();
    for (var s = lh / 2u; s > 0u; s >>= 1u) {
        if (lid % lh < s) {
            red_v4[lid] = vec4<f32>(ml_merge(red_v4[lid].xy, red_v4[lid + s].xy), 0.0, 0.0);
        }
        workgroupBarrier();
    }
    let r = red_v4[lid - lid % lh].xy;
    workgroupBarrier();
    return r;
}

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let half = (M + 1u) / 2u;
    let n_kv = step.n_past + 1u;
    var k0 = 0u;
    if (WINDOW > 0u && n_kv > WINDOW) {
        k0 = n_kv - WINDOW;
    }
    let d4 = HD / 4u;
    let nk4 = NKV * d4;  // vec4s per cache row
    let gq = NH / NKV;  // query heads per kv head (<= 4)
    let scale = select(inverseSqrt(f32(HD)), SCALE, SCALE > 0.0);
    for (var i = lid; i < NH * d4; i += WG) {
        x[i] = q[i] * scale;
    }
    if (lid < NH) {
        hm[lid] = -3.0e38;
        hl[lid] = 0.0;
    }
    workgroupBarrier();

    // this invocation's share of the value sums: kv head kvh, dims 4 lane .. 4 lane + 3, keys
    // j = grp, grp + G, ... of each chunk, for the gq query heads kvh gq .. kvh gq + gq - 1
    let ng = WG / nk4;
    let grp = lid / nk4;
    let kvh = (lid % nk4) / d4;
    let lane = lid % d4;
    var a0 = vec4<f32>(0.0);
    var a1 = vec4<f32>(0.0);
    var a2 = vec4<f32>(0.0);
    var a3 = vec4<f32>(0.0);
    let lh = WG / 16u;  // softmax lanes per query head (NH <= 16)
    let sh = lid / lh;  // this lane's head in the softmax step

    for (var c0 = k0; c0 < n_kv; c0 += CH) {
        let cn = min(CH, n_kv - c0);
        // scores: one key row per invocation, its dot products with the gq heads that share it
        for (var i = lid; i < NKV * cn; i += WG) {
            let kh = i / cn;
            let j = i % cn;
            let kb = (c0 + j) * nk4 + kh * d4;
            let qb = kh * gq * d4;
            var s = vec4<f32>(0.0);
            for (var d = 0u; d < d4; d++) {
                let k = vec4<f32>(kc[kb + d]);
                s.x += dot(x[qb + d], k);
                if (gq > 1u) {
                    s.y += dot(x[qb + d4 + d], k);
                }
                if (gq > 2u) {
                    s.z += dot(x[qb + 2u * d4 + d], k);
                }
                if (gq > 3u) {
                    s.w += dot(x[qb + 3u * d4 + d], k);
                }
            }
            let h0 = kh * gq;
            sc[h0 * CH + j] = s.x;
            if (gq > 1u) {
                sc[(h0 + 1u) * CH + j] = s.y;
            }
            if (gq > 2u) {
                sc[(h0 + 2u) * CH + j] = s.z;
            }
            if (gq > 3u) {
                sc[(h0 + 3u) * CH + j] = s.w;
            }
        }
        workgroupBarrier();
        // softmax step: each lane's keys, the head's (max, sum) for the chunk, the running pair
        var ml = vec2<f32>(-3.0e38, 0.0);
        if (sh < NH) {
            for (var j = lid % lh; j < cn; j += lh) {
                ml = ml_merge(ml, vec2<f32>(sc[sh * CH + j], 1.0));
            }
        }
        let tot = lanes_ml(ml, lid, lh);
        if (sh < NH) {
            let m_old = hm[sh];
            let m = max(m_old, tot.x);
            for (var j = lid % lh; j < cn; j += lh) {
                sc[sh * CH + j] = exp(sc[sh * CH + j] - m);
            }
            if (lid % lh == 0u) {
                let corr = exp(m_old - m);
                hc[sh] = corr;
                hl[sh] = hl[sh] * corr + tot.y * exp(tot.x - m);
                hm[sh] = m;
            }
        }
        workgroupBarrier();
        // values: rescale the earlier chunks' sums, add this chunk's keys (four loads in flight)
        if (grp < ng) {
            let h0 = kvh * gq;
            a0 *= hc[h0];
            if (gq > 1u) {
                a1 *= hc[h0 + 1u];
            }
            if (gq > 2u) {
                a2 *= hc[h0 + 2u];
            }
            if (gq > 3u) {
                a3 *= hc[h0 + 3u];
            }
            let vb = c0 * nk4 + kvh * d4 + lane;
            var j = grp;
            for (; j + 3u * ng < cn; j += 4u * ng) {
                let v0 = vec4<f32>(vc[vb + j * nk4]);
                let v1 = vec4<f32>(vc[vb + (j + ng) * nk4]);
                let v2 = vec4<f32>(vc[vb + (j + 2u * ng) * nk4]);
                let v3 = vec4<f32>(vc[vb + (j + 3u * ng) * nk4]);
                let p = h0 * CH + j;
                a0 += sc[p] * v0 + sc[p + ng] * v1 + sc[p + 2u * ng] * v2 + sc[p + 3u * ng] * v3;
                if (gq > 1u) {
                    let p1 = p + CH;
                    a1 += sc[p1] * v0 + sc[p1 + ng] * v1 + sc[p1 + 2u * ng] * v2 + sc[p1 + 3u * ng] * v3;
                }
                if (gq > 2u) {
                    let p2 = p + 2u * CH;
                    a2 += sc[p2] * v0 + sc[p2 + ng] * v1 + sc[p2 + 2u * ng] * v2 + sc[p2 + 3u * ng] * v3;
                }
                if (gq > 3u) {
                    let p3 = p + 3u * CH;
                    a3 += sc[p3] * v0 + sc[p3 + ng] * v1 + sc[p3 + 2u * ng] * v2 + sc[p3 + 3u * ng] * v3;
                }
            }
            for (; j < cn; j += ng) {
                let v = vec4<f32>(vc[vb + j * nk4]);
                let p = h0 * CH + j;
                a0 += sc[p] * v;
                if (gq > 1u) {
                    a1 += sc[p + CH] * v;
                }
                if (gq > 2u) {
                    a2 += sc[p + 2u * CH] * v;
                }
                if (gq > 3u) {
                    a3 += sc[p + 3u * CH] * v;
                }
            }
        }
        workgroupBarrier();  // sc is rewritten by the next chunk
    }

    // the key groups' sums meet in red_v4, one query head of each kv head at a time, and land
    // in x normalised (the query is no longer needed)
    for (var r = 0u; r < gq; r++) {
        var a = a0;
        if (r == 1u) {
            a = a1;
        } else if (r == 2u) {
            a = a2;
        } else if (r == 3u) {
            a = a3;
        }
        red_v4[lid] = select(vec4<f32>(0.0), a, grp < ng);
        workgroupBarrier();
        if (lid < nk4) {
            var t = vec4<f32>(0.0);
            for (var g = 0u; g < ng; g++) {
                t += red_v4[g * nk4 + lid];
            }
            let h = kvh * gq + r;
            x[h * d4 + lane] = t / hl[h];
        }
        workgroupBarrier();
    }

    // the output projection's rows for this workgroup: RP groups of PAIRS row pairs
    let lanes = WG / PAIRS;
    for (var k = 0u; k < RP; k++) {
        let p = (wid.x * RP + k) * PAIRS + lid / lanes;
        let pc = min(p, half - 1u);  // every invocation joins the barriers
        let v = matvec_group(pc, min(pc + half, M - 1u), 0u, 1.0, lid).xy;
        if (lid % lanes == 0u && p < half) {
            y[p] += v.x;
            if (p + half < M) {
                y[p + half] += v.y;
            }
        }
    }
}
