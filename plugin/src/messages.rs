//! The plugin's messages, each a [`protocol::Message`] framed by the `protocol` crate.
//!
//! - The call channel (host ⇄ confined instance, one SOCK_SEQPACKET datagram per frame):
//!   [`ToInstance`] and [`FromInstance`]. They travel on every call, so their payload is a
//!   small binary encoding (a tag byte, little-endian integers, length-prefixed bytes) rather
//!   than JSON; every length is checked against what remains before anything is allocated.
//!   A payload of [`INLINE_MAX`] bytes or more does not travel in the frame but in the
//!   instance's sealed shared window ([`Payload::Window`]).
//! - The keeper's control channel (host ⇄ instance keeper, with SCM_RIGHTS): [`ToKeeper`] and
//!   [`FromKeeper`], JSON like the rest of the protocol (rare, small).
//!
//! The kinds are this crate's own (0x40 to 0x43), outside the protocol crate's list.

use serde::{Deserialize, Serialize};

/// Payloads of this many bytes or more go through the shared window, not the frame.
pub const INLINE_MAX: usize = 64 << 10;

/// Longest call-channel payload: an inline payload, an export name and the envelope.
const CALL_MAX_LEN: u32 = (INLINE_MAX as u32) + (8 << 10);

/// Longest name (export, host function) a message may carry.
pub const NAME_MAX: usize = 1024;

/// Most values an invocation passes or returns.
pub const VALUES_MAX: usize = 1000;

/// A WebAssembly number (what `invoke` passes and returns; references do not cross).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Val {
    /// `i32`.
    I32(i32),
    /// `i64`.
    I64(i64),
    /// `f32`, as bits.
    F32(u32),
    /// `f64`, as bits.
    F64(u64),
}

/// Bytes of a call: in the frame, or this many at the start of the shared window.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Payload {
    /// In the frame (fewer than [`INLINE_MAX`] bytes).
    Inline(Vec<u8>),
    /// In the window: its length.
    Window(u32),
}

/// What the host asks of an instance.
#[derive(Clone, Debug, PartialEq)]
pub enum ToInstance {
    /// Run `export` (no parameters) with `input` as its stdin; answer its stdout.
    Call {
        /// The export.
        export: String,
        /// Its stdin.
        input: Payload,
    },
    /// Call `export` with these arguments; answer its results.
    Invoke {
        /// The export.
        export: String,
        /// Its arguments.
        args: Vec<Val>,
    },
    /// Answer `len` bytes of memory 0 at `ptr`.
    ReadMemory {
        /// Address.
        ptr: u32,
        /// Length.
        len: u32,
    },
    /// Write bytes into memory 0 at `ptr`.
    WriteMemory {
        /// Address.
        ptr: u32,
        /// The bytes.
        data: Payload,
    },
    /// The answer to a [`FromInstance::HostCall`]: the bytes, or the host's error.
    HostReturn(Result<Payload, String>),
}

/// What an instance says (hostile input: a guest may have taken its process over).
#[derive(Clone, Debug, PartialEq)]
pub enum FromInstance {
    /// Set up: the module is instantiated; its function exports.
    Ready(Vec<String>),
    /// Setup failed (module invalid, import missing, confinement failed): one line.
    SetupFailed(String),
    /// A call's stdout.
    Output(Payload),
    /// An invocation's results.
    Values(Vec<Val>),
    /// Memory read.
    Memory(Payload),
    /// Memory written.
    Written,
    /// The guest calls host function number `func` with these bytes.
    HostCall {
        /// Index in the host's list of host functions.
        func: u32,
        /// Its argument.
        input: Payload,
    },
    /// The guest trapped.
    Trapped {
        /// The trap, in the specification's words.
        kind: String,
        /// The function, when known.
        function: Option<String>,
        /// Whether a `memory.grow` was refused by the memory limit before.
        grow_refused: bool,
    },
    /// The guest called `proc_exit`: the instance ends.
    Exited(i32),
    /// A host function failed (its error travelled back and unwound the guest).
    HostFailed {
        /// The host function.
        name: String,
        /// The host's error.
        message: String,
    },
    /// The request could not be served (no such export, bad arguments, out of bounds).
    Refused(String),
    /// The call's output passed the output limit.
    OutputLimit,
}

/// Appends binary fields.
struct Out<'a>(&'a mut Vec<u8>);

impl Out<'_> {
    fn u8(&mut self, v: u8) {
        self.0.push(v);
    }
    fn u32(&mut self, v: u32) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn u64(&mut self, v: u64) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn bytes(&mut self, b: &[u8]) -> Result<(), String> {
        let len = u32::try_from(b.len()).map_err(|_| "too long".to_string())?;
        self.u32(len);
        self.0.extend_from_slice(b);
        Ok(())
    }
    fn name(&mut self, s: &str) -> Result<(), String> {
        if s.len() > NAME_MAX {
            return Err(format!("a name of {} bytes, more than {NAME_MAX}", s.len()));
        }
        self.bytes(s.as_bytes())
    }
    fn payload(&mut self, p: &Payload) -> Result<(), String> {
        match p {
            Payload::Inline(b) if b.len() >= INLINE_MAX => Err("an inline payload too large".into()),
            Payload::Inline(b) => {
                self.u8(0);
                self.bytes(b)
            }
            Payload::Window(len) => {
                self.u8(1);
                self.u32(*len);
                Ok(())
            }
        }
    }
    fn vals(&mut self, vals: &[Val]) -> Result<(), String> {
        if vals.len() > VALUES_MAX {
            return Err("too many values".into());
        }
        self.u32(vals.len() as u32);
        for v in vals {
            match *v {
                Val::I32(x) => (self.u8(0), self.u64(x as u32 as u64)),
                Val::I64(x) => (self.u8(1), self.u64(x as u64)),
                Val::F32(x) => (self.u8(2), self.u64(x as u64)),
                Val::F64(x) => (self.u8(3), self.u64(x)),
            };
        }
        Ok(())
    }
}

/// Reads binary fields from untrusted bytes: every read is bounds-checked, never panics.
struct In<'a>(&'a [u8]);

impl<'a> In<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        if n > self.0.len() {
            return Err(format!("{n} bytes wanted, {} left", self.0.len()));
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }
    fn u8(&mut self) -> Result<u8, String> {
        Ok(self.take(1)?[0])
    }
    fn u32(&mut self) -> Result<u32, String> {
        Ok(u32::from_le_bytes(self.take(4)?.try_into().expect("4 bytes")))
    }
    fn u64(&mut self) -> Result<u64, String> {
        Ok(u64::from_le_bytes(self.take(8)?.try_into().expect("8 bytes")))
    }
    fn bytes(&mut self, max: usize) -> Result<&'a [u8], String> {
        let len = self.u32()? as usize;
        if len > max {
            return Err(format!("a field of {len} bytes, more than {max}"));
        }
        self.take(len)
    }
    fn text(&mut self, max: usize) -> Result<String, String> {
        String::from_utf8(self.bytes(max)?.to_vec()).map_err(|_| "text that is not UTF-8".to_string())
    }
    fn payload(&mut self) -> Result<Payload, String> {
        match self.u8()? {
            0 => Ok(Payload::Inline(self.bytes(INLINE_MAX - 1)?.to_vec())),
            1 => Ok(Payload::Window(self.u32()?)),
            t => Err(format!("payload tag {t}")),
        }
    }
    fn vals(&mut self) -> Result<Vec<Val>, String> {
        let n = self.u32()? as usize;
        if n > VALUES_MAX {
            return Err(format!("{n} values, more than {VALUES_MAX}"));
        }
        (0..n)
            .map(|_| {
                let tag = self.u8()?;
                let bits = self.u64()?;
                Ok(match tag {
                    0 => Val::I32(bits as u32 as i32),
                    1 => Val::I64(bits as i64),
                    2 => Val::F32(u32::try_from(bits).map_err(|_| "f32 bits out of range")?),
                    3 => Val::F64(bits),
                    t => return Err(format!("value tag {t}")),
                })
            })
            .collect()
    }
    fn done(self) -> Result<(), String> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(format!("{} bytes after the message", self.0.len()))
        }
    }
}

/// Message text (errors, trap names) is cut to this many bytes.
const TEXT_MAX: usize = 4096;

impl protocol::Message for ToInstance {
    const KIND: u8 = 0x40;
    const NAME: &'static str = "ToInstance";
    const MAX_LEN: u32 = CALL_MAX_LEN;

    fn encode_payload(&self, out: &mut Vec<u8>) -> Result<(), String> {
        let mut o = Out(out);
        match self {
            ToInstance::Call { export, input } => {
                o.u8(1);
                o.name(export)?;
                o.payload(input)
            }
            ToInstance::Invoke { export, args } => {
                o.u8(2);
                o.name(export)?;
                o.vals(args)
            }
            ToInstance::ReadMemory { ptr, len } => {
                o.u8(3);
                o.u32(*ptr);
                o.u32(*len);
                Ok(())
            }
            ToInstance::WriteMemory { ptr, data } => {
                o.u8(4);
                o.u32(*ptr);
                o.payload(data)
            }
            ToInstance::HostReturn(Ok(p)) => {
                o.u8(5);
                o.payload(p)
            }
            ToInstance::HostReturn(Err(e)) => {
                o.u8(6);
                o.bytes(&e.as_bytes()[..e.len().min(TEXT_MAX)])
            }
        }
    }

    fn decode_payload(payload: &[u8]) -> Result<Self, String> {
        let mut i = In(payload);
        let m = match i.u8()? {
            1 => ToInstance::Call { export: i.text(NAME_MAX)?, input: i.payload()? },
            2 => ToInstance::Invoke { export: i.text(NAME_MAX)?, args: i.vals()? },
            3 => ToInstance::ReadMemory { ptr: i.u32()?, len: i.u32()? },
            4 => ToInstance::WriteMemory { ptr: i.u32()?, data: i.payload()? },
            5 => ToInstance::HostReturn(Ok(i.payload()?)),
            6 => ToInstance::HostReturn(Err(String::from_utf8_lossy(i.bytes(TEXT_MAX)?).into_owned())),
            t => return Err(format!("request tag {t}")),
        };
        i.done()?;
        Ok(m)
    }
}

/// Cuts `s` to [`TEXT_MAX`] bytes at a character boundary.
fn cut(s: &str) -> &str {
    let mut end = s.len().min(TEXT_MAX);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

impl protocol::Message for FromInstance {
    const KIND: u8 = 0x41;
    const NAME: &'static str = "FromInstance";
    const MAX_LEN: u32 = CALL_MAX_LEN;

    fn encode_payload(&self, out: &mut Vec<u8>) -> Result<(), String> {
        let mut o = Out(out);
        match self {
            FromInstance::Ready(exports) => {
                o.u8(1);
                let exports: Vec<&String> = exports.iter().filter(|e| e.len() <= NAME_MAX).take(VALUES_MAX).collect();
                o.u32(exports.len() as u32);
                for e in exports {
                    o.name(e)?;
                }
                Ok(())
            }
            FromInstance::SetupFailed(m) => {
                o.u8(2);
                o.bytes(cut(m).as_bytes())
            }
            FromInstance::Output(p) => {
                o.u8(3);
                o.payload(p)
            }
            FromInstance::Values(v) => {
                o.u8(4);
                o.vals(v)
            }
            FromInstance::Memory(p) => {
                o.u8(5);
                o.payload(p)
            }
            FromInstance::Written => {
                o.u8(6);
                Ok(())
            }
            FromInstance::HostCall { func, input } => {
                o.u8(7);
                o.u32(*func);
                o.payload(input)
            }
            FromInstance::Trapped { kind, function, grow_refused } => {
                o.u8(8);
                o.bytes(cut(kind).as_bytes())?;
                o.u8(u8::from(function.is_some()));
                if let Some(f) = function {
                    o.bytes(cut(f).as_bytes())?;
                }
                o.u8(u8::from(*grow_refused));
                Ok(())
            }
            FromInstance::Exited(code) => {
                o.u8(9);
                o.u32(*code as u32);
                Ok(())
            }
            FromInstance::HostFailed { name, message } => {
                o.u8(10);
                o.bytes(cut(name).as_bytes())?;
                o.bytes(cut(message).as_bytes())
            }
            FromInstance::Refused(m) => {
                o.u8(11);
                o.bytes(cut(m).as_bytes())
            }
            FromInstance::OutputLimit => {
                o.u8(12);
                Ok(())
            }
        }
    }

    fn decode_payload(payload: &[u8]) -> Result<Self, String> {
        let mut i = In(payload);
        let text = |i: &mut In| i.bytes(TEXT_MAX).map(|b| String::from_utf8_lossy(b).into_owned());
        let m = match i.u8()? {
            1 => {
                let n = i.u32()? as usize;
                if n > VALUES_MAX {
                    return Err(format!("{n} exports"));
                }
                FromInstance::Ready((0..n).map(|_| i.text(NAME_MAX)).collect::<Result<_, _>>()?)
            }
            2 => FromInstance::SetupFailed(text(&mut i)?),
            3 => FromInstance::Output(i.payload()?),
            4 => FromInstance::Values(i.vals()?),
            5 => FromInstance::Memory(i.payload()?),
            6 => FromInstance::Written,
            7 => FromInstance::HostCall { func: i.u32()?, input: i.payload()? },
            8 => {
                let kind = text(&mut i)?;
                let function = match i.u8()? {
                    0 => None,
                    1 => Some(text(&mut i)?),
                    t => return Err(format!("option tag {t}")),
                };
                let grow_refused = match i.u8()? {
                    0 => false,
                    1 => true,
                    t => return Err(format!("bool {t}")),
                };
                FromInstance::Trapped { kind, function, grow_refused }
            }
            9 => FromInstance::Exited(i.u32()? as i32),
            10 => FromInstance::HostFailed { name: text(&mut i)?, message: text(&mut i)? },
            11 => FromInstance::Refused(text(&mut i)?),
            12 => FromInstance::OutputLimit,
            t => return Err(format!("answer tag {t}")),
        };
        i.done()?;
        Ok(m)
    }
}

impl protocol::FromConfined for FromInstance {}

/// A mount, as the keeper's child opens it.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct MountSpec {
    /// Host path.
    pub host: String,
    /// Guest path.
    pub guest: String,
    /// Read-write.
    pub writable: bool,
}

/// Everything an instance keeper needs to start instances (the module travels beside it, in
/// a sealed memfd).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct InstanceSpec {
    /// Guest arguments (argv\[0\] first).
    pub args: Vec<String>,
    /// Guest environment.
    pub env: Vec<(String, String)>,
    /// Mounts.
    pub mounts: Vec<MountSpec>,
    /// Guest linear memory limit, bytes.
    pub memory: u64,
    /// CPU seconds an instance may use over its life.
    pub cpu_seconds: u64,
    /// Guest stack, bytes.
    pub wasm_stack: u64,
    /// Stdout bytes a call may write.
    pub output: u64,
    /// Largest file the guest may write.
    pub file_size: u64,
    /// Open files.
    pub open_files: u64,
    /// Fail when landlock is missing.
    pub require_landlock: bool,
    /// Identity when started by root.
    pub run_as: (u32, u32),
    /// The import module host functions are linked from.
    pub host_module: String,
    /// The host functions' names, by index.
    pub host_fns: Vec<String>,
    /// A new store and instance for every call.
    pub fresh_per_call: bool,
    /// Size of the shared payload window.
    pub window: u64,
    /// How long the instance watches its doorbell for the next request before blocking,
    /// nanoseconds (`crate::spin`).
    pub spin_ns: u64,
    /// Test seam: calling this export answers garbage instead of a frame.
    pub garbage_export: Option<String>,
    /// Test seam: calling this export rings the answer doorbell falsely (many times, and
    /// long before the answer), as a guest that took the process over could.
    #[serde(default)]
    pub false_ring_export: Option<String>,
}

/// What the host asks of its keeper (module memfds attached with SCM_RIGHTS).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub enum ToKeeper {
    /// The first message: the spec; the module's sealed memfd attached.
    Configure(Box<InstanceSpec>),
    /// Hand over a ready instance.
    Spawn,
    /// The module changed (generation); its sealed memfd attached.
    Reload(u64),
}

/// What a keeper tells its host (a child's call socket, window memfd and pidfd attached to
/// [`FromKeeper::Child`]).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub enum FromKeeper {
    /// A child, attached: call socket, window memfd, pidfd.
    Child {
        /// Its pid.
        pid: i32,
        /// The module generation it runs.
        generation: u64,
        /// Whether it is in a cgroup of its own.
        cgroup: bool,
    },
    /// A handed-over child ended.
    Ended(Ended),
    /// The keeper could not start a child: one line.
    Failed(String),
}

/// How a child ended, as its keeper saw it (trusted: the keeper runs no guest code).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Ended {
    /// Its pid.
    pub pid: i32,
    /// Exit status, if it exited.
    pub exit: Option<i32>,
    /// The signal, if one killed it.
    pub signal: Option<i32>,
    /// The denied system call, for a seccomp death.
    pub seccomp: Option<String>,
    /// CPU time, nanoseconds.
    pub cpu_ns: u64,
    /// Peak memory, bytes (cgroup memory.peak, else maxrss).
    pub peak: u64,
    /// Whether the cgroup's OOM killer killed it.
    pub oom_killed: bool,
}

macro_rules! json_message {
    ($ty:ty, $kind:expr) => {
        impl protocol::Message for $ty {
            const KIND: u8 = $kind;
            const NAME: &'static str = stringify!($ty);
            const MAX_LEN: u32 = 1 << 20;

            fn encode_payload(&self, out: &mut Vec<u8>) -> Result<(), String> {
                serde_json::to_writer(out, self).map_err(|e| e.to_string())
            }

            fn decode_payload(payload: &[u8]) -> Result<Self, String> {
                serde_json::from_slice(payload).map_err(|e| e.to_string())
            }
        }
    };
}
json_message!(ToKeeper, 0x42);
json_message!(FromKeeper, 0x43);

#[cfg(test)]
mod tests {
    use super::*;
    use protocol::{decode_untrusted, encode, Message};

    fn round<M: Message + PartialEq + std::fmt::Debug>(m: M) {
        let frame = encode(&m).unwrap();
        assert_eq!(decode_untrusted::<M>(&frame).unwrap(), m);
        for cut in 0..frame.len() {
            assert!(decode_untrusted::<M>(&frame[..cut]).is_err());
        }
        let mut longer = frame.clone();
        longer.push(7);
        assert!(decode_untrusted::<M>(&longer).is_err());
    }

    #[test]
    fn every_message_round_trips_and_cuts_fail() {
        round(ToInstance::Call { export: "run".into(), input: Payload::Inline(b"abc".to_vec()) });
        round(ToInstance::Invoke {
            export: "f".into(),
            args: vec![Val::I32(-1), Val::I64(5), Val::F32(3), Val::F64(9)],
        });
        round(ToInstance::ReadMemory { ptr: 1, len: 2 });
        round(ToInstance::WriteMemory { ptr: 1, data: Payload::Window(70000) });
        round(ToInstance::HostReturn(Err("no".into())));
        round(FromInstance::Ready(vec!["a".into(), "b".into()]));
        round(FromInstance::Trapped { kind: "unreachable".into(), function: Some("f".into()), grow_refused: true });
        round(FromInstance::HostCall { func: 3, input: Payload::Inline(vec![0, 1, 255]) });
        round(FromInstance::HostFailed { name: "h".into(), message: "m".into() });
        round(FromInstance::OutputLimit);
        round(FromKeeper::Failed("x".into()));
    }

    #[test]
    fn garbage_never_panics() {
        let mut seed = 0x1234_5678u32;
        for len in 0..200usize {
            let bytes: Vec<u8> = (0..len)
                .map(|_| {
                    seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12345);
                    (seed >> 16) as u8
                })
                .collect();
            let _ = FromInstance::decode_payload(&bytes);
            let _ = ToInstance::decode_payload(&bytes);
        }
        // An oversize inline payload is refused.
        let mut p = vec![3u8, 0];
        p.extend_from_slice(&(INLINE_MAX as u32).to_le_bytes());
        assert!(FromInstance::decode_payload(&p).is_err());
    }
}
