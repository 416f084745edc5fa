//! Linear memories. A memory's base address never moves: it is a reservation of address
//! space whose accessible (read-write) prefix grows in place; the rest stays `PROT_NONE`.
//!
//! - [`BoundsStrategy::GuardPages`]: the reservation covers every address a 32-bit index plus
//!   a static offset up to [`GUARD_SIZE`] can form (4 GiB + [`GUARD_SIZE`]), so compiled code
//!   needs no bounds checks: an access past the accessible prefix faults, and the trap
//!   handler (`traps.rs`) turns the fault into a trap (see `translate/heap.rs`, the memory
//!   sandbox).
//! - [`BoundsStrategy::Explicit`]: the reservation covers only the maximum the memory can
//!   grow to (so the base still never moves); compiled code checks every access against
//!   [`VMMemoryDefinition::current_length`].

use super::sys::{self, Prot};
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::ptr::NonNull;
use std::sync::OnceLock;

/// Bytes in a WebAssembly page.
pub const WASM_PAGE_SIZE: usize = 65536;
/// Bytes of guard region after the 4 GiB a 32-bit index can reach: accesses whose static
/// offset + size is at most this need no bounds check in guard-page mode.
pub const GUARD_SIZE: u64 = 2 << 30;
/// Largest number of pages a 32-bit memory can have (4 GiB).
pub const MAX_PAGES: u32 = 65536;
/// Address space a guard-page memory reserves.
const GUARD_RESERVATION: usize = (1 << 32) + GUARD_SIZE as usize;

/// A memory's current extent as compiled code reads it: `base` at offset 0,
/// `current_length` at offset 8 (`vmctx::MEMORY_LENGTH`).
#[repr(C)]
#[derive(Debug)]
pub struct VMMemoryDefinition {
    /// First byte.
    pub base: *mut u8,
    /// Accessible bytes.
    pub current_length: usize,
}

// Compiled code reads these fields at fixed offsets.
const _: () = assert!(std::mem::offset_of!(VMMemoryDefinition, base) == 0);
const _: () = assert!(std::mem::offset_of!(VMMemoryDefinition, current_length) == 8);

/// How compiled code keeps memory accesses in bounds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BoundsStrategy {
    /// A 4 GiB + guard reservation per memory; out-of-bounds accesses fault.
    GuardPages,
    /// A check before every access (where such reservations are impossible).
    Explicit,
}

/// Why a memory could not be created.
#[derive(Debug, thiserror::Error)]
pub enum MemoryError {
    /// The initial size is above the maximum (declared, embedder's, or 4 GiB).
    #[error("memory of {min} pages exceeds the limit of {limit} pages")]
    OverLimit {
        /// Initial pages requested.
        min: u32,
        /// The smallest of the declared maximum, the embedder's limit and 65536 pages.
        limit: u32,
    },
    /// The kernel refused the reservation of address space.
    #[error("failed to reserve {bytes} bytes of address space: {source}")]
    Reserve {
        /// Bytes requested.
        bytes: usize,
        /// The kernel's answer.
        source: io::Error,
    },
    /// The memory's initial image could not be mapped or read.
    #[error("failed to initialize memory from its image: {0}")]
    Image(io::Error),
    /// The kernel refused to make the initial pages accessible.
    #[error("failed to commit {bytes} bytes of memory: {source}")]
    Commit {
        /// Bytes requested.
        bytes: usize,
        /// The kernel's answer.
        source: io::Error,
    },
}

/// A linear memory: a fixed reservation with a growing accessible prefix. Dropping it unmaps
/// the reservation.
pub struct LinearMemory {
    /// The definition compiled code reads, in its own allocation (from `Box::leak`) so its
    /// address is stable and raw pointers to it stay valid however the memory moves.
    def: NonNull<VMMemoryDefinition>,
    /// Bytes reserved at `def.base`.
    reservation: usize,
    /// The most pages the memory may grow to.
    max_pages: u32,
    /// The maximum the module declared.
    declared_max: Option<u32>,
    /// Whether a `memory.grow` was refused by the embedder's limit (or the kernel), not by
    /// the module's own declared maximum: graders call such a run's end a memory limit.
    refused_at_limit: bool,
    /// Whether its addresses are 64-bit (part of its type, for import matching; the memory
    /// itself is the same either way).
    pub memory64: bool,
}

// SAFETY: the memory exclusively owns its mapping and definition; moving it between threads
// moves that ownership. (It is not `Sync`: compiled code writes the data without locks.)
unsafe impl Send for LinearMemory {}

impl LinearMemory {
    /// Creates a zero-filled memory of `min_pages`, growable up to the smallest of
    /// `declared_max`, the embedder's `limit_pages` and 65536 pages, laid out for `strategy`.
    ///
    /// # Errors
    /// [`MemoryError::OverLimit`] if `min_pages` is above that maximum;
    /// [`MemoryError::Reserve`] / [`MemoryError::Commit`] if the kernel refuses the mapping.
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
            // At least one page, so even a 0-page memory has a real, unique base address.
            BoundsStrategy::Explicit => (max_pages as usize * WASM_PAGE_SIZE).max(sys::page_size()),
        };
        let base = sys::reserve(reservation).map_err(|source| MemoryError::Reserve { bytes: reservation, source })?;
        let def = Box::new(VMMemoryDefinition { base, current_length: 0 });
        // From here on, dropping `memory` unmaps the reservation and frees the definition.
        let mut memory = LinearMemory {
            def: NonNull::from(Box::leak(def)),
            reservation,
            max_pages,
            declared_max,
            refused_at_limit: false,
            memory64: false,
        };
        let bytes = min_pages as usize * WASM_PAGE_SIZE;
        memory.set_accessible(bytes).map_err(|source| MemoryError::Commit { bytes, source })?;
        Ok(memory)
    }

    /// Grows by `delta_pages`; returns the previous size in pages, or `None` if the new size
    /// would pass the maximum (declared, embedder's, or 4 GiB) or the kernel refuses. New
    /// pages read as zero; the base address does not change. `grow(0)` returns the size.
    pub fn grow(&mut self, delta_pages: u32) -> Option<u32> {
        let old = self.pages();
        let grown = old
            .checked_add(delta_pages)
            .filter(|n| *n <= self.max_pages)
            .and_then(|new| self.set_accessible(new as usize * WASM_PAGE_SIZE).ok());
        if grown.is_none() {
            self.refused(delta_pages);
        }
        grown.map(|()| old)
    }

    /// Records that growing by `delta_pages` was refused (here, or by the store's limit on
    /// all its memories together): within what the module declared (or with no maximum), the
    /// embedder's limit or the kernel said no.
    pub fn refused(&mut self, delta_pages: u32) {
        let wanted = u64::from(self.pages()) + u64::from(delta_pages);
        self.refused_at_limit |= self.declared_max.is_none_or(|max| wanted <= u64::from(max));
    }

    /// Whether a `memory.grow` within the module's declared maximum was refused (by the
    /// embedder's limit, or the kernel).
    pub fn grow_refused_at_limit(&self) -> bool {
        self.refused_at_limit
    }

    /// Makes the first `new_len >= current_length` bytes read-write and records the length.
    fn set_accessible(&mut self, new_len: usize) -> io::Result<()> {
        let def = self.def_mut();
        debug_assert!(new_len >= def.current_length);
        // SAFETY: `current_length..new_len` lies inside our reservation (`new_len` is at most
        // `max_pages` pages, which the reservation covers) and is page-aligned (wasm pages are
        // multiples of OS pages); it becomes more accessible, so no reference is invalidated.
        unsafe { sys::protect(def.base.add(def.current_length), new_len - def.current_length, Prot::ReadWrite) }?;
        def.current_length = new_len;
        Ok(())
    }

    /// Maps `len` bytes of the file `fd` from `offset` over the start of the memory, private
    /// and copy-on-write: the first `len` bytes of the memory then read as the file's bytes,
    /// and the guest's writes stay its own. The same as [`LinearMemory::map_image_at`] at
    /// memory offset 0.
    ///
    /// # Errors
    /// As for [`LinearMemory::map_image_at`].
    ///
    /// # Safety
    /// As for [`LinearMemory::map_image_at`].
    pub unsafe fn map_image(&mut self, fd: BorrowedFd<'_>, offset: u64, len: usize) -> io::Result<()> {
        // SAFETY: the caller's contract, passed on.
        unsafe { self.map_image_at(0, fd, offset, len) }
    }

    /// Maps `len` bytes of the file `fd` from `offset` over the memory's bytes
    /// `memory_offset..memory_offset + len` (`mmap` with `MAP_PRIVATE | MAP_FIXED`, read-write):
    /// they then read as the file's bytes, and writes are private copies. The range stays
    /// inside the reservation and accessible, so growth and bounds are unchanged. `len == 0`
    /// does nothing. If the mapping fails the range is zero-filled anonymous memory again,
    /// never a hole in the reservation.
    ///
    /// # Errors
    /// `InvalidInput` unless `memory_offset`, `offset` and `len` are multiples of the page size
    /// and the range lies inside the accessible bytes; otherwise the kernel's answer (e.g.
    /// `EACCES` for a descriptor not open for reading).
    ///
    /// # Safety
    /// The file's bytes `offset..offset + len` must exist and must not change (nor the file
    /// shrink) while the memory lives: unwritten pages read through to the file, so a change
    /// would change the memory under its readers, and a truncation would make them fault (a
    /// sealed memfd, or a file nobody writes in place, keeps this).
    pub unsafe fn map_image_at(
        &mut self,
        memory_offset: usize,
        fd: BorrowedFd<'_>,
        offset: u64,
        len: usize,
    ) -> io::Result<()> {
        if len == 0 {
            return Ok(());
        }
        let page = sys::page_size();
        let inside = memory_offset.checked_add(len).is_some_and(|end| end <= self.def().current_length);
        if !inside
            || !memory_offset.is_multiple_of(page)
            || !len.is_multiple_of(page)
            || !offset.is_multiple_of(page as u64)
        {
            return Err(io::Error::from(io::ErrorKind::InvalidInput));
        }
        // SAFETY: the range lies inside our reservation's accessible prefix (checked), page
        // aligned (checked); `&mut self` means no Rust reference into the memory is live; the
        // file's stability is the caller's contract.
        let at = unsafe { self.def().base.add(memory_offset) };
        // SAFETY: as above.
        let mapped = unsafe { sys::map_file_private(at, len, fd.as_raw_fd(), offset) };
        if mapped.is_err() {
            // A failed MAP_FIXED may have unmapped the range: put zero pages back, so the
            // reservation never has a hole another mapping could take.
            // SAFETY: the same range as above, ours, page-aligned, unreferenced.
            unsafe { sys::map_zero_fixed(at, len) }?;
        }
        mapped
    }

    fn def(&self) -> &VMMemoryDefinition {
        // SAFETY: `def` comes from `Box::leak` and is freed only in `Drop`.
        unsafe { self.def.as_ref() }
    }

    fn def_mut(&mut self) -> &mut VMMemoryDefinition {
        // SAFETY: as in `def`; `&mut self` makes the access exclusive on the host side, and
        // compiled code only reads the definition, never while the host mutates it.
        unsafe { self.def.as_mut() }
    }

    /// Current size in pages.
    pub fn pages(&self) -> u32 {
        (self.def().current_length / WASM_PAGE_SIZE) as u32
    }

    /// The maximum the module declared.
    pub fn declared_max(&self) -> Option<u32> {
        self.declared_max
    }

    /// The definition compiled code reads; its address is stable for the memory's life.
    pub fn definition(&self) -> *mut VMMemoryDefinition {
        self.def.as_ptr()
    }

    /// The base address; it never moves, in either strategy.
    pub fn base(&self) -> *mut u8 {
        self.def().base
    }

    /// The accessible bytes (`current_length` of them).
    pub fn data(&self) -> &[u8] {
        let def = self.def();
        // SAFETY: the first current_length bytes of the reservation are mapped read-write and
        // stay so while `self` is borrowed (only `grow`, taking `&mut self`, changes them).
        unsafe { std::slice::from_raw_parts(def.base, def.current_length) }
    }

    /// The accessible bytes, writable.
    pub fn data_mut(&mut self) -> &mut [u8] {
        let def = self.def();
        // SAFETY: as in `data`; `&mut self` makes the borrow exclusive on the host side.
        unsafe { std::slice::from_raw_parts_mut(def.base, def.current_length) }
    }
}

impl Drop for LinearMemory {
    fn drop(&mut self) {
        // SAFETY: we own the reservation; nothing uses it after the memory is dropped.
        let _ = unsafe { sys::unmap(self.def().base, self.reservation) };
        // SAFETY: `def` came from `Box::leak` and is freed exactly once, here.
        drop(unsafe { Box::from_raw(self.def.as_ptr()) });
    }
}

/// Whether this process can reserve a guard-page memory (it cannot under a tight
/// `RLIMIT_AS`, for instance). Tried once; the answer is cached.
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

    fn grow_within_declared_max(strategy: BoundsStrategy) {
        let mut m = LinearMemory::new(1, Some(3), 65536, strategy).unwrap();
        assert_eq!(m.pages(), 1);
        assert_eq!(m.declared_max(), Some(3));
        assert_eq!(m.grow(1), Some(1));
        assert_eq!(m.grow(2), None, "past the declared max");
        assert_eq!(m.grow(u32::MAX), None, "overflowing page count");
        assert_eq!(m.grow(0), Some(2), "delta 0 returns the size");
        assert_eq!(m.pages(), 2);
        let len = m.data().len();
        assert_eq!(len, 2 * WASM_PAGE_SIZE);
        m.data_mut()[len - 1] = 7;
        assert_eq!(m.data()[len - 1], 7, "the last byte is writable");
        assert!(m.data()[..len - 1].iter().all(|b| *b == 0), "initially zero");
        let base = m.base();
        let def = m.definition();
        assert_eq!(m.grow(1), Some(2));
        assert_eq!(m.base(), base, "the base never moves");
        assert_eq!(m.definition(), def, "the definition never moves");
        assert!(m.data()[len..].iter().all(|b| *b == 0), "grown pages are zero");
        // Moving the memory keeps the definition where compiled code finds it.
        let moved = Box::new(m);
        assert_eq!(moved.definition(), def);
        // SAFETY: reading the definition of a live memory.
        let d = unsafe { &*moved.definition() };
        assert_eq!((d.base, d.current_length), (base, 3 * WASM_PAGE_SIZE));
    }

    fn limits(strategy: BoundsStrategy) {
        let mut limited = LinearMemory::new(0, None, 2, strategy).unwrap();
        assert_eq!(limited.pages(), 0);
        assert!(limited.data().is_empty());
        assert!(!limited.base().is_null());
        assert_eq!(limited.grow(2), Some(0));
        assert_eq!(limited.grow(1), None, "past the embedder's limit");
        assert_eq!(limited.pages(), 2);

        let mut zero = LinearMemory::new(0, Some(0), 65536, strategy).unwrap();
        assert_eq!(zero.grow(0), Some(0));
        assert_eq!(zero.grow(1), None);

        let err = LinearMemory::new(3, None, 2, strategy).err().expect("over the limit");
        assert_eq!(err.to_string(), "memory of 3 pages exceeds the limit of 2 pages");
        assert!(matches!(LinearMemory::new(4, Some(3), 65536, strategy), Err(MemoryError::OverLimit { .. })));

        let mut full = LinearMemory::new(0, None, 65536, strategy).unwrap();
        assert_eq!(full.grow(65536), Some(0), "4 GiB is reachable (address space only)");
        assert_eq!(full.grow(1), None, "past 4 GiB");
    }

    /// A memfd of `pages` OS pages, page `p` filled with byte `p + 1`.
    fn image_file(pages: usize) -> std::fs::File {
        use std::io::Write;
        use std::os::fd::FromRawFd;
        // SAFETY: memfd_create takes a NUL-terminated name and flags.
        let fd = unsafe { libc::memfd_create(c"image".as_ptr(), libc::MFD_CLOEXEC) };
        assert!(fd >= 0);
        // SAFETY: a fresh descriptor nothing else owns.
        let mut file = unsafe { std::fs::File::from_raw_fd(fd) };
        let page = sys::page_size();
        for p in 0..pages {
            file.write_all(&vec![p as u8 + 1; page]).unwrap();
        }
        file
    }

    fn map_image(strategy: BoundsStrategy) {
        use std::os::fd::{AsFd, FromRawFd};
        use std::os::unix::fs::FileExt;
        let page = sys::page_size();
        let file = image_file(3);
        let mut m = LinearMemory::new(1, Some(4), 65536, strategy).unwrap();
        // SAFETY: the memfd is ours and nobody writes it while `m` lives (the write below is
        // after the checks that read through the mapping, and only to test CoW isolation).
        unsafe { m.map_image(file.as_fd(), page as u64, 2 * page) }.unwrap();
        assert!(m.data()[..page].iter().all(|b| *b == 2));
        assert!(m.data()[page..2 * page].iter().all(|b| *b == 3));
        assert!(m.data()[2 * page..].iter().all(|b| *b == 0), "the rest stays zero");
        // SAFETY: as above.
        unsafe { m.map_image_at(4 * page, file.as_fd(), 0, page) }.unwrap();
        assert!(m.data()[4 * page..5 * page].iter().all(|b| *b == 1));
        // Writes are private: the file keeps its bytes.
        m.data_mut()[5] = 0x77;
        let mut b = [0u8; 1];
        file.read_exact_at(&mut b, page as u64 + 5).unwrap();
        assert_eq!((m.data()[5], b[0]), (0x77, 2));
        // Growth after a mapping, and the memory keeps its base.
        let base = m.base();
        assert_eq!(m.grow(1), Some(1));
        assert_eq!(m.base(), base);
        assert!(m.data()[WASM_PAGE_SIZE..].iter().all(|b| *b == 0));
        assert_eq!(m.data()[5], 0x77);
        // Refused: unaligned, outside the accessible bytes, empty does nothing.
        let fd = file.as_fd();
        // SAFETY: each is refused by the checks before any mapping.
        unsafe {
            for (at, offset, len) in [(1, 0, page), (0, 1, page), (0, 0, page + 1), (2 * WASM_PAGE_SIZE, 0, page)] {
                let err = m.map_image_at(at, fd, offset, len).unwrap_err();
                assert_eq!(err.kind(), io::ErrorKind::InvalidInput, "{at} {offset} {len}");
            }
            m.map_image_at(usize::MAX, fd, 0, 0).unwrap();
        }
        // A descriptor the kernel cannot map (a pipe) leaves zero pages, not a hole.
        let mut fds = [0; 2];
        // SAFETY: pipe writes two descriptors into the array.
        assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
        // SAFETY: the two fresh descriptors are ours.
        let (r, w) = unsafe { (std::fs::File::from_raw_fd(fds[0]), std::fs::File::from_raw_fd(fds[1])) };
        // SAFETY: the mapping fails; nothing reads through a pipe.
        assert!(unsafe { m.map_image_at(0, r.as_fd(), 0, page) }.is_err());
        assert!(m.data()[..page].iter().all(|b| *b == 0), "zero pages back after a failed map");
        m.data_mut()[0] = 1;
        drop((r, w));
    }

    #[test]
    fn map_image_with_guard_pages() {
        map_image(BoundsStrategy::GuardPages);
    }

    #[test]
    fn map_image_with_explicit_checks() {
        map_image(BoundsStrategy::Explicit);
    }

    #[test]
    fn grow_and_limits_with_guard_pages() {
        assert!(guard_reservation_possible());
        grow_within_declared_max(BoundsStrategy::GuardPages);
        limits(BoundsStrategy::GuardPages);
    }

    #[test]
    fn grow_and_limits_with_explicit_checks() {
        grow_within_declared_max(BoundsStrategy::Explicit);
        limits(BoundsStrategy::Explicit);
    }
}
