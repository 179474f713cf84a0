// Shared helper (included with `//!include _act.wgsl`): the gated feed-forward's activation,
// act(gate) * up (matmul_swiglu and matmul_swiglu_tiled).

override ACT: u32 = 0u;  // 0: silu (SwiGLU), 1: GELU, tanh approximation (GeGLU: Gemma)

// act(a). GELU's tanh form is written through the logistic function,
// 0.5 (1 + tanh(u)) = 1 / (1 + exp(-2u)): no tanh of a large argument (NaN on some
// implementations), and exp overflowing to +inf gives the right limit 0.
fn act(a: f32) -> f32 {
    if (ACT == 1u) {
        let u = 0.7978845608028654 * (a + 0.044715 * a * a * a);  // sqrt(2 / pi) (a + 0.044715 a^3)
        return a / (1.0 + exp(-2.0 * u));
    }
    return a / (1.0 + exp(-a));
}
