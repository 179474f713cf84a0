// Shared helper (included with `//!include _prec.wgsl`): the arithmetic type of the matmul inner
// products and the element type of the KV cache, f32 here (no optional feature). The plan swaps
// in _prec_f16.wgsl (same names, f16; needs `shader-f16`) where the adapter offers shader-f16.

alias hf = f32;          // inner products: dequantized weights times inputs, summed per block
alias hf4 = vec4<f32>;
alias kv = f32;          // KV cache element
alias kv4 = vec4<f32>;

// Four f16 values packed in two words, as hf4.
fn unpack4h(u: vec2<u32>) -> hf4 {
    return vec4<f32>(unpack2x16float(u.x), unpack2x16float(u.y));
}
