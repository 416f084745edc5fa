//! sandboxrun library.
