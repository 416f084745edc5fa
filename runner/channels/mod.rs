//! The channels between a run's supervisor and its child that carry more than one message:
//! the code cache's ([`code`]: an answer, a sealed memfd, a pipe back) and messages with
//! descriptors attached ([`fds`], for prepared children and the server's clients). The
//! messages themselves are the `protocol` crate's.

pub mod code;
pub mod fds;
