//! Memory images: memory 0's initial contents, computed once at compile time from the active
//! data segments, so that instantiation copies (or maps copy-on-write) finished pages instead
//! of applying segments one by one.
//!
//! A module has an image only when applying its segments cannot trap or be observed half-way:
//! memory 0 is defined (not imported), and every active data segment has an `i32.const` offset
//! (`i64.const` in a 64-bit memory) and fits in the memory's initial size. Any other module keeps today's path (segments applied
//! in order at instantiation, trapping where they did). The image keeps only the
//! [`IMAGE_PAGE_SIZE`] pages holding a non-zero byte (a fresh memory reads as zero), merged
//! into runs ([`ImageChunk`]s); the artifact stores the runs' bytes page-aligned, so they can
//! be mapped `MAP_PRIVATE` straight from the artifact's file.

use crate::module_info::{ConstExpr, ModuleInfo, SegmentMode};
use crate::vm::memory::{LinearMemory, MemoryError, WASM_PAGE_SIZE};
use std::fs::File;
use std::os::fd::AsFd;
use std::os::unix::fs::FileExt;
use std::sync::Arc;

/// Granularity of images: pages of this many bytes, aligned to it in memory and in the
/// artifact (the x86-64 page size, so image pages can be mapped).
pub const IMAGE_PAGE_SIZE: usize = 4096;
/// Most runs an image may have (each is one mapping per instance); a module whose data makes
/// more keeps the segment path.
pub const MAX_IMAGE_CHUNKS: usize = 1024;
/// An image may take at most twice the bytes of the data it comes from plus this much: pages
/// are whole, so tiny segments scattered over many pages would otherwise grow the cache far
/// beyond the module (a guest-controlled input).
pub const IMAGE_SLACK: u64 = 256 * 1024;

/// One run of image pages: the memory's bytes `memory_offset..memory_offset + len` (both
/// multiples of [`IMAGE_PAGE_SIZE`], `len > 0`); runs are sorted and do not touch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ImageChunk {
    /// Where the run starts in the memory.
    pub memory_offset: u64,
    /// Its length.
    pub len: u64,
}

/// The initial contents of memory 0 as runs of non-zero pages.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MemoryImage {
    /// The runs, in memory order.
    pub chunks: Vec<ImageChunk>,
    /// The runs' bytes, one after another (their total length).
    pub data: Arc<[u8]>,
}

impl MemoryImage {
    /// Builds memory 0's image, or `None` when the module does not qualify (see the module
    /// docs) or the image would be too large or fragmented.
    pub fn build(info: &ModuleInfo) -> Option<MemoryImage> {
        if info.num_imported_memories != 0 {
            return None;
        }
        let size = u64::from(info.memories.first()?.limits.min) * WASM_PAGE_SIZE as u64;
        let page = IMAGE_PAGE_SIZE as u64;
        let mut segments = Vec::new();
        let mut data_bytes = 0u64;
        for seg in &info.data {
            let SegmentMode::Active { index, ref offset } = seg.mode else { continue };
            let start = match *offset {
                ConstExpr::I32(offset) => u64::from(offset as u32),
                ConstExpr::I64(offset) => offset as u64, // a 64-bit memory's
                _ => return None,
            };
            let end = start.checked_add(seg.bytes.len() as u64)?;
            if index != 0 || end > size {
                return None; // another memory, or a segment that traps: the segment path
            }
            data_bytes += seg.bytes.len() as u64;
            if start < end {
                segments.push((start, &seg.bytes[..]));
            }
        }
        // Page runs the segments touch, merged where they overlap or meet.
        let mut runs: Vec<(u64, u64)> =
            segments.iter().map(|(s, b)| (s / page * page, (s + b.len() as u64).next_multiple_of(page))).collect();
        runs.sort_unstable();
        let mut merged: Vec<(u64, u64)> = Vec::new();
        for (s, e) in runs {
            match merged.last_mut() {
                Some(last) if s <= last.1 => last.1 = last.1.max(e),
                _ => merged.push((s, e)),
            }
        }
        let limit = data_bytes.saturating_mul(2).saturating_add(IMAGE_SLACK);
        if merged.iter().map(|(s, e)| e - s).sum::<u64>() > limit {
            return None;
        }
        // Apply the segments, in order, to a buffer per run; keep the non-zero pages.
        let mut chunks = Vec::new();
        let mut data = Vec::new();
        for (run_start, run_end) in merged {
            let mut buf = vec![0u8; (run_end - run_start) as usize];
            for (s, bytes) in &segments {
                if *s >= run_start && *s < run_end {
                    let at = (s - run_start) as usize;
                    buf[at..at + bytes.len()].copy_from_slice(bytes);
                }
            }
            for (p, bytes) in buf.chunks(IMAGE_PAGE_SIZE).enumerate() {
                if bytes.iter().all(|b| *b == 0) {
                    continue;
                }
                let at = run_start + p as u64 * page;
                match chunks.last_mut() {
                    Some(ImageChunk { memory_offset, len }) if *memory_offset + *len == at => *len += page,
                    _ => chunks.push(ImageChunk { memory_offset: at, len: page }),
                }
                data.extend_from_slice(bytes);
            }
            if chunks.len() > MAX_IMAGE_CHUNKS {
                return None;
            }
        }
        Some(MemoryImage { chunks, data: data.into() })
    }

    /// Total bytes of the runs.
    pub fn len(&self) -> u64 {
        self.chunks.iter().map(|c| c.len).sum()
    }

    /// Whether the image has no runs (the data is all zero).
    pub fn is_empty(&self) -> bool {
        self.chunks.is_empty()
    }
}

/// Where a loaded module finds its image's bytes.
pub(crate) enum ImageBytes {
    /// In memory.
    Bytes(Arc<[u8]>),
    /// In a file, from this (page-aligned) offset on: mapped copy-on-write, or read if mapping
    /// fails.
    File {
        /// The file (a memfd or a cache file).
        file: File,
        /// Offset of the image's first byte.
        offset: u64,
    },
}

/// A loaded module's image.
pub(crate) struct ModuleImage {
    pub(crate) chunks: Vec<ImageChunk>,
    pub(crate) bytes: ImageBytes,
}

impl ModuleImage {
    /// Initializes `memory`, a fresh (all-zero) memory of at least the image's extent, from
    /// the image: maps the runs from the file, or copies them.
    pub(crate) fn apply(&self, memory: &mut LinearMemory) -> Result<(), MemoryError> {
        let out_of_range = || MemoryError::Image(std::io::Error::other("image larger than the memory"));
        let mut at = 0u64;
        for c in &self.chunks {
            let start = usize::try_from(c.memory_offset).map_err(|_| out_of_range())?;
            let len = usize::try_from(c.len).map_err(|_| out_of_range())?;
            let end = start.checked_add(len).filter(|e| *e <= memory.data().len()).ok_or_else(out_of_range)?;
            match &self.bytes {
                ImageBytes::Bytes(bytes) => {
                    let src = usize::try_from(at).ok().and_then(|a| bytes.get(a..a + len)).ok_or_else(out_of_range)?;
                    memory.data_mut()[start..end].copy_from_slice(src);
                }
                ImageBytes::File { file, offset } => {
                    // SAFETY: the module's image source was handed over under
                    // `Module::from_artifact_mapped`'s contract: the file holds the artifact's
                    // bytes and never changes nor shrinks while the module (which owns it) or
                    // a memory made from it lives.
                    let mapped = unsafe { memory.map_image_at(start, file.as_fd(), offset + at, len) };
                    if mapped.is_err() {
                        file.read_exact_at(&mut memory.data_mut()[start..end], offset + at)
                            .map_err(MemoryError::Image)?;
                    }
                }
            }
            at += c.len;
        }
        Ok(())
    }
}
