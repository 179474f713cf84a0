// Shared helper (included with `//!include _in_plain.wgsl`, after _step.wgsl): the bindings of
// the plain y (+)= W x kernels (matmul, matmul_tiled), as their header tables list them.

@group(0) @binding(0) var<uniform> step: Step;
@group(0) @binding(1) var<storage, read> wq: array<vec4<u32>>;
@group(0) @binding(2) var<storage, read> x: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read_write> y: array<f32>;

// No factor on the input.
fn in_scale(j: u32) -> vec4<f32> {
    return vec4<f32>(1.0);
}
