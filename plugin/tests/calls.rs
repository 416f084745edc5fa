//! The three ways to call a plugin: bytes through stdin/stdout (`call`), typed values and
//! memory for pointer-ABI modules (`invoke`, `read_memory`, `write_memory`, sessions), and
//! host functions running in the host (with nested calls and their depth cap).

mod common;

use common::Checks;
use sandboxrun_plugin::{CallError, Plugin, Val};
use std::sync::{Arc, OnceLock};

fn nix_is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

fn main() {
    sandboxrun_plugin::run_if_child();
    let mut c = Checks::new();
    let plugin = Plugin::builder(common::plain()).build().expect("build");
    c.run("the instance is confined: own namespaces, seccomp, no_new_privs, no capabilities", || {
        let pid = plugin.stats().instances[0].pid.expect("a live instance");
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
        let field = |k: &str| status.lines().find_map(|l| l.strip_prefix(k)).unwrap_or("").trim().to_string();
        assert_eq!(field("Seccomp:"), "2", "{status}");
        assert_eq!(field("NoNewPrivs:"), "1");
        assert_eq!(field("CapEff:"), "0000000000000000");
        for ns in ["pid", "mnt", "net", "user", "ipc", "uts"] {
            let ours = std::fs::read_link(format!("/proc/self/ns/{ns}")).unwrap();
            let theirs = std::fs::read_link(format!("/proc/{pid}/ns/{ns}"));
            // Not dumpable: the link may not be readable at all; if it is, it differs.
            if let Ok(theirs) = theirs {
                assert_ne!(ours, theirs, "{ns}");
            }
        }
        if nix_is_root() {
            assert!(field("Uid:").starts_with("65534"), "{status}");
        }
    });
    c.run("call: empty input and output", || assert_eq!(plugin.call("empty", b"").unwrap(), b""));
    c.run("call: small echo", || assert_eq!(plugin.call("echo", b"hello").unwrap(), b"hello"));
    c.run("call: 1 KiB echo", || {
        let input = vec![7u8; 1024];
        assert_eq!(plugin.call("echo", &input).unwrap(), input);
    });
    c.run("call: 1 MiB echo goes through the window", || {
        let input: Vec<u8> = (0..1 << 20).map(|i| (i * 7 % 251) as u8).collect();
        assert_eq!(plugin.call("echo", &input).unwrap(), input);
    });
    c.run("call: exactly 64 KiB (the first windowed size)", || {
        let input = vec![1u8; 64 << 10];
        assert_eq!(plugin.call("echo", &input).unwrap(), input);
    });
    c.run("call: the instance keeps its state between calls", || {
        let a = plugin.call("count", b"").unwrap()[0];
        let b = plugin.call("count", b"").unwrap()[0];
        assert_eq!(b, a + 1);
    });
    c.run("call: a missing export is refused, the instance stays", || {
        let before = plugin.call("count", b"").unwrap()[0];
        assert!(matches!(plugin.call("nope", b""), Err(CallError::Refused(_))));
        assert_eq!(plugin.call("count", b"").unwrap()[0], before + 1);
    });
    c.run("call: larger than the window is refused", || {
        let small = Plugin::builder(common::plain()).max_payload(64 << 10).build().unwrap();
        let got = small.call("echo", &vec![0u8; 100 << 10]);
        assert!(matches!(got, Err(CallError::TooLarge { .. })), "{got:?}");
    });
    c.run("call: fresh per call forgets state", || {
        let fresh = Plugin::builder(common::plain()).fresh_per_call(true).build().unwrap();
        assert_eq!(fresh.call("count", b"").unwrap(), [1]);
        assert_eq!(fresh.call("count", b"").unwrap(), [1]);
    });
    c.run("invoke: values in and out", || {
        assert_eq!(plugin.invoke("add", &[Val::I32(2), Val::I32(40)]).unwrap(), [Val::I32(42)]);
        let two = plugin.invoke("add64", &[Val::I64(-5), Val::F64(1.5f64.to_bits())]).unwrap();
        assert_eq!(two, [Val::I64(-5), Val::F64(1.5f64.to_bits())]);
    });
    c.run("invoke: wrong argument types are refused", || {
        assert!(matches!(plugin.invoke("add", &[Val::I64(1)]), Err(CallError::Refused(_))));
    });
    c.run("pointer ABI: malloc, write_memory, upper, read_memory, free", || {
        let text = b"hello, plugin";
        let got = plugin
            .session(|s| {
                let [Val::I32(p)] = s.invoke("malloc", &[Val::I32(text.len() as i32)]).unwrap()[..] else {
                    panic!("malloc")
                };
                s.write_memory(p as u32, text).unwrap();
                s.invoke("upper", &[Val::I32(p), Val::I32(text.len() as i32)]).unwrap();
                let out = s.read_memory(p as u32, text.len() as u32).unwrap();
                s.invoke("free", &[Val::I32(p)]).unwrap();
                out
            })
            .unwrap();
        assert_eq!(got, b"HELLO, PLUGIN");
    });
    c.run("pointer ABI: 1 MiB through memory", || {
        let big: Vec<u8> = (0..1 << 20).map(|i| b'a' + (i % 26) as u8).collect();
        plugin.write_memory(0x400000, &big).unwrap();
        plugin.invoke("upper", &[Val::I32(0x400000), Val::I32(big.len() as i32)]).unwrap();
        assert_eq!(plugin.read_memory(0x400000, big.len() as u32).unwrap(), big.to_ascii_uppercase());
    });
    c.run("memory out of bounds is refused", || {
        assert!(matches!(plugin.read_memory(u32::MAX - 4, 100), Err(CallError::Refused(_))));
        assert!(matches!(plugin.write_memory(u32::MAX - 1, b"abc"), Err(CallError::Refused(_))));
    });
    c.run("host functions: kv lookup and log run in the host", || {
        let logged = Arc::new(std::sync::Mutex::new(Vec::new()));
        let l = logged.clone();
        let host_pid = std::process::id();
        let p = Plugin::builder(common::with_host())
            .host_fn("kv", move |key| match key {
                b"pid" => Ok(std::process::id().to_string().into_bytes()),
                b"big" => Ok(vec![b'x'; 200 << 10]),
                k => Ok([b"value of ", k].concat()),
            })
            .host_fn("log", move |line| {
                l.lock().unwrap().push(line.to_vec());
                Ok(Vec::new())
            })
            .build()
            .unwrap();
        assert_eq!(p.call("lookup", b"colour").unwrap(), b"value of colour");
        assert_eq!(p.call("lookup", b"pid").unwrap(), host_pid.to_string().as_bytes());
        assert_eq!(p.call("lookup", b"big").unwrap(), vec![b'x'; 200 << 10]);
        let big_key = vec![b'k'; 100 << 10];
        assert_eq!(p.call("lookup", &big_key).unwrap().len(), 9 + big_key.len());
        p.call("logged", b"a line").unwrap();
        assert_eq!(*logged.lock().unwrap(), [b"a line".to_vec()]);
    });
    c.run("host functions: an error is the host's, the instance is replaced", || {
        let p = Plugin::builder(common::with_host())
            .host_fn("kv", |_| Err("no such key".into()))
            .host_fn("log", |_| Ok(Vec::new()))
            .build()
            .unwrap();
        let got = p.call("lookup", b"k");
        assert!(matches!(&got, Err(CallError::HostFunction { name, message }) if name == "kv" && message.contains("no such key")), "{got:?}");
        assert_eq!(p.call("count", b"").unwrap(), [1], "a fresh instance");
    });
    c.run("host functions: nested calls, capped in depth", || {
        let me: Arc<OnceLock<Plugin>> = Arc::new(OnceLock::new());
        let m = me.clone();
        let p = Plugin::builder(common::with_host())
            .instances(3)
            .max_depth(2)
            .host_fn("kv", move |key| {
                // Calls the plugin again: through another instance of the pool.
                let inner = m.get().unwrap().call("lookup", key);
                Ok(match inner {
                    Ok(v) => [b"[", &v[..], b"]"].concat(),
                    Err(e) => format!("<{}>", e.kind()).into_bytes(),
                })
            })
            .host_fn("log", |_| Ok(Vec::new()))
            .build()
            .unwrap();
        me.set(p).unwrap();
        let out = me.get().unwrap().call("lookup", b"k").unwrap();
        assert_eq!(out, b"[<too_deep>]");
    });
    c.run("host functions: a missing one fails the build with its name", || {
        let got = Plugin::builder(common::with_host()).host_fn("kv", |_| Ok(Vec::new())).build();
        let e = got.unwrap_err().to_string();
        assert!(e.contains("host.log"), "{e}");
    });
    c.finish();
}
