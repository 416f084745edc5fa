//! A client's request: what it sends (its command line, the environment variables sandboxrun
//! reads, its working directory and standard streams) and how a slot takes it on.

pub use protocol::request::Request;
use std::ffi::OsString;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};

/// The request to run `argv` (`argv[0]` first), with the environment variables sandboxrun
/// reads ([`crate::cli::ENVIRONMENT`]) from this process's environment. It travels as one
/// datagram ([`protocol::request`]) with descriptors attached: the client's end of the reply
/// socket, then its working directory and standard streams.
pub fn request(argv: Vec<OsString>) -> Request {
    Request {
        argv,
        env: crate::cli::ENVIRONMENT
            .iter()
            .filter_map(|key| std::env::var_os(key).map(|value| (OsString::from(key), value)))
            .collect(),
    }
}

/// Descriptors of a request after the reply socket: working directory, stdin, stdout, stderr.
pub const REQUEST_FDS: usize = 4;

/// Reads a client's request (a frame anyone able to reach the socket may have sent) and takes
/// on its working directory, environment and standard streams; returns its command line.
pub(super) fn take_client(body: &[u8], fds: Vec<OwnedFd>) -> Result<Vec<OsString>, String> {
    let request = protocol::decode_untrusted::<Request>(body).map_err(|e| e.to_string())?;
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
    fn a_request_carries_only_the_variables_sandboxrun_reads() {
        let request = request(vec!["sandboxrun".into()]);
        assert!(request.env.iter().all(|(k, _)| crate::cli::ENVIRONMENT.iter().any(|e| k == e)));
        let frame = protocol::encode(&request).unwrap();
        assert_eq!(protocol::decode_untrusted::<Request>(&frame).unwrap(), request);
    }
}
