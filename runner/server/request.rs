//! A client's request: what it sends (its command line, the environment variables sandboxrun
//! reads, its working directory and standard streams) and how a slot takes it on.

pub use protocol::request::Request;
use std::ffi::OsString;
use std::os::fd::OwnedFd;

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

/// Why a client's request was refused (it is answered "bad request").
#[derive(Debug, thiserror::Error)]
pub(super) enum RequestError {
    /// The frame does not decode.
    #[error("{0}")]
    Frame(#[from] protocol::ProtocolError),
    /// Another number of descriptors than a request carries.
    #[error("{0} descriptors, expected {REQUEST_FDS}")]
    Descriptors(usize),
    /// Taking on the client's working directory or standard streams failed.
    #[error("{call}: {source}")]
    Take {
        /// The system call.
        call: &'static str,
        /// The error.
        source: nix::Error,
    },
}

/// Reads a client's request (a frame anyone able to reach the socket may have sent) and takes
/// on its working directory, environment and standard streams; returns its command line.
pub(super) fn take_client(body: &[u8], fds: Vec<OwnedFd>) -> Result<Vec<OsString>, RequestError> {
    let request = protocol::decode_untrusted::<Request>(body)?;
    let [cwd, stdin, stdout, stderr]: [OwnedFd; REQUEST_FDS] =
        fds.try_into().map_err(|fds: Vec<OwnedFd>| RequestError::Descriptors(fds.len()))?;
    let take = |call| move |source| RequestError::Take { call, source };
    nix::unistd::fchdir(&cwd).map_err(take("fchdir"))?;
    nix::unistd::dup2_stdin(&stdin).map_err(take("dup2"))?;
    nix::unistd::dup2_stdout(&stdout).map_err(take("dup2"))?;
    nix::unistd::dup2_stderr(&stderr).map_err(take("dup2"))?;
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
