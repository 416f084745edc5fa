//! Linear memories. A memory's base address never moves: it is a reservation of address
//! space whose accessible prefix grows in place. With [`BoundsStrategy::GuardPages`] the
//! reservation covers every address a 32-bit index plus a static offset up to
//! [`GUARD_SIZE`] can form, so compiled code needs no bounds checks (see
//! `translate/heap.rs`, the memory sandbox).

use super::sys::{self, Prot};
use std::sync::OnceLock;

/// Bytes in a WebAssembly page.
pub const WASM_PAGE_SIZE: usize = 65536;
/// Guard region after the 4 GiB a 32-bit index can reach: accesses whose static
/// offset + size is at most this need no bounds check in guard-page mode.
pub const GUARD_SIZE: u64 = 2 << 30;
/// Largest number of pages a 32-bit memory can have.
pub const MAX_PAGES: u32 = 65536;
const GUARD_RESERVATION: usize = (1 << 32) + GUARD_SIZE as usize;

/// A memory's current extent as compiled code reads it.
#[repr(C)]
#[derive(Debug)]
pub struct VMMemoryDefinition {
    /// First byte.
    pub base: *mut u8,
    /// Accessible bytes.
    pub current_length: usize,
}

/// How compiled code keeps memory accesses in bounds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BoundsStrategy {
    /// 4 GiB + guard reservation per memory; faults on out-of-bounds accesses.
    GuardPages,
    /// A check before every access (where such reservations are impossible).
    Explicit,
}

/// Why a memory could not be created.
#[derive(Debug, thiserror::Error)]
pub enum MemoryError {
    /// The module needs more than the embedder allows.
    #[error("memory of {min} pages exceeds the limit of {limit} pages")]
    OverLimit {
        /// Initial pages requested.
        min: u32,
        /// The embedder's limit.
        limit: u32,
    },
    /// The kernel refused the reservation.
    #[error("failed to reserve {bytes} bytes of address space: {source}")]
    Reserve {
        /// Bytes requested.
        bytes: usize,
        /// The kernel's answer.
        source: std::io::Error,
    },
}

/// A linear memory: a fixed reservation with a growing accessible prefix.
pub struct LinearMemory {
    def: Box<VMMemoryDefinition>,
    reservation: usize,
    max_pages: u32,
    declared_max: Option<u32>,
}

// SAFETY: the memory exclusively owns its mapping; moving it between threads moves that
// ownership.
unsafe impl Send for LinearMemory {}

impl LinearMemory {
    /// Creates a memory of `min_pages`, growable up to `declared_max` and the embedder's
    /// `limit_pages`, laid out for `strategy`.
    pub fn new(
        min_pages: u32,
        declared_max: Option<u32>,
        limit_pages: u32,
        strategy: BoundsStrategy,
    ) -> Result<Self, MemoryError> {
        let max_pages = declared_max.unwrap_or(MAX_PAGES).min(limit_pages).min(MAX_PAGES);
        if min_pages > max_pages {
            return Err(MemoryError::OverLimit { min: min_pages, limit: max_pages });
        }
        let reservation = match strategy {
            BoundsStrategy::GuardPages => GUARD_RESERVATION,
            BoundsStrategy::Explicit => (max_pages as usize * WASM_PAGE_SIZE).max(sys::page_size()),
        };
        let base = sys::reserve(reservation).map_err(|source| MemoryError::Reserve { bytes: reservation, source })?;
        let mut memory = LinearMemory {
            def: Box::new(VMMemoryDefinition { base, current_length: 0 }),
            reservation,
            max_pages,
            declared_max,
        };
        if memory.grow(min_pages).is_none() {
            return Err(MemoryError::Reserve {
                bytes: min_pages as usize * WASM_PAGE_SIZE,
                source: std::io::Error::last_os_error(),
            });
        }
        Ok(memory)
    }

    /// Grows by `delta_pages`; returns the previous size in pages, or `None` if the new size
    /// would pass the maximum (declared, embedder's, or 4 GiB) or the kernel refuses.
    pub fn grow(&mut self, delta_pages: u32) -> Option<u32> {
        let old = self.pages();
        let new = old.checked_add(delta_pages).filter(|n| *n <= self.max_pages)?;
        let old_len = self.def.current_length;
        let new_len = new as usize * WASM_PAGE_SIZE;
        // SAFETY: the range lies inside our reservation (new_len <= max pages <= reservation)
        // and becomes more accessible, so no reference is invalidated.
        unsafe { sys::protect(self.def.base.add(old_len), new_len - old_len, Prot::ReadWrite) }.ok()?;
        self.def.current_length = new_len;
        Some(old)
    }

    /// Current size in pages.
    pub fn pages(&self) -> u32 {
        (self.def.current_length / WASM_PAGE_SIZE) as u32
    }

    /// The maximum the module declared.
    pub fn declared_max(&self) -> Option<u32> {
        self.declared_max
    }

    /// The definition compiled code reads; its address is stable for the memory's life.
    pub fn definition(&self) -> *mut VMMemoryDefinition {
        &*self.def as *const VMMemoryDefinition as *mut VMMemoryDefinition
    }

    /// The base address (never moves).
    pub fn base(&self) -> *mut u8 {
        self.def.base
    }

    /// The accessible bytes.
    pub fn data(&self) -> &[u8] {
        // SAFETY: the first current_length bytes of the reservation are mapped read-write.
        unsafe { std::slice::from_raw_parts(self.def.base, self.def.current_length) }
    }

    /// The accessible bytes, writable.
    pub fn data_mut(&mut self) -> &mut [u8] {
        // SAFETY: as in `data`; `&mut self` makes the borrow exclusive on the host side.
        unsafe { std::slice::from_raw_parts_mut(self.def.base, self.def.current_length) }
    }
}

impl Drop for LinearMemory {
    fn drop(&mut self) {
        // SAFETY: we own the reservation; nothing uses it after the memory is dropped.
        let _ = unsafe { sys::unmap(self.def.base, self.reservation) };
    }
}

/// Whether this process can reserve a guard-page memory (it cannot under a tight
/// `RLIMIT_AS`, for instance). Checked once.
pub fn guard_reservation_possible() -> bool {
    static POSSIBLE: OnceLock<bool> = OnceLock::new();
    *POSSIBLE.get_or_init(|| match sys::reserve(GUARD_RESERVATION) {
        Ok(ptr) => {
            // SAFETY: the probe reservation was just made and is not used.
            let _ = unsafe { sys::unmap(ptr, GUARD_RESERVATION) };
            true
        }
        Err(_) => false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(strategy: BoundsStrategy) {
        let mut m = LinearMemory::new(1, Some(3), 65536, strategy).unwrap();
        assert_eq!(m.pages(), 1);
        assert_eq!(m.grow(1), Some(1));
        assert_eq!(m.grow(2), None, "past the declared max");
        assert_eq!(m.grow(0), Some(2));
        let len = m.data().len();
        m.data_mut()[len - 1] = 7;
        assert_eq!(m.data()[len - 1], 7);
        assert!(m.data()[..len - 1].iter().all(|b| *b == 0));
        let base = m.base();
        assert_eq!(m.grow(1), Some(2));
        assert_eq!(m.base(), base, "the base never moves");
        // SAFETY: reading the definition of a live memory.
        assert_eq!(unsafe { (*m.definition()).current_length }, 3 * WASM_PAGE_SIZE);

        let mut limited = LinearMemory::new(0, None, 2, strategy).unwrap();
        assert_eq!(limited.grow(2), Some(0));
        assert_eq!(limited.grow(1), None, "past the embedder's limit");
        assert!(matches!(LinearMemory::new(3, None, 2, strategy), Err(MemoryError::OverLimit { .. })));
    }

    #[test]
    fn grow_and_limits_with_guard_pages() {
        assert!(guard_reservation_possible());
        check(BoundsStrategy::GuardPages);
    }

    #[test]
    fn grow_and_limits_with_explicit_checks() {
        check(BoundsStrategy::Explicit);
    }
}
