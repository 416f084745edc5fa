//! `sandboxrun-client SOCKET [OPTIONS] MODULE [ARGS...]`: `sandboxrun --server SOCKET ...` in
//! a binary that holds only the client. It starts in a third of the time: the full binary's
//! start-up is mostly relocating a quarter of a megabyte of pointers (the code generator's and
//! SQLite's tables), one copied page at a time.

use std::ffi::OsString;
use std::process::ExitCode;

const USAGE: &str = "usage: sandboxrun-client SOCKET [OPTIONS] MODULE [ARGS...]\n\
runs `sandboxrun [OPTIONS] MODULE [ARGS...]` through the server on SOCKET (`sandboxrun serve`)";

fn main() -> ExitCode {
    let mut args = std::env::args_os().skip(1);
    let socket = match args.next() {
        Some(s) if s != "--help" && s != "-h" => s,
        Some(_) => {
            sandboxrun::outln!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        None => {
            sandboxrun::errln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    let argv: Vec<OsString> = std::iter::once(OsString::from("sandboxrun")).chain(args).collect();
    ExitCode::from(sandboxrun::server::client::forward(socket.as_ref(), argv) as u8)
}
