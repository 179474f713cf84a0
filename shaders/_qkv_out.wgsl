// Shared helper (included with `//!include _qkv_out.wgsl`, after _step.wgsl and _prec.wgsl):
// where the attention input's values go (matmul_qkv, matmul_qkv_tiled, qkv_rope). The including
// file declares `rope` (the layer's (cos, sin) table of (n_ctx, HD / 2)), `q` (n_tokens, NQ)
// and the layer's caches `kc`, `vc` (n_ctx, NK) of kv.
// normal RoPE pairs dims (2j, 2j+1), neox pairs (j, j + HD/2); both rotate by table[pos, j].

override NQ: u32;  // q columns: query heads x HD
override NK: u32;  // k (and v) columns: key/value heads x HD
override HD: u32;  // head dimension (even)
override NEOX: bool = false;  // the pairing of RoPE dims

// Which of q | k | v item i of n_q + 2 n_k items belongs to (0, 1, 2) and its index there.
fn qkv_part(i: u32, n_q: u32, n_k: u32) -> vec2<u32> {
    if (i >= n_q + n_k) {
        return vec2<u32>(2u, i - n_q - n_k);
    }
    if (i >= n_q) {
        return vec2<u32>(1u, i - n_q);
    }
    return vec2<u32>(0u, i);
}

// (v0, v1) rotated by the angle whose (cos, sin) is cs.
fn rotate(v0: f32, v1: f32, cs: vec2<f32>) -> vec2<f32> {
    return vec2<f32>(v0 * cs.x - v1 * cs.y, v0 * cs.y + v1 * cs.x);
}

// Store columns c0, c1 of token row t (position pos) in q, k or v (part 0, 1, 2).
fn qkv_put(part: u32, t: u32, pos: u32, c0: u32, c1: u32, v: vec2<f32>) {
    if (part == 0u) {
        q[t * NQ + c0] = v.x;
        q[t * NQ + c1] = v.y;
    } else if (part == 1u) {
        kc[pos * NK + c0] = kv(v.x);
        kc[pos * NK + c1] = kv(v.y);
    } else {
        vc[pos * NK + c0] = kv(v.x);
        vc[pos * NK + c1] = kv(v.y);
    }
}

// Pair p of the permuted blob (values v0 of row p, v1 of row p + M/2) for token row t: q and k
// pairs are the dims one RoPE rotation pairs, v pairs plain adjacent dims.
fn store_pair(p: u32, t: u32, v0: f32, v1: f32) {
    let hh = HD / 2u;
    let part = qkv_part(p, NQ / 2u, NK / 2u);
    let l = part.y;  // pair index inside its part
    let pos = step.n_past + t;
    if (part.x == 2u) {
        qkv_put(2u, t, pos, 2u * l, 2u * l + 1u, vec2<f32>(v0, v1));
        return;
    }
    let h = l / hh;
    let j = l % hh;
    var c0 = h * HD + 2u * j;
    var c1 = c0 + 1u;
    if (NEOX) {
        c0 = h * HD + j;
        c1 = c0 + hh;
    }
    qkv_put(part.x, t, pos, c0, c1, rotate(v0, v1, rope[pos * hh + j]));
}
