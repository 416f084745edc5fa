//! Checked access to guest memory: every pointer and length the guest passes goes through
//! here, and anything out of bounds is `EFAULT`.

use crate::errno::{Errno, WasiResult};

/// The caller's linear memory.
pub struct GuestMemory<'m> {
    bytes: &'m mut [u8],
}

impl<'m> GuestMemory<'m> {
    /// Wraps the caller's memory.
    pub fn new(bytes: &'m mut [u8]) -> Self {
        GuestMemory { bytes }
    }

    fn range(&self, ptr: u32, len: u32) -> WasiResult<std::ops::Range<usize>> {
        let start = ptr as usize;
        let end = start.checked_add(len as usize).ok_or(Errno::Fault)?;
        if end > self.bytes.len() {
            return Err(Errno::Fault);
        }
        Ok(start..end)
    }

    /// `len` bytes at `ptr`.
    pub fn slice(&self, ptr: u32, len: u32) -> WasiResult<&[u8]> {
        let r = self.range(ptr, len)?;
        Ok(&self.bytes[r])
    }

    /// `len` writable bytes at `ptr`.
    pub fn slice_mut(&mut self, ptr: u32, len: u32) -> WasiResult<&mut [u8]> {
        let r = self.range(ptr, len)?;
        Ok(&mut self.bytes[r])
    }

    /// Copies `data` to `ptr`.
    pub fn write(&mut self, ptr: u32, data: &[u8]) -> WasiResult<()> {
        let len = u32::try_from(data.len()).map_err(|_| Errno::Fault)?;
        self.slice_mut(ptr, len)?.copy_from_slice(data);
        Ok(())
    }

    /// Reads a little-endian u16.
    pub fn read_u16(&self, ptr: u32) -> WasiResult<u16> {
        Ok(u16::from_le_bytes(self.slice(ptr, 2)?.try_into().expect("2 bytes")))
    }

    /// Reads a little-endian u32.
    pub fn read_u32(&self, ptr: u32) -> WasiResult<u32> {
        Ok(u32::from_le_bytes(self.slice(ptr, 4)?.try_into().expect("4 bytes")))
    }

    /// Reads a little-endian u64.
    pub fn read_u64(&self, ptr: u32) -> WasiResult<u64> {
        Ok(u64::from_le_bytes(self.slice(ptr, 8)?.try_into().expect("8 bytes")))
    }

    /// Writes a little-endian u32.
    pub fn write_u32(&mut self, ptr: u32, v: u32) -> WasiResult<()> {
        self.write(ptr, &v.to_le_bytes())
    }

    /// Writes a little-endian u64.
    pub fn write_u64(&mut self, ptr: u32, v: u64) -> WasiResult<()> {
        self.write(ptr, &v.to_le_bytes())
    }

    /// A UTF-8 path of `len` bytes at `ptr` (`EILSEQ` if not UTF-8).
    pub fn str(&self, ptr: u32, len: u32) -> WasiResult<&str> {
        std::str::from_utf8(self.slice(ptr, len)?).map_err(|_| Errno::Ilseq)
    }

    /// Checks an iovec array: the array and every buffer it names lie in memory
    /// (`EFAULT` otherwise, before any transfer, as `readv`/`writev` do). Nothing is copied:
    /// [`IovecList::for_each`] reads a bounded number of entries at a time, so a guest's
    /// count, however large, costs the host no memory.
    pub fn iovecs(&self, iovs: u32, count: u32) -> WasiResult<IovecList> {
        let bytes = self.slice(iovs, count.checked_mul(8).ok_or(Errno::Fault)?)?;
        let size = self.bytes.len() as u64;
        for entry in bytes.chunks_exact(8) {
            let (ptr, len) = parse_iovec(entry);
            if u64::from(ptr) + u64::from(len) > size {
                return Err(Errno::Fault);
            }
        }
        Ok(IovecList { base: iovs, count })
    }

    /// Up to [`IOV_CHUNK`] entries of a checked iovec array from entry `first` on, as
    /// `(buf, len)` pairs copied into `chunk`; empty past the end.
    fn iovec_chunk<'c>(&self, list: IovecList, first: u32, chunk: &'c mut IovecChunk) -> &'c [(u32, u32)] {
        let n = list.count.saturating_sub(first).min(IOV_CHUNK as u32);
        // In bounds: `iovecs` checked the whole array, and `first + n <= count`.
        let start = list.base as usize + 8 * first as usize;
        let bytes = &self.bytes[start..start + 8 * n as usize];
        for (slot, entry) in chunk.iter_mut().zip(bytes.chunks_exact(8)) {
            *slot = parse_iovec(entry);
        }
        &chunk[..n as usize]
    }
}

/// Iovec entries handled per step (a stack array's worth).
const IOV_CHUNK: usize = 256;

/// Room for one step's iovec entries.
type IovecChunk = [(u32, u32); IOV_CHUNK];

/// An iovec array checked by [`GuestMemory::iovecs`].
#[derive(Clone, Copy, Debug)]
pub struct IovecList {
    base: u32,
    count: u32,
}

impl IovecList {
    /// Calls `f(memory, buf, len)` on each entry with a non-zero length, in order, reading
    /// [`IOV_CHUNK`] entries at a time, until it returns `Ok(false)` or an error.
    pub fn for_each(
        self,
        m: &mut GuestMemory,
        mut f: impl FnMut(&mut GuestMemory, u32, u32) -> WasiResult<bool>,
    ) -> WasiResult<()> {
        let mut chunk = [(0, 0); IOV_CHUNK];
        let mut first = 0;
        while first < self.count {
            let entries = m.iovec_chunk(self, first, &mut chunk);
            first += entries.len() as u32;
            for &(ptr, len) in entries.iter().filter(|(_, len)| *len != 0) {
                if !f(m, ptr, len)? {
                    return Ok(());
                }
            }
        }
        Ok(())
    }
}

fn parse_iovec(entry: &[u8]) -> (u32, u32) {
    let word = |i: usize| u32::from_le_bytes(entry[i..i + 4].try_into().expect("4 bytes"));
    (word(0), word(4))
}

/// How much of an iovec of `len` bytes a call that has moved `total` bytes may still move:
/// the count it reports is a `u32`, and iovecs may overlap (so their lengths can add up to
/// more than memory holds).
pub fn clamp_to_u32_total(total: u64, len: u32) -> u32 {
    let room = u64::from(u32::MAX).saturating_sub(total);
    u64::from(len).min(room) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds_are_efault() {
        let mut bytes = vec![0u8; 16];
        let mut m = GuestMemory::new(&mut bytes);
        assert!(m.write_u64(8, 1).is_ok());
        assert_eq!(m.write_u64(9, 1), Err(Errno::Fault));
        assert_eq!(m.slice(u32::MAX, 2).err(), Some(Errno::Fault));
        assert_eq!(m.iovecs(0, u32::MAX).err(), Some(Errno::Fault));
        m.write(0, &[8, 0, 0, 0, 100, 0, 0, 0]).unwrap();
        assert_eq!(m.iovecs(0, 1).err(), Some(Errno::Fault), "iovec pointing past the end");
        m.write(0, &[8, 0, 0, 0, 4, 0, 0, 0]).unwrap();
        let mut seen = Vec::new();
        m.write(8, &[0; 8]).unwrap(); // an empty entry: skipped
        m.iovecs(0, 2)
            .unwrap()
            .for_each(&mut m, |_, p, l| {
                seen.push((p, l));
                Ok(true)
            })
            .unwrap();
        assert_eq!(seen, [(8, 4)]);
    }

    #[test]
    fn transfer_totals_stay_within_u32() {
        assert_eq!(clamp_to_u32_total(0, 10), 10);
        assert_eq!(clamp_to_u32_total(u64::from(u32::MAX) - 3, 10), 3);
        assert_eq!(clamp_to_u32_total(u64::from(u32::MAX), 10), 0);
        assert_eq!(clamp_to_u32_total(u64::MAX, u32::MAX), 0);
    }
}
