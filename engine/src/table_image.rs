//! Tables filled on first use ("lazy tables").
//!
//! When every active element segment of a module writes constant function references (or
//! nulls) at a constant offset inside one of the module's own funcref tables, the tables'
//! initial contents are known from the module alone: [`TableImages`] holds them as function
//! indices, built once per loaded module. Instantiation then leaves such a table zeroed
//! (fresh pages) and attaches its image ([`LazyElements`]). Zero stays null: an element read
//! as zero is looked up in the image — compiled code calls the `TableElement` builtin when
//! `call_indirect` or `table.get` loads a zero, and the runtime reads elements through
//! [`StoreInner::table_element`] — and filled in on that first read. Before the first write
//! of any kind (`table.set` of a null or not, `table.fill`, `table.copy` or `table.init`
//! into it) the whole table is filled and its image dropped ([`StoreInner::fill_table`]), so
//! a null written later is never taken for an element not yet read.
//!
//! A module whose active segments do anything else (a `global.get` offset, a segment into
//! an imported table or an externref table, one that does not fit the table's minimum size,
//! one into a table larger than the store allows)
//! has no images: instantiation applies every segment in order, as the specification says.

use crate::module_info::{ConstExpr, ModuleInfo, SegmentMode};
use crate::state::StoreInner;
use crate::store::MAX_TABLE_ELEMENTS;
use crate::types::{FuncIndex, ValType};
use std::sync::Arc;

/// The initial contents of a module's defined tables, when known from the module alone.
#[derive(Debug, PartialEq)]
pub(crate) struct TableImages {
    /// Per defined table: function index + 1 per element from the first (0: null; elements
    /// past the end are null), or `None` when no segment writes to it.
    tables: Box<[Option<Arc<[u32]>>]>,
}

impl TableImages {
    /// The images of `info`'s tables, or `None` if its active segments must be applied at
    /// instantiation (see the module's documentation) or there are none.
    pub(crate) fn build(info: &ModuleInfo) -> Option<TableImages> {
        let defined = info.num_imported_tables as usize;
        let mut images: Vec<Vec<u32>> = vec![Vec::new(); info.tables.len().checked_sub(defined)?];
        let mut any = false;
        for seg in &info.elements {
            let SegmentMode::Active { index, offset } = &seg.mode else { continue };
            let t = (*index as usize).checked_sub(defined)?;
            let ty = info.tables.get(*index as usize)?;
            let null_init = info.table_inits.get(t)?.as_ref().is_none_or(|e| *e == ConstExpr::RefNull);
            // A table past the store's limit is refused at instantiation: its image (built
            // here, at load) must not be allocated first.
            if ty.element != ValType::FUNCREF || !null_init || ty.limits.min > MAX_TABLE_ELEMENTS {
                return None;
            }
            let start = match *offset {
                ConstExpr::I32(offset) => u64::from(offset as u32),
                ConstExpr::I64(offset) => offset as u64, // a 64-bit table's
                _ => return None,
            };
            let start = usize::try_from(start).ok()?;
            let end = start.checked_add(seg.items.len())?;
            if end > ty.limits.min as usize {
                return None;
            }
            any = true;
            let image = &mut images[t];
            if seg.items.is_empty() {
                continue;
            }
            if image.len() < end {
                image.resize(end, 0);
            }
            for (slot, item) in image[start..end].iter_mut().zip(&seg.items) {
                *slot = match *item {
                    ConstExpr::RefFunc(f) => f.0.checked_add(1)?,
                    ConstExpr::RefNull => 0,
                    _ => return None,
                };
            }
        }
        any.then(|| TableImages { tables: images.into_iter().map(|i| (!i.is_empty()).then(|| i.into())).collect() })
    }

    /// The image of defined table `defined`, if it has one.
    pub(crate) fn table(&self, defined: usize) -> Option<&Arc<[u32]>> {
        self.tables.get(defined)?.as_ref()
    }
}

/// The elements of a table not yet read, as its module's image gives them.
pub(crate) struct LazyElements {
    /// Function index + 1 per element (0: null; past the end: null).
    pub(crate) image: Arc<[u32]>,
    /// Store index of the instance whose functions these are.
    pub(crate) owner: u32,
}

impl StoreInner {
    /// Element `i` (in bounds) of table `table` (a store index), filled in from its image if
    /// this is its first read.
    pub(crate) fn table_element(&mut self, table: u32, i: u32) -> usize {
        let t = &self.tables[table as usize];
        let raw = t.elements[i as usize];
        let Some(lazy) = t.lazy.as_ref().filter(|_| raw == 0) else { return raw };
        let Some(f) = lazy.image.get(i as usize).and_then(|f| f.checked_sub(1)) else { return 0 };
        let r = self.instances[lazy.owner as usize].func_ref(FuncIndex(f)) as usize;
        self.tables[table as usize].elements[i as usize] = r;
        r
    }

    /// Fills every element of table `table` (a store index) still to be read from its image
    /// and drops the image: from here on its elements are plain values, free to be written.
    pub(crate) fn fill_table(&mut self, table: u32) {
        let Some(lazy) = self.tables[table as usize].lazy.take() else { return };
        let owner = &self.instances[lazy.owner as usize];
        let t = &mut self.tables[table as usize];
        for (element, f) in t.elements.iter_mut().zip(lazy.image.iter()) {
            if *element == 0 && *f != 0 {
                *element = owner.func_ref(FuncIndex(f - 1)) as usize;
            }
        }
        t.def.lazy = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::module_info::{parse, wat_to_binary};

    fn images(wat: &str) -> Option<Vec<Option<Vec<u32>>>> {
        let info = parse(&wat_to_binary(wat.as_bytes()).unwrap()).unwrap();
        TableImages::build(&info).map(|i| i.tables.iter().map(|t| t.as_ref().map(|t| t.to_vec())).collect())
    }

    #[test]
    fn constant_segments_into_own_funcref_tables_make_images_later_segments_winning() {
        let wat = r#"(module
            (table 10 funcref) (table 3 funcref) (table 2 funcref)
            (func $a) (func $b)
            (elem (i32.const 1) func $a $b $a)
            (elem (i32.const 2) funcref (ref.null func) (ref.func $b))
            (elem (table 1) (i32.const 3) func)
            (elem func $b))"#;
        assert_eq!(images(wat), Some(vec![Some(vec![0, 1, 0, 2]), None, None]));
    }

    #[test]
    fn anything_else_is_applied_at_instantiation() {
        for wat in [
            // An offset read from a global.
            r#"(module (global i32 (i32.const 0)) (table 2 funcref) (func) (elem (global.get 0) func 0))"#,
            // A segment into an imported table.
            r#"(module (import "m" "t" (table 2 funcref)) (func) (elem (i32.const 0) func 0))"#,
            // A segment past the table's minimum size (instantiation must fail).
            r#"(module (table 2 funcref) (func) (elem (i32.const 1) func 0 0))"#,
            (r#"(module (table 2 funcref) (func) (elem (i32.const -1) func 0))"#),
            // A table larger than the store allows (instantiation refuses it; no image first).
            r#"(module (table 4000000000 funcref) (func) (elem (i32.const 3999999999) func 0))"#,
            // An externref table.
            r#"(module (table 2 externref) (elem (table 0) (i32.const 0) externref (ref.null extern)))"#,
        ] {
            assert_eq!(images(wat), None, "{wat}");
        }
        assert_eq!(images("(module (table 2 funcref) (func))"), None, "no segments, no images");
    }
}
