//! The warm path's code, mapped ahead: a process that will run a warm path later (a server's
//! slot, a prepared child) maps the pages of that code while it waits, instead of faulting
//! them in one by one — about a hundred faults per process — once a run waits on it.
//!
//! The warm path is the stretch of `.text` between two marker functions, which
//! `runner/link-order.txt` places first and last of the code warm runs touch
//! (`bench/link_order.sh` writes them there). A build whose order file lacks them (or any
//! other target) places them anywhere: the stretch is then checked and ignored.

/// First of the warm path's functions. (The two markers return different values so that the
/// linker cannot fold them into one.)
#[no_mangle]
#[inline(never)]
pub extern "C" fn sandboxrun_warm_text_begin() -> u32 {
    0x5741_524d
}

/// Last of the warm path's functions.
#[no_mangle]
#[inline(never)]
pub extern "C" fn sandboxrun_warm_text_end() -> u32 {
    0x454e_4421
}

/// Longest stretch mapped: a bound in case the markers are misplaced.
const MAX_WARM_TEXT: usize = 4 << 20;

/// Maps the warm path's pages (already in the page cache, or read now); failures are
/// ignored (the pages then fault in when used, as they would anyway).
pub fn map_ahead() {
    if cfg!(no_prefault) {
        return;
    }
    let page = 4096usize;
    let begin = sandboxrun_warm_text_begin as *const () as usize & !(page - 1);
    let end = (sandboxrun_warm_text_end as *const () as usize + page) & !(page - 1);
    if end <= begin || end - begin > MAX_WARM_TEXT {
        return;
    }
    // SAFETY: MADV_POPULATE_READ only faults in pages of an existing mapping (this binary's
    // code), changing no contents or protections.
    unsafe { libc::madvise(begin as *mut libc::c_void, end - begin, libc::MADV_POPULATE_READ) };
}

#[cfg(test)]
mod tests {
    /// The markers are two functions at two addresses: folded into one (identical code
    /// folding, or equal bodies), the warm stretch would be empty.
    #[test]
    fn mapping_ahead_is_harmless() {
        super::map_ahead();
        let begin = std::hint::black_box(super::sandboxrun_warm_text_begin as *const ()) as usize;
        let end = std::hint::black_box(super::sandboxrun_warm_text_end as *const ()) as usize;
        assert_ne!(begin, end, "the two markers were folded into one function");
    }
}
