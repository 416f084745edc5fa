//! A bounded, deterministic fuzz loop over every message type: random bytes, random bytes
//! behind a valid header, and valid frames mutated (bytes flipped, cut, extended, spliced,
//! lengths rewritten). Decoding must never panic, never accept trailing bytes, and whatever
//! it accepts must survive a round trip. Seeded, so a failure reproduces; a few seconds long.
//! (The coverage-guided targets live in the workspace's fuzz crate; this runs with the tests.)

use protocol::code_channel::CacheAnswer;
use protocol::handover::Handover;
use protocol::handshake::{ToChild, ToParent};
use protocol::reply::Reply;
use protocol::report::{Applied, ChildOutcome, ChildReport, ChildStarted, Stages, TrapReport};
use protocol::request::Request;
use protocol::slot::SlotNews;
use protocol::{decode_untrusted, encode, read_untrusted, Message, HEADER_LEN, MAGIC, VERSION};
use std::ffi::OsString;
use std::fmt::Debug;
use std::os::unix::ffi::OsStringExt;

/// Cases per message type.
const ROUNDS: usize = 50_000;

/// xorshift64*: deterministic, no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }

    fn bytes(&mut self, n: usize) -> Vec<u8> {
        // Mostly bytes JSON cares about, so that payloads get past the first character.
        const INTERESTING: &[u8] = b"{}[]\":,0123456789-.eE truefalsn\\u";
        (0..n)
            .map(|_| if self.below(3) == 0 { self.next() as u8 } else { INTERESTING[self.below(INTERESTING.len())] })
            .collect()
    }
}

/// One mutation of a valid frame.
fn mutate(rng: &mut Rng, frame: &[u8], others: &[Vec<u8>]) -> Vec<u8> {
    let mut f = frame.to_vec();
    for _ in 0..=rng.below(3) {
        match rng.below(8) {
            0 if !f.is_empty() => {
                let i = rng.below(f.len());
                f[i] ^= 1 << rng.below(8);
            }
            1 if !f.is_empty() => {
                let i = rng.below(f.len());
                f[i] = rng.next() as u8;
            }
            2 => f.truncate(rng.below(f.len() + 1)),
            3 => {
                let n = rng.below(16) + 1;
                let extra = rng.bytes(n);
                f.extend(extra);
            }
            4 if f.len() >= HEADER_LEN => {
                // A length that disagrees with the bytes: near the truth, or anything.
                let len = if rng.below(2) == 0 {
                    ((f.len() - HEADER_LEN) as u32).wrapping_add(rng.below(9) as u32).wrapping_sub(4)
                } else {
                    rng.next() as u32
                };
                f[2..HEADER_LEN].copy_from_slice(&len.to_le_bytes());
            }
            5 if f.len() > HEADER_LEN => {
                // Insert or delete inside the payload, then fix the length so the payload parser
                // (not the framing) has to cope.
                let i = HEADER_LEN + rng.below(f.len() - HEADER_LEN);
                if rng.below(2) == 0 {
                    f.remove(i);
                } else {
                    let b = rng.bytes(1)[0];
                    f.insert(i, b);
                }
                let len = (f.len() - HEADER_LEN) as u32;
                f[2..HEADER_LEN].copy_from_slice(&len.to_le_bytes());
            }
            6 if !others.is_empty() => {
                // Another message's payload behind this header.
                let other = &others[rng.below(others.len())];
                f.truncate(HEADER_LEN.min(f.len()));
                f.extend_from_slice(other.get(HEADER_LEN..).unwrap_or_default());
                if f.len() >= HEADER_LEN {
                    let len = (f.len() - HEADER_LEN) as u32;
                    f[2..HEADER_LEN].copy_from_slice(&len.to_le_bytes());
                }
            }
            _ => {
                let n = rng.below(64);
                f = rng.bytes(n);
            }
        }
    }
    f
}

/// Decodes `bytes` as an `M` both ways; whatever is accepted round-trips and was exactly one
/// frame.
fn check<M: Message + PartialEq + Debug>(bytes: &[u8]) -> bool {
    let decoded = decode_untrusted::<M>(bytes);
    let mut stream = bytes;
    let read = read_untrusted::<M>(&mut stream);
    match decoded {
        Ok(message) => {
            assert!(stream.is_empty(), "the whole frame was read");
            assert_eq!(read.unwrap(), message, "stream and slice agree");
            let again = encode(&message).expect("what decodes encodes");
            assert_eq!(decode_untrusted::<M>(&again).unwrap(), message, "round trip of {bytes:?}");
            true
        }
        Err(_) => {
            // A stream may hold a valid frame followed by more: then exactly that frame was
            // read and bytes are left.
            if let Ok(message) = read {
                assert!(!stream.is_empty(), "{bytes:?} read as {message:?} but refused whole");
            }
            false
        }
    }
}

/// The loop for one message type.
fn fuzz<M: Message + PartialEq + Debug>(seed: u64, samples: &[M], others: &[Vec<u8>]) {
    let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
    let frames: Vec<Vec<u8>> = samples.iter().map(|m| encode(m).unwrap()).collect();
    for frame in &frames {
        assert!(check::<M>(frame));
    }
    let mut accepted = 0;
    for round in 0..ROUNDS {
        let bytes = match round % 4 {
            0 => {
                let n = rng.below(128);
                rng.bytes(n)
            }
            1 => {
                let mut b = vec![MAGIC | VERSION, M::KIND];
                let len = rng.below(96);
                b.extend_from_slice(&(len as u32).to_le_bytes());
                b.extend(rng.bytes(len));
                b
            }
            _ => {
                let i = rng.below(frames.len());
                mutate(&mut rng, &frames[i], others)
            }
        };
        accepted += usize::from(check::<M>(&bytes));
    }
    // Mutations keep some frames valid: the loop reaches the payload parsers, not only the
    // header checks.
    assert!(accepted > 0, "{}: nothing decoded", M::NAME);
}

fn report() -> ChildReport {
    ChildReport {
        outcome: ChildOutcome::Trapped(TrapReport {
            kind: "integer divide by zero".into(),
            function: Some("div (3)".into()),
            offset: Some(42),
            tag: None,
        }),
        compiled: false,
        stages: Stages { load: 0.5, compile: 0.25, link: 0.0, instantiate: 1.0, execute: 2.0 },
        stdout_bytes: 1,
        stderr_bytes: 2,
        memory_grow_refused: true,
        instructions: Some(u64::MAX),
        confinement: Some(Applied {
            namespaces: vec!["user".into()],
            uid: 1,
            gid: 2,
            empty_root: true,
            landlock: "abi 6".into(),
            seccomp: true,
            no_new_privs: true,
            capabilities_dropped: true,
            rlimits: [("nofile".to_string(), 64)].into_iter().collect(),
            in_cgroup: true,
            open_fds: vec![0, 1, 2],
        }),
    }
}

fn child_started() -> ChildStarted {
    let r = report();
    ChildStarted { compiled: true, stages: r.stages, confinement: r.confinement }
}

#[test]
fn decoding_any_bytes_as_any_message_never_panics() {
    let started = std::time::Instant::now();
    let handovers = vec![Handover { spec: vec!["a".to_string(), "b".to_string()] }, Handover { spec: Vec::new() }];
    let requests = vec![
        Request {
            argv: vec!["sandboxrun".into(), OsString::from_vec(vec![0xff]), "m.wasm".into()],
            env: vec![("HOME".into(), "/root".into())],
        },
        Request { argv: Vec::new(), env: Vec::new() },
    ];
    // Every sample frame: payloads of other types to splice behind a header.
    let mut all: Vec<Vec<u8>> = Vec::new();
    all.extend([encode(&ToChild::Proceed { cgroup: true }).unwrap(), encode(&ToParent::Ready).unwrap()]);
    all.extend([encode(&CacheAnswer::Hit { len: 9 }).unwrap(), encode(&SlotNews::Done { hot: None }).unwrap()]);
    all.extend([encode(&Reply::Status(3)).unwrap(), encode(&report()).unwrap(), encode(&child_started()).unwrap()]);
    all.extend(handovers.iter().map(|h| encode(h).unwrap()));
    all.extend(requests.iter().map(|r| encode(r).unwrap()));

    fuzz(1, &[ToChild::Proceed { cgroup: true }, ToChild::Proceed { cgroup: false }], &all);
    fuzz(2, &[ToParent::Ready, ToParent::Failed("setresuid: EPERM".into())], &all);
    fuzz(3, &[CacheAnswer::NoCache, CacheAnswer::Miss, CacheAnswer::Hit { len: 1 << 20 }], &all);
    fuzz(4, &handovers, &all);
    fuzz(5, &requests, &all);
    fuzz(6, &[SlotNews::Busy, SlotNews::Done { hot: None }], &all);
    fuzz(7, &[Reply::Status(42), Reply::Refused("bad request".into())], &all);
    fuzz(8, &[report()], &all);
    fuzz(9, &[child_started()], &all);
    assert!(started.elapsed().as_secs() < 30, "bounded: {:?}", started.elapsed());
}

#[test]
fn a_decoded_request_never_holds_what_cannot_be_set() {
    // Requests end up as arguments and environment variables: what decodes must be settable.
    let mut rng = Rng(0x5EED);
    let base = encode(&Request { argv: vec!["a".into()], env: vec![("HOME".into(), "/h".into())] }).unwrap();
    let variants: [&[u8]; 4] = [
        br#"{"argv":["a\u0000"],"env":[]}"#,
        br#"{"argv":[],"env":[["","x"]]}"#,
        br#"{"argv":[],"env":[["A=B","x"]]}"#,
        br#"{"argv":[[97,0]],"env":[]}"#,
    ];
    for payload in variants {
        let mut frame = base[..HEADER_LEN].to_vec();
        frame[2..HEADER_LEN].copy_from_slice(&(payload.len() as u32).to_le_bytes());
        frame.extend_from_slice(payload);
        assert!(decode_untrusted::<Request>(&frame).is_err(), "{}", String::from_utf8_lossy(payload));
    }
    for _ in 0..ROUNDS {
        let bytes = mutate(&mut rng, &base, &[]);
        if let Ok(r) = decode_untrusted::<Request>(&bytes) {
            let ok = |s: &OsString| !s.as_encoded_bytes().contains(&0);
            assert!(r.argv.iter().all(ok) && r.env.iter().all(|(k, v)| ok(k) && ok(v)));
            assert!(r.env.iter().all(|(k, _)| !k.is_empty() && !k.as_encoded_bytes().contains(&b'=')));
        }
    }
}
