//! Where the instruction count stands at each trap site of counting code (see
//! `translate::budget`): the instructions executed since the count register was last charged,
//! the trapping one included. The translator puts that number in the source location of each
//! operator's code; [`append`] turns the source locations of a compiled function's trap sites
//! into a table carried at the end of the function's code bytes (never executed: after its
//! last instruction and constants), so an artifact carries it without a format of its own;
//! [`pending_at`] reads it back when a trap unwinds.
//!
//! Layout of the trailer, little-endian, ending the function's bytes (whose length it pads to a
//! multiple of 16, so that the code loader adds nothing after it):
//! `0xcc padding | (offset u32, pending u32) × n, sorted by offset | n u32 | MAGIC u32`.

/// Ends every table (`"snbc"`).
const MAGIC: u32 = u32::from_le_bytes(*b"snbc");

/// Appends the table of `sites` (code offset, instructions pending there), only those with
/// instructions pending, to `code`.
pub(crate) fn append(code: &mut Vec<u8>, sites: impl IntoIterator<Item = (u32, u32)>) {
    let mut sites: Vec<(u32, u32)> = sites.into_iter().filter(|(_, pending)| *pending > 0).collect();
    sites.sort_unstable();
    sites.dedup_by_key(|(offset, _)| *offset);
    let table = 8 * sites.len() + 8;
    let padded = (code.len() + table).next_multiple_of(16);
    code.resize(padded - table, 0xcc);
    for (offset, pending) in &sites {
        code.extend_from_slice(&offset.to_le_bytes());
        code.extend_from_slice(&pending.to_le_bytes());
    }
    code.extend_from_slice(&(sites.len() as u32).to_le_bytes());
    code.extend_from_slice(&MAGIC.to_le_bytes());
}

/// The instructions pending at code offset `offset` of a function whose bytes (table
/// included) are `code`; 0 where the table has no entry, or there is no table.
pub(crate) fn pending_at(code: &[u8], offset: u32) -> u32 {
    let word = |at: usize| code.get(at..at + 4).map(|b| u32::from_le_bytes(b.try_into().expect("4 bytes")));
    let Some(end) = code.len().checked_sub(8) else { return 0 };
    if word(end + 4) != Some(MAGIC) {
        return 0;
    }
    let n = word(end).unwrap_or(0) as usize;
    let Some(start) = end.checked_sub(8 * n) else { return 0 };
    let entry = |i: usize| (word(start + 8 * i).unwrap_or(u32::MAX), word(start + 8 * i + 4).unwrap_or(0));
    let (mut lo, mut hi) = (0, n);
    while lo < hi {
        let mid = (lo + hi) / 2;
        match entry(mid).0.cmp(&offset) {
            std::cmp::Ordering::Less => lo = mid + 1,
            std::cmp::Ordering::Greater => hi = mid,
            std::cmp::Ordering::Equal => return entry(mid).1,
        }
    }
    0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_table_round_trips_and_pads_to_16() {
        for len in [0usize, 1, 7, 8, 15, 16, 100] {
            let mut code = vec![0x90; len];
            append(&mut code, [(9, 3), (2, 1), (50, 0), (4, 7)]);
            assert_eq!(code.len() % 16, 0, "{len}");
            assert!(code[..len].iter().all(|b| *b == 0x90), "the code is untouched");
            assert_eq!([2, 4, 9, 50, 1, 3].map(|o| pending_at(&code, o)), [1, 7, 3, 0, 0, 0], "{len}");
        }
        let mut empty = vec![0x90; 5];
        append(&mut empty, []);
        assert_eq!((empty.len(), pending_at(&empty, 0)), (16, 0));
        assert_eq!(pending_at(&[0x90; 40], 3), 0, "no table");
        assert_eq!(pending_at(&[], 3), 0);
    }
}
