// x[t] = table[ids[t]] * SCALE: token embedding lookup from a quantized table (dequantized on
// the fly, one 32-element block per invocation). A table too big for one binding comes in row
// chunks, one dispatch each: this one holds rows ROW0 .. ROW0 + M - 1 and writes only the
// tokens whose ids fall there (ROW0 0 and M = n_vocab: the whole table, every token).
//
// binding  name  type                          shape
// 0        step  uniform Step                  n_tokens
// 1        ids   storage read  array<u32>      (tok_in + n_tokens,) token ids from tok_in (uniform)
// 2        wq    storage read  array<vec4u32> blob of the table rows ROW0.. (M rows, K = n_embd)  (_quant.wgsl)
// 3        x     storage rw    array<vec4f32>  (n_tokens, K)
// overrides: QTYPE, M, K, SCALE, ROW0, CHUNKED (ids outside the chunk are skipped, not clamped), WG
// dispatch: (ceil(K / 32 / WG), n_tokens, 1)
//!include _step.wgsl
//!include _prec.wgsl
//!include _quant.wgsl

override WG: u32 = 64u;
override SCALE: f32 = 1.0;
override ROW0: u32 = 0u;  // first table row this blob holds
override CHUNKED: bool = false;  // the table is split: skip ids outside ROW0 .. ROW0 + M - 1

@group(0) @binding(0) var<uniform> step: Step;
@group(0) @binding(1) var<storage, read> ids: array<u32>;
@group(0) @binding(2) var<storage, read> wq: array<vec4<u32>>;
@group(0) @binding(3) var<storage, read_write> x: array<vec4<f32>>;

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let b = gid.x;
    let t = gid.y;
    if (b >= K / 32u || t >= step.n_tokens) {
        return;
    }
    let raw = ids[step.tok_in + t];
    var id = min(raw, M - 1u);
    if (CHUNKED) {
        if (raw < ROW0 || raw >= ROW0 + M) {
            return;
        }
        id = raw - ROW0;
    }
    for (var i = 0u; i < 8u; i++) {
        x[t * (K / 4u) + b * 8u + i] = dq4(id, b, i) * SCALE;
    }
}
