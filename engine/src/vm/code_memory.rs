//! Executable code. The image is copied into fresh read-write pages, or mapped privately from
//! a file, patched (relocations), then made read+execute: it is never writable and executable
//! at once (W^X). A mapped file's pages are shared with the page cache until patched: only
//! the pages holding relocations are copied.

use super::sys::{self, Prot};

/// Why code could not be mapped. `E` is the error type of the caller's patch callback.
#[derive(Debug, thiserror::Error)]
pub enum CodeMemoryError<E> {
    /// The patch callback failed; its error is passed through unchanged.
    #[error("failed to apply relocations: {0}")]
    Patch(E),
    /// The kernel refused a mapping or protection change.
    #[error("failed to map {len} bytes of code: {source}")]
    Map {
        /// Bytes of the mapping.
        len: usize,
        /// The kernel's answer.
        source: std::io::Error,
    },
}

/// Machine code mapped read+execute. Dropping it unmaps the code: whoever runs it must keep
/// it alive.
pub struct CodeMemory {
    base: *mut u8,
    mapped: usize,
    len: usize,
}

// SAFETY: the mapping is immutable after construction and owned by this value.
unsafe impl Send for CodeMemory {}
// SAFETY: as above: shared access only reads or executes.
unsafe impl Sync for CodeMemory {}

/// `int3`: fills the rest of the last page, so a stray jump past the code stops loudly.
const PADDING: u8 = 0xcc;

impl CodeMemory {
    /// Maps `code.len()` bytes (rounded up to whole pages, at least one) read-write, copies
    /// `code`, lets `patch(bytes, base_address)` apply relocations to the copy (`bytes` is
    /// exactly `code.len()` long, `base_address` where its first byte lives), then makes the
    /// pages read+execute. Empty code is allowed (no functions).
    ///
    /// # Errors
    /// [`CodeMemoryError::Patch`] with the callback's error, or [`CodeMemoryError::Map`] if
    /// the kernel refuses the mapping or a protection change. Nothing stays mapped on error.
    pub fn new<E>(
        code: &[u8],
        patch: impl FnOnce(&mut [u8], usize) -> Result<(), E>,
    ) -> Result<Self, CodeMemoryError<E>> {
        let page = sys::page_size();
        let mapped = code.len().next_multiple_of(page).max(page);
        let map_err = |source| CodeMemoryError::Map { len: mapped, source };
        let base = sys::reserve(mapped).map_err(map_err)?;
        // From here on, dropping `memory` unmaps the pages.
        let memory = CodeMemory { base, mapped, len: code.len() };
        // SAFETY: our fresh mapping; no references into it exist yet.
        unsafe { sys::protect(base, mapped, Prot::ReadWrite) }.map_err(map_err)?;
        // SAFETY: the `mapped` bytes are now writable and exclusively ours.
        let all = unsafe { std::slice::from_raw_parts_mut(base, mapped) };
        let (bytes, padding) = all.split_at_mut(code.len());
        bytes.copy_from_slice(code);
        padding.fill(PADDING);
        patch(bytes, base as usize).map_err(CodeMemoryError::Patch)?;
        // SAFETY: `all` (and `bytes`) are not used after this point. x86-64 keeps instruction
        // fetch coherent with these stores, so no cache flush is needed.
        unsafe { sys::protect(base, mapped, Prot::ReadExec) }.map_err(map_err)?;
        Ok(memory)
    }

    /// Maps `len` bytes of `file` from `offset` (page-aligned) privately, read-write, lets
    /// `patch(bytes, base_address)` apply relocations (only the pages it writes are copied),
    /// then makes the pages read+execute. The rest of the last page is the file's bytes after
    /// the code.
    ///
    /// # Errors
    /// As for [`CodeMemory::new`]; [`CodeMemoryError::Map`] also when the kernel refuses to
    /// make a mapping of this file executable (a `noexec` mount): copy the bytes instead.
    /// Nothing stays mapped on error.
    ///
    /// # Safety
    /// The file's bytes in `offset..offset + len` rounded up to a page must exist and must not
    /// change while the code memory lives (pages not written read through to the file).
    pub unsafe fn map_file<E>(
        file: &std::fs::File,
        offset: u64,
        len: usize,
        patch: impl FnOnce(&mut [u8], usize) -> Result<(), E>,
    ) -> Result<Self, CodeMemoryError<E>> {
        use std::os::fd::AsRawFd;
        let page = sys::page_size();
        let mapped = len.next_multiple_of(page).max(page);
        let map_err = |source| CodeMemoryError::Map { len: mapped, source };
        let base = sys::reserve(mapped).map_err(map_err)?;
        // From here on, dropping `memory` unmaps the pages.
        let memory = CodeMemory { base, mapped, len };
        // SAFETY: our fresh reservation, no references into it; the file's part is the
        // caller's contract.
        // Not populated: pages fault in as the program first runs them (mapping all of them at
        // once cost CPython 20% more CPU time than the faults of the pages it runs).
        unsafe { sys::map_file_private(base, mapped, file.as_raw_fd(), offset) }.map_err(map_err)?;
        // SAFETY: the `len` bytes are now mapped writable and exclusively ours.
        let bytes = unsafe { std::slice::from_raw_parts_mut(base, len) };
        patch(bytes, base as usize).map_err(CodeMemoryError::Patch)?;
        // SAFETY: `bytes` is not used after this point (x86-64 needs no cache flush).
        unsafe { sys::protect(base, mapped, Prot::ReadExec) }.map_err(map_err)?;
        Ok(memory)
    }

    /// Address of the first byte.
    pub fn base(&self) -> *const u8 {
        self.base
    }

    /// Length of the code in bytes (without the padding to a whole page).
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether there is no code.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Whether `pc` points into the code.
    pub fn contains(&self, pc: usize) -> bool {
        let base = self.base as usize;
        pc >= base && pc - base < self.len
    }
}

impl Drop for CodeMemory {
    fn drop(&mut self) {
        // SAFETY: we own the mapping; whoever runs the code holds the code memory alive.
        let _ = unsafe { sys::unmap(self.base, self.mapped) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The permissions `/proc/self/maps` lists for the mapping containing `addr` (adjacent
    /// mappings with equal permissions may be merged, so match by range, not start).
    fn permissions_at(addr: usize) -> String {
        let maps = std::fs::read_to_string("/proc/self/maps").unwrap();
        maps.lines()
            .find_map(|line| {
                let (range, rest) = line.split_once(' ')?;
                let (start, end) = range.split_once('-')?;
                let (start, end) = (usize::from_str_radix(start, 16).ok()?, usize::from_str_radix(end, 16).ok()?);
                (start <= addr && addr < end).then(|| rest[..4].to_string())
            })
            .expect("mapping listed")
    }

    #[test]
    fn runs_patched_code_and_is_not_writable() {
        // mov eax, imm32 ; ret — the immediate is "relocated" by the patch callback.
        let code = [0xb8, 0, 0, 0, 0, 0xc3];
        let mut seen_base = 0;
        let mem = CodeMemory::new(&code, |bytes, base| {
            assert_eq!(bytes.len(), code.len());
            seen_base = base;
            bytes[1..5].copy_from_slice(&42u32.to_le_bytes());
            Ok::<(), ()>(())
        })
        .unwrap();
        assert_eq!(seen_base, mem.base() as usize);
        assert_eq!(mem.len(), 6);
        // SAFETY: the mapped bytes are a complete function with the C ABI.
        let f: extern "C" fn() -> u32 = unsafe { std::mem::transmute(mem.base()) };
        assert_eq!(f(), 42);
        assert!(mem.contains(mem.base() as usize + 5) && !mem.contains(mem.base() as usize + 6));
        assert!(!mem.contains(mem.base() as usize - 1));
        assert_eq!(permissions_at(mem.base() as usize), "r-xp");
    }

    #[test]
    fn empty_code_maps() {
        let mem = CodeMemory::new(&[], |bytes, _| {
            assert!(bytes.is_empty());
            Ok::<(), ()>(())
        })
        .unwrap();
        assert!(mem.is_empty());
        assert!(!mem.contains(mem.base() as usize));
        assert_eq!(permissions_at(mem.base() as usize), "r-xp");
    }

    #[test]
    fn code_maps_from_a_file_and_only_patched_pages_are_copied() {
        use std::io::Write;
        let page = sys::page_size();
        // Two pages: `mov eax, imm32; ret` at the start of the second, int3 after it.
        let mut bytes = vec![0xcc; 2 * page];
        bytes[page..page + 6].copy_from_slice(&[0xb8, 0, 0, 0, 0, 0xc3]);
        let path = std::env::temp_dir().join(format!("sandboxrun-code-{}", std::process::id()));
        std::fs::File::create(&path).unwrap().write_all(&bytes).unwrap();
        let file = std::fs::File::open(&path).unwrap();
        // SAFETY: the file holds the two pages and nothing changes it during the test.
        let mem = unsafe {
            CodeMemory::map_file(&file, page as u64, page, |code, _| {
                code[1..5].copy_from_slice(&7u32.to_le_bytes());
                Ok::<(), ()>(())
            })
        }
        .unwrap();
        // SAFETY: the mapped bytes are a complete function with the C ABI.
        let f: extern "C" fn() -> u32 = unsafe { std::mem::transmute(mem.base()) };
        assert_eq!(f(), 7);
        assert_eq!(permissions_at(mem.base() as usize), "r-xp");
        assert_eq!(std::fs::read(&path).unwrap(), bytes, "the file is untouched");
        let _ = std::fs::remove_file(path);
    }

    #[test]
    fn patch_errors_are_reported() {
        let err = CodeMemory::new(&[0xc3], |_, _| Err("bad")).err().expect("the patch failed");
        assert!(matches!(err, CodeMemoryError::Patch("bad")));
        assert_eq!(err.to_string(), "failed to apply relocations: bad");
    }
}
