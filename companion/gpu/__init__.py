"""The model on the GPU: WGSL kernels (shaders/), the plan that wires them (plan, builder) and
the native wgpu-py executor (native). The browser executor runs the same plan and shaders."""
