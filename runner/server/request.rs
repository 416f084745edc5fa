//! A client's request: what it sends (its command line, the environment variables sandboxrun
//! reads, its working directory and standard streams) and how a slot takes it on.

use std::ffi::OsString;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};

/// A client's request: its command line and the environment variables sandboxrun reads
/// ([`crate::cli::ENVIRONMENT`]). It travels as one datagram with descriptors attached: the
/// client's end of the reply socket, then its working directory and standard streams.
///
/// Encoded as the number of arguments (4 bytes, little-endian), then every argument and every
/// `KEY=VALUE` entry, each ended by a NUL byte (none can hold one).
#[derive(Debug, PartialEq, Eq)]
pub struct Request {
    /// The command line, `argv[0]` first.
    pub argv: Vec<OsString>,
    /// The environment entries.
    pub env: Vec<(OsString, OsString)>,
}

impl Request {
    /// The request to run `argv`, with this process's environment.
    pub fn new(argv: Vec<OsString>) -> Request {
        Request {
            argv,
            env: crate::cli::ENVIRONMENT
                .iter()
                .filter_map(|key| std::env::var_os(key).map(|value| (OsString::from(key), value)))
                .collect(),
        }
    }

    /// The encoded request.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = (self.argv.len() as u32).to_le_bytes().to_vec();
        for arg in &self.argv {
            out.extend_from_slice(arg.as_bytes());
            out.push(0);
        }
        for (key, value) in &self.env {
            out.extend_from_slice(key.as_bytes());
            out.push(b'=');
            out.extend_from_slice(value.as_bytes());
            out.push(0);
        }
        out
    }

    /// Decodes a request.
    ///
    /// # Errors
    /// Malformed: too short, an entry without its NUL, an argument count beyond the entries, an
    /// environment entry without `=`.
    pub fn decode(bytes: &[u8]) -> Result<Request, String> {
        let count = bytes.get(..4).ok_or("too short")?;
        let argc = u32::from_le_bytes(count.try_into().expect("four bytes")) as usize;
        let rest = &bytes[4..];
        if rest.last().is_some_and(|b| *b != 0) {
            return Err("an entry lacks its end".into());
        }
        let entries: Vec<&[u8]> =
            if rest.is_empty() { Vec::new() } else { rest[..rest.len() - 1].split(|b| *b == 0).collect() };
        if argc > entries.len() {
            return Err(format!("{argc} arguments announced, {} entries sent", entries.len()));
        }
        let os = |b: &[u8]| OsString::from_vec(b.to_vec());
        let env = entries[argc..]
            .iter()
            .map(|e| match e.iter().position(|b| *b == b'=') {
                Some(eq) if eq > 0 => Ok((os(&e[..eq]), os(&e[eq + 1..]))),
                _ => Err("an environment entry without '='".to_string()),
            })
            .collect::<Result<_, _>>()?;
        Ok(Request { argv: entries[..argc].iter().map(|a| os(a)).collect(), env })
    }
}

/// Descriptors of a request after the reply socket: working directory, stdin, stdout, stderr.
pub const REQUEST_FDS: usize = 4;

/// Reads a client's request and takes on its working directory, environment and standard
/// streams; returns its command line.
pub(super) fn take_client(body: &[u8], fds: Vec<OwnedFd>) -> Result<Vec<OsString>, String> {
    let request = Request::decode(body)?;
    let [cwd, stdin, stdout, stderr]: [OwnedFd; REQUEST_FDS] =
        fds.try_into().map_err(|fds: Vec<OwnedFd>| format!("{} descriptors, expected {REQUEST_FDS}", fds.len()))?;
    // SAFETY: fchdir only reads the descriptor.
    if unsafe { libc::fchdir(cwd.as_raw_fd()) } != 0 {
        return Err(format!("fchdir: {}", io::Error::last_os_error()));
    }
    for (fd, target) in [(stdin, 0), (stdout, 1), (stderr, 2)] {
        // SAFETY: dup2 onto a standard stream this process owns; nothing else holds it.
        if unsafe { libc::dup2(fd.as_raw_fd(), target) } < 0 {
            return Err(format!("dup2: {}", io::Error::last_os_error()));
        }
    }
    for key in crate::cli::ENVIRONMENT {
        std::env::remove_var(key);
    }
    for (key, value) in request.env.iter().filter(|(k, _)| crate::cli::ENVIRONMENT.iter().any(|e| k == e)) {
        std::env::set_var(key, value);
    }
    Ok(request.argv)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_decodes_to_itself() {
        let request = Request {
            argv: vec!["sandboxrun".into(), OsString::from_vec(vec![0xff, b'x']), "".into()],
            env: vec![("HOME".into(), "/h=x".into()), ("XDG_CACHE_HOME".into(), "".into())],
        };
        assert_eq!(Request::decode(&request.encode()).unwrap(), request);
        let empty = Request { argv: Vec::new(), env: Vec::new() };
        assert_eq!(Request::decode(&empty.encode()).unwrap(), empty);
    }

    #[test]
    fn malformed_requests_are_errors() {
        for bad in [&b""[..], b"\x01\0\0", b"\x02\0\0\0a\0", b"\x01\0\0\0a\0noequals\0", b"\x01\0\0\0a"] {
            assert!(Request::decode(bad).is_err(), "{bad:?}");
        }
    }
}
