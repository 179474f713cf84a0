// Shared helper (included with `//!include _step.wgsl`): the per-step uniform block. The field
// order and offsets are the plan's `uniform.fields`; both executors pack it by name.
struct Step {
    n_past: u32,          // tokens already in the KV cache (position of the first new token)
    n_tokens: u32,        // tokens in this batch
    seed: u32,            // sampling: seed of the random stream
    rng_step: u32,        // sampling: index of this draw in the stream
    temperature: f32,     // sampling: 0 = greedy
    top_k: u32,           // sampling: 0 = off
    top_p: f32,           // sampling: 1 = off
    min_p: f32,           // sampling: 0 = off
    repeat_penalty: f32,  // sampling: 1 = off
    n_hist: u32,          // sampling: ids in the penalty history buffer
    tok_in: u32,          // embed.wgsl: the ids start here in its ids buffer (0 but in a decode chain)
    tok_out: u32,         // sample.wgsl: where the chosen id goes in its out buffer (likewise)
    hist_at: u32,         // sample.wgsl CHAIN: the penalty history starts here in out
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}
