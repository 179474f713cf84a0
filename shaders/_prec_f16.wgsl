// Shared helper, the f16 variant of _prec.wgsl (same names; needs `shader-f16`, plan pipelines
// list `f16` in `enable`): f16 inner products (partial sums of one 32-element block, then added
// to f32 accumulators) and an f16 KV cache (half the bytes attention streams).

alias hf = f16;
alias hf4 = vec4<f16>;
alias kv = f16;
alias kv4 = vec4<f16>;

// (bitcast<vec4<f16>>(u) would be exact and free, but naga in wgpu-py 0.32 types its result as
// f32 and rejects it; the round trip through f32 is exact too.)
fn unpack4h(u: vec2<u32>) -> hf4 {
    return vec4<f16>(vec4<f32>(unpack2x16float(u.x), unpack2x16float(u.y)));
}
