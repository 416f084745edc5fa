//! What sandboxrun itself prints, in one place:
//!
//! - [`emit`] (through [`outln!`](crate::outln), [`out!`](crate::out) and
//!   [`errln!`](crate::errln)): sandboxrun's own text on its stdout or stderr — summary lines,
//!   errors, warnings, command output. A write that fails (a closed stream, a reader gone:
//!   `EPIPE`) is ignored, so it never changes the exit status, which stays the verdict's.
//!   (`println!` and `eprintln!` panic instead: exit 101.)
//! - [`escape`]: text a module controls (function, import and export names, errors quoting
//!   them) made safe for a terminal and a report, before it is printed or reported.

use std::borrow::Cow;
use std::fmt;
use std::io::Write;

/// One of sandboxrun's standard streams.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stream {
    /// Standard output: what a command was asked for (`inspect`, `policy check`, ...).
    Stdout,
    /// Standard error: summary lines, errors, warnings.
    Stderr,
}

/// Writes `text` to `stream` in one write and flushes it, ignoring any failure.
pub fn emit(stream: Stream, text: fmt::Arguments<'_>) {
    let text = text.to_string();
    let _ = match stream {
        Stream::Stdout => {
            let mut out = std::io::stdout().lock();
            out.write_all(text.as_bytes()).and_then(|()| out.flush())
        }
        Stream::Stderr => std::io::stderr().lock().write_all(text.as_bytes()),
    };
}

/// Like `println!`, through [`emit`]: a failed write is ignored.
#[macro_export]
macro_rules! outln {
    ($($arg:tt)*) => {
        $crate::cli::output::emit($crate::cli::output::Stream::Stdout, format_args!("{}\n", format_args!($($arg)*)))
    };
}

/// Like `print!`, through [`emit`]: a failed write is ignored.
#[macro_export]
macro_rules! out {
    ($($arg:tt)*) => {
        $crate::cli::output::emit($crate::cli::output::Stream::Stdout, format_args!($($arg)*))
    };
}

/// Like `eprintln!`, through [`emit`]: a failed write is ignored.
#[macro_export]
macro_rules! errln {
    ($($arg:tt)*) => {
        $crate::cli::output::emit($crate::cli::output::Stream::Stderr, format_args!("{}\n", format_args!($($arg)*)))
    };
}

/// `text` with every control character (C0, DEL, C1: newlines, tabs, ESC, ...) written as
/// Rust writes it in `escape_debug` (`\n`, `\t`, `\u{1b}`); printable Unicode, backslashes
/// and quotes are kept. Borrowed when there is nothing to escape.
pub fn escape(text: &str) -> Cow<'_, str> {
    if !text.chars().any(char::is_control) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if c.is_control() {
            out.extend(c.escape_debug());
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn controls_are_escaped_and_printable_text_kept() {
        assert!(matches!(escape("plain é ünïcode \\ \"q\""), Cow::Borrowed(_)));
        assert_eq!(escape("a\nb\r\tc"), "a\\nb\\r\\tc");
        assert_eq!(escape("\u{1b}[31mred"), "\\u{1b}[31mred");
        assert_eq!(escape("\0\u{7f}\u{85}\u{9b}é"), "\\0\\u{7f}\\u{85}\\u{9b}é");
        assert!(!escape("x\u{7}\u{8}y").chars().any(char::is_control));
    }
}
