// Shared helper (included with `//!include _flash.wgsl`): how flash-decoding splits a decode
// step's visible keys over S workgroups per head (attention_flash.wgsl or attention_qkv_flash.wgsl
// write the partials, matmul_attn.wgsl merges them; both must agree, so both take these
// overrides). Partials are (NH, SLOTS, HD / 4 + 1) vec4s: slot s of head h for split s.
// With CUR (attention_qkv_flash) the splits hold the cached keys only and the new token's own
// key, computed in the same dispatch, is one more partial in the slot after the used splits.

override S: u32 = 16u;         // splits per head (the dispatch's y count)
override WINDOW: u32 = 0u;     // sliding window in keys (llama.cpp: masked when p - p_key >= n_swa); 0 = off
override FLASH_WG: u32 = 64u;  // attention_flash's workgroup size: a split holds whole chunks of it
override CUR: bool = false;    // the new key is a partial of its own (attention_qkv_flash.wgsl)

const SLOTS_MAX: u32 = 512u;   // NH * SLOTS bound of the merge's workgroup arrays

// Partial slots per head.
fn flash_slots() -> u32 {
    return S + select(0u, 1u, CUR);
}

struct FlashSpan {
    n_kv: u32,  // one past the last split key
    k0: u32,    // first split key
    c: u32,     // keys per split (a multiple of FLASH_WG)
    used: u32,  // splits that hold keys: 0 ..= S (0 only with CUR, at the first position)
}

// The first key a query at position n_kv - 1 sees.
fn flash_first(n_kv: u32) -> u32 {
    if (WINDOW > 0u && n_kv > WINDOW) {
        return n_kv - WINDOW;
    }
    return 0u;
}

// The split of keys k0 .. n_kv - 1: as few chunks of FLASH_WG per split as spread them over S.
fn flash_keys(k0: u32, n_kv: u32) -> FlashSpan {
    let n = n_kv - k0;
    let per = (n + S - 1u) / S;
    let c = max(FLASH_WG, (per + FLASH_WG - 1u) / FLASH_WG * FLASH_WG);
    return FlashSpan(n_kv, k0, c, (n + c - 1u) / c);
}

// The split of the visible keys of a query at position n_kv - 1.
fn flash_span(n_kv: u32) -> FlashSpan {
    return flash_keys(flash_first(n_kv), n_kv);
}

// The split of the keys a decode step at position n_past sees: with CUR only the cached ones
// (the new key is the extra partial), else all of them.
fn flash_split(n_past: u32) -> FlashSpan {
    if (CUR) {
        return flash_keys(flash_first(n_past + 1u), n_past);
    }
    return flash_span(n_past + 1u);
}

// Partials a decode step at position n_past leaves per head (slots 0 .. count - 1).
fn flash_parts(n_past: u32) -> u32 {
    return flash_split(n_past).used + select(0u, 1u, CUR);
}
