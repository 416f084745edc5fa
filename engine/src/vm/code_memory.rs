//! Executable code. The image is copied into fresh read-write pages, patched (relocations),
//! then made read+execute: it is never writable and executable at once (W^X).

use super::sys::{self, Prot};

/// Why code could not be mapped.
#[derive(Debug, thiserror::Error)]
pub enum CodeMemoryError<E> {
    /// The patch callback failed.
    #[error("relocation failed")]
    Patch(E),
    /// The kernel refused a mapping or protection change.
    #[error("failed to map code: {0}")]
    Map(#[from] std::io::Error),
}

/// Machine code mapped read+execute.
pub struct CodeMemory {
    base: *mut u8,
    mapped: usize,
    len: usize,
}

// SAFETY: the mapping is immutable after construction and owned by this value.
unsafe impl Send for CodeMemory {}
// SAFETY: as above: shared access only reads or executes.
unsafe impl Sync for CodeMemory {}

impl CodeMemory {
    /// Maps `code`, lets `patch(bytes, base_address)` apply relocations, then seals it.
    pub fn new<E>(
        code: &[u8],
        patch: impl FnOnce(&mut [u8], usize) -> Result<(), E>,
    ) -> Result<Self, CodeMemoryError<E>> {
        let page = sys::page_size();
        let mapped = code.len().next_multiple_of(page).max(page);
        let base = sys::reserve(mapped)?;
        let memory = CodeMemory { base, mapped, len: code.len() };
        // SAFETY: our fresh mapping; no references into it exist yet.
        unsafe { sys::protect(base, mapped, Prot::ReadWrite) }?;
        // SAFETY: `mapped >= code.len()` bytes are now writable and exclusively ours.
        let bytes = unsafe { std::slice::from_raw_parts_mut(base, code.len()) };
        bytes.copy_from_slice(code);
        patch(bytes, base as usize).map_err(CodeMemoryError::Patch)?;
        // SAFETY: `bytes` is not used after this point.
        unsafe { sys::protect(base, mapped, Prot::ReadExec) }?;
        Ok(memory)
    }

    /// Address of the first byte.
    pub fn base(&self) -> *const u8 {
        self.base
    }

    /// Length of the code in bytes.
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
        pc >= base && pc < base + self.len
    }
}

impl Drop for CodeMemory {
    fn drop(&mut self) {
        // SAFETY: we own the mapping; whoever runs the code holds the module alive.
        let _ = unsafe { sys::unmap(self.base, self.mapped) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_patched_code_and_is_not_writable() {
        // mov eax, imm32 ; ret — the immediate is "relocated" by the patch callback.
        let code = [0xb8, 0, 0, 0, 0, 0xc3];
        let mem = CodeMemory::new(&code, |bytes, _| {
            bytes[1..5].copy_from_slice(&42u32.to_le_bytes());
            Ok::<(), ()>(())
        })
        .unwrap();
        // SAFETY: the mapped bytes are a complete function with the C ABI.
        let f: extern "C" fn() -> u32 = unsafe { std::mem::transmute(mem.base()) };
        assert_eq!(f(), 42);
        assert!(mem.contains(mem.base() as usize + 5) && !mem.contains(mem.base() as usize + 6));
        let maps = std::fs::read_to_string("/proc/self/maps").unwrap();
        let start = format!("{:x}-", mem.base() as usize);
        let line = maps.lines().find(|l| l.starts_with(&start)).expect("mapping listed");
        assert!(line.contains(" r-xp "), "{line}");
    }

    #[test]
    fn patch_errors_are_reported() {
        let r = CodeMemory::new(&[0xc3], |_, _| Err("bad"));
        assert!(matches!(r, Err(CodeMemoryError::Patch("bad"))));
    }
}
