// Choose the next token on the GPU from (V,) logits: repetition penalty, then argmax (greedy)
// or temperature + top-k + top-p + min-p, drawing from a counter-based random stream
// u = pcg(pcg(seed) + rng_step). Only the 4-byte id leaves the GPU.
// Thresholds are order-preserving u32 keys of the logits, so no sort of all V is needed: top-k
// keeps keys >= the k-th largest key (ties at the boundary all stay), top-p keeps the highest
// keys whose mass reaches top_p (sequence of llama.cpp / Sampler: top-k, softmax, top-p,
// min-p); the draw walks candidates in id order. With 0 < top_k <= KMAX (the usual case) the
// k-th largest key comes from a radix select (four passes over the logits, 8 bits each), the
// survivors (at most CAP, ties included) are gathered into workgroup memory in id order, and
// top-p, min-p and the draw work on those; otherwise, or when more than CAP tie, each threshold
// is a binary search over the keys (a pass over the logits per bit).
//
// binding  name    type                          shape
// 0        step    uniform Step                  temperature, top_k, top_p, min_p,
//                                                repeat_penalty, n_hist, seed, rng_step
// 1        logits  storage rw    array<vec4f32>  (V,)  (the penalty is applied in place; read as
//                                                vec4s, so the argmax pass issues 4x fewer loads)
// 2        hist    storage read  array<u32>      (n_hist,) recent ids for the penalty
// 3        out     storage rw    array<u32>      (1,)  chosen id, at out[tok_out] (uniform)
//                                                (CHAIN: a decode chain's ids, the penalty history
//                                                read from out[hist_at ..] instead of hist)
// overrides: V, KMAX (the largest top-k of the gathered path, 0: always the passes), CHAIN,
//            NC and CAND (NC > 0: the output head left NC (best logit, id) candidate pairs at
//            logits[CAND..] as f32 (matmul_norm.wgsl CAND); greedy without a penalty then takes
//            the argmax of those instead of reading all V logits)
// dispatch: (1, 1, 1)
//!include _step.wgsl

override V: u32;
override NC: u32 = 0u;  // candidate pairs from the output head (0: none)
override CAND: u32 = 0u;  // where they start, in floats
override CHAIN: bool = false;  // the penalty history lies in out (a decode chain's ids), not hist
const WG: u32 = 256u;

@group(0) @binding(0) var<uniform> step: Step;
@group(0) @binding(1) var<storage, read_write> logits: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> hist: array<u32>;
@group(0) @binding(3) var<storage, read_write> out: array<u32>;

var<workgroup> rf: array<f32, WG>;  // per-invocation prefix sums of the draw
var<workgroup> total: f32;

override KMAX: u32 = 256u;  // top-k up to this: the radix select and the gathered candidates (0: never)
const CAP: u32 = 512u;  // candidates gathered (ties at the k-th key included), else the slow path
var<workgroup> bins: array<atomic<u32>, 256>;  // radix select: keys per value of the current byte
var<workgroup> sel: vec2<u32>;  // radix select: the byte's value, keys above it
var<workgroup> n_cand: atomic<u32>;
var<workgroup> n_got: u32;  // n_cand once gathering is done (for workgroupUniformLoad)
var<workgroup> t_best: atomic<u32>;  // top-p: the highest key whose upper mass reaches the goal
var<workgroup> g_val: array<f32, CAP>;  // gathered: logit, in gathering order
var<workgroup> g_id: array<u32, CAP>;
var<workgroup> c_val: array<f32, CAP>;  // the same in id order (then the weights)
var<workgroup> c_id: array<u32, CAP>;
var<workgroup> c_w: array<f32, CAP>;

//!include _reduce.wgsl

// Logit i.
fn lg(i: u32) -> f32 {
    let v = logits[i >> 2u];
    let k = i & 3u;
    return select(select(v.x, v.y, k == 1u), select(v.z, v.w, k == 3u), k >= 2u);
}

// Store logit i (one component: invocations may write neighbours of the same vec4).
fn set_lg(i: u32, l: f32) {
    let a = i >> 2u;
    switch (i & 3u) {
        case 0u: {
            logits[a].x = l;
        }
        case 1u: {
            logits[a].y = l;
        }
        case 2u: {
            logits[a].z = l;
        }
        default: {
            logits[a].w = l;
        }
    }
}

// Order-preserving map f32 -> u32 (larger float, larger key).
fn key(x: f32) -> u32 {
    let b = bitcast<u32>(x);
    return select(b | 0x80000000u, ~b, (b & 0x80000000u) != 0u);
}

// Id i of the penalty history.
fn hist_id(i: u32) -> u32 {
    if (CHAIN) {
        return out[step.hist_at + i];
    }
    return hist[i];
}

fn pcg(v: u32) -> u32 {
    let s = v * 747796405u + 2891336453u;
    let w = ((s >> ((s >> 28u) + 4u)) ^ s) * 277803737u;
    return (w >> 22u) ^ w;
}

// The k-th largest key (counting equal keys), by radix select: a byte at a time from the top,
// the keys that share the bytes chosen so far counted per value of the next byte.
fn kth_key(k: u32, lid: u32) -> u32 {
    var prefix = 0u;
    var want = k;
    for (var round = 0u; round < 4u; round++) {
        let shift = 24u - 8u * round;
        let high = select(~((1u << (shift + 8u)) - 1u), 0u, round == 0u);  // the bytes chosen so far
        atomicStore(&bins[lid], 0u);
        workgroupBarrier();
        for (var i = lid; i < V; i += WG) {
            let kk = key(lg(i));
            if ((kk & high) == prefix) {
                atomicAdd(&bins[(kk >> shift) & 255u], 1u);
            }
        }
        workgroupBarrier();
        if (lid == 0u) {
            var above = 0u;
            var b = 255u;
            loop {
                let c = atomicLoad(&bins[b]);
                if (above + c >= want || b == 0u) {
                    break;
                }
                above += c;
                b -= 1u;
            }
            sel = vec2<u32>(b, above);
        }
        let got = workgroupUniformLoad(&sel);
        prefix |= got.x << shift;
        want -= got.y;
    }
    return prefix;
}

// Gather the logits with key >= thr into c_val / c_id in id order; false (and nothing usable)
// when more than CAP do. Workgroup-uniform result.
fn gathered(thr: u32, lid: u32) -> bool {
    if (lid == 0u) {
        atomicStore(&n_cand, 0u);
    }
    workgroupBarrier();
    for (var i = lid; i < V; i += WG) {
        let l = lg(i);
        if (key(l) >= thr) {
            let s = atomicAdd(&n_cand, 1u);
            if (s < CAP) {
                g_val[s] = l;
                g_id[s] = i;
            }
        }
    }
    workgroupBarrier();
    if (lid == 0u) {
        n_got = atomicLoad(&n_cand);
    }
    let n = workgroupUniformLoad(&n_got);
    if (n > CAP) {
        return false;
    }
    for (var j = lid; j < n; j += WG) {  // rank by id: the ids are distinct
        var r = 0u;
        for (var m = 0u; m < n; m++) {
            r += select(0u, 1u, g_id[m] < g_id[j]);
        }
        c_val[r] = g_val[j];
        c_id[r] = g_id[j];
    }
    workgroupBarrier();
    return true;
}

// Softmax, top-p, min-p and the draw over the n_cand gathered candidates (keys >= thr, in id
// order): the same thresholds as the passes over all logits below, on a few hundred values.
fn few(thr0: u32, mx: f32, lid: u32) {
    let n = workgroupUniformLoad(&n_got);
    let temp = step.temperature;
    for (var j = lid; j < n; j += WG) {
        c_w[j] = exp((c_val[j] - mx) / temp);
    }
    if (lid == 0u) {
        atomicStore(&t_best, thr0);
    }
    workgroupBarrier();
    var thr = thr0;
    if (step.top_p < 1.0) {
        var z = 0.0;
        for (var m = 0u; m < n; m++) {
            z += c_w[m];
        }
        let goal = z * step.top_p;
        for (var j = lid; j < n; j += WG) {  // the mass of the keys at or above candidate j's
            let kj = key(c_val[j]);
            var s = 0.0;
            for (var m = 0u; m < n; m++) {
                if (key(c_val[m]) >= kj) {
                    s += c_w[m];
                }
            }
            if (s >= goal) {
                atomicMax(&t_best, kj);
            }
        }
        workgroupBarrier();
        thr = atomicLoad(&t_best);
    }
    if (step.min_p > 0.0) {
        thr = max(thr, key(mx + temp * log(step.min_p)));
    }
    thr = min(thr, key(mx));  // the best token always survives
    if (lid == 0u) {
        var tot = 0.0;
        for (var m = 0u; m < n; m++) {
            if (key(c_val[m]) >= thr) {
                tot += c_w[m];
            }
        }
        let want = f32(pcg(pcg(step.seed) + step.rng_step) >> 8u) * (1.0 / 16777216.0) * tot;
        var acc = 0.0;
        for (var m = 0u; m < n; m++) {
            if (key(c_val[m]) >= thr) {
                acc += c_w[m];
                if (acc > want) {
                    out[step.tok_out] = c_id[m];
                    break;
                }
            }
        }
    }
}

@compute @workgroup_size(WG)
fn main(@builtin(local_invocation_index) lid: u32) {
    // 0. greedy, nothing penalised: the best of the head's per-workgroup candidates
    if (NC > 0u && step.temperature <= 0.0 && (step.repeat_penalty == 1.0 || step.n_hist == 0u)) {
        var cv = -3.4e38;
        var ci = 0u;
        for (var c = lid; c < NC; c += WG) {
            let v = lg(CAND + 2u * c);
            let i = bitcast<u32>(lg(CAND + 2u * c + 1u));
            if (v > cv || (v == cv && i < ci)) {
                cv = v;
                ci = i;
            }
        }
        let top = wg_argmax(cv, ci, lid);
        if (lid == 0u) {
            out[step.tok_out] = top.i;
        }
        return;
    }

    // 1. repetition penalty, once per distinct id in the history
    let pen = step.repeat_penalty;
    if (pen != 1.0) {
        for (var i = lid; i < step.n_hist; i += WG) {
            let id = hist_id(i);
            var first = id < V;
            for (var j = 0u; j < i; j++) {
                if (hist_id(j) == id) {
                    first = false;
                    break;
                }
            }
            if (first) {
                let l = lg(id);
                set_lg(id, select(l * pen, l / pen, l > 0.0));
            }
        }
    }
    storageBarrier();
    workgroupBarrier();

    // 2. argmax, ties to the lowest id (as numpy)
    var bv = -3.4e38;
    var bi = 0u;
    for (var i = lid; i < (V + 3u) / 4u; i += WG) {
        let l4 = logits[i];
        let i0 = 4u * i;
        if (l4.x > bv) {  // i0 < V always
            bv = l4.x;
            bi = i0;
        }
        if (l4.y > bv && i0 + 1u < V) {
            bv = l4.y;
            bi = i0 + 1u;
        }
        if (l4.z > bv && i0 + 2u < V) {
            bv = l4.z;
            bi = i0 + 2u;
        }
        if (l4.w > bv && i0 + 3u < V) {
            bv = l4.w;
            bi = i0 + 3u;
        }
    }
    let best = wg_argmax(bv, bi, lid);
    let mx = best.v;
    let am = best.i;
    if (lid == 0u) {
        out[step.tok_out] = am;
    }
    storageBarrier();
    workgroupBarrier();
    if (step.temperature <= 0.0) {
        return;
    }
    let temp = step.temperature;
    let kmx = key(mx);

    // 3. top-k: the largest key with at least k logits at or above it
    var thr = 0u;
    if (step.top_k > 0u && step.top_k < V && step.top_k <= KMAX) {
        thr = kth_key(step.top_k, lid);
        if (gathered(thr, lid)) {
            few(thr, mx, lid);
            return;
        }
    } else if (step.top_k > 0u && step.top_k < V) {
        var lo = 0u;
        var hi = kmx;
        loop {
            if (lo >= hi) {
                break;
            }
            let mid = lo + (hi - lo) / 2u + ((hi - lo) & 1u);
            var c = 0u;
            for (var i = lid; i < V; i += WG) {
                c += select(0u, 1u, key(lg(i)) >= mid);
            }
            if (wg_sum_u(c, lid) >= step.top_k) {
                lo = mid;
            } else {
                hi = mid - 1u;
            }
        }
        thr = lo;
    }

    // 4. top-p over the top-k set: the largest key whose upper mass reaches top_p
    if (step.top_p < 1.0) {
        var z = 0.0;
        for (var i = lid; i < V; i += WG) {
            let l = lg(i);
            if (key(l) >= thr) {
                z += exp((l - mx) / temp);
            }
        }
        let goal = wg_sum(z, lid) * step.top_p;
        var lo = thr;
        var hi = kmx;
        loop {
            if (lo >= hi) {
                break;
            }
            let mid = lo + (hi - lo) / 2u + ((hi - lo) & 1u);
            var s = 0.0;
            for (var i = lid; i < V; i += WG) {
                let l = lg(i);
                if (key(l) >= mid) {
                    s += exp((l - mx) / temp);
                }
            }
            if (wg_sum(s, lid) >= goal) {
                lo = mid;
            } else {
                hi = mid - 1u;
            }
        }
        thr = lo;
    }

    // 5. min-p: p >= min_p * p(best)  <=>  l >= mx + T ln(min_p)
    if (step.min_p > 0.0) {
        thr = max(thr, key(mx + temp * log(step.min_p)));
    }
    thr = min(thr, kmx);  // the best token always survives

    // 6. draw: prefix sums over contiguous chunks, then the owning invocation walks its chunk
    let chunk = (V + WG - 1u) / WG;
    let c0 = min(lid * chunk, V);
    let c1 = min(c0 + chunk, V);
    var s = 0.0;
    for (var i = c0; i < c1; i++) {
        let l = lg(i);
        if (key(l) >= thr) {
            s += exp((l - mx) / temp);
        }
    }
    rf[lid] = s;
    workgroupBarrier();
    if (lid == 0u) {
        var acc = 0.0;
        for (var j = 0u; j < WG; j++) {
            let v = rf[j];
            rf[j] = acc;
            acc += v;
        }
        total = acc;
    }
    workgroupBarrier();
    let u = f32(pcg(pcg(step.seed) + step.rng_step) >> 8u) * (1.0 / 16777216.0);
    let want = u * total;
    let base = rf[lid];
    if (s > 0.0 && want >= base && want < base + s) {
        var acc = base;
        var pick = c0;
        for (var i = c0; i < c1; i++) {
            let l = lg(i);
            if (key(l) >= thr) {
                pick = i;
                acc += exp((l - mx) / temp);
                if (acc > want) {
                    break;
                }
            }
        }
        out[step.tok_out] = pick;
    }
}
