// Shared helper (included with `//!include _in_normed.wgsl`, after _step.wgsl): the inputs of
// the kernels that multiply rmsnorm(x) * g by a weight blob (matmul_norm, matmul_swiglu,
// matmul_qkv and their tiled forms), bindings 0..3 as their header tables list them. Each
// kernel declares its outputs from binding 4 on.

@group(0) @binding(0) var<uniform> step: Step;
@group(0) @binding(1) var<storage, read> wq: array<vec4<u32>>;
@group(0) @binding(2) var<storage, read> x: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read> g: array<vec4<f32>>;

// The factor on input element group j (the norm weight).
fn in_scale(j: u32) -> vec4<f32> {
    return g[j];
}
