// Shared helper (included with `//!include _flash.wgsl`): how flash-decoding splits a decode
// step's visible keys over S workgroups per head (attention_flash.wgsl writes the partials,
// matmul_attn.wgsl merges them; both must agree, so both take these overrides).

override S: u32 = 16u;         // splits per head (the dispatch's y count)
override WINDOW: u32 = 0u;     // sliding window in keys (llama.cpp: masked when p - p_key >= n_swa); 0 = off
override FLASH_WG: u32 = 64u;  // attention_flash's workgroup size: a split holds whole chunks of it

struct FlashSpan {
    n_kv: u32,  // keys up to and including the new token's
    k0: u32,    // first visible key
    c: u32,     // keys per split (a multiple of FLASH_WG)
    used: u32,  // splits that hold keys: 1 ..= S
}

// The split of keys k0 .. n_kv - 1: as few chunks of FLASH_WG per split as spread them over S.
fn flash_span(n_kv: u32) -> FlashSpan {
    var k0 = 0u;
    if (WINDOW > 0u && n_kv > WINDOW) {
        k0 = n_kv - WINDOW;
    }
    let n = n_kv - k0;
    let per = (n + S - 1u) / S;
    let c = max(FLASH_WG, (per + FLASH_WG - 1u) / FLASH_WG * FLASH_WG);
    return FlashSpan(n_kv, k0, c, (n + c - 1u) / c);
}
