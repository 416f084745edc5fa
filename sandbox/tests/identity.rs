//! Who the confined child is, seen from outside (/proc of the parent) and in its own report;
//! the errors of a misused `confine`; the spawn contract (panics, parent death).

mod common;

use common::Checks;
use sandbox::{Confinement, Namespaces, Termination};
use std::io::Read;
use std::os::fd::{AsRawFd, OwnedFd};

/// Spawns `child` with a pipe: the child writes its message into it; returns the message and
/// how the child ended. `inspect` runs in the parent once the message has arrived, while the
/// child waits for the pipe's other direction to close.
fn with_pipe(
    c: &Confinement,
    child: impl FnOnce(&mut std::fs::File) -> i32,
    inspect: impl FnOnce(libc::pid_t),
) -> (String, Termination) {
    let (to_parent_r, to_parent_w) = nix::unistd::pipe().expect("pipe");
    let (to_child_r, to_child_w) = nix::unistd::pipe().expect("pipe");
    let (parent_r, parent_w) = (to_parent_r.as_raw_fd(), to_child_w.as_raw_fd());
    let body = move || {
        // SAFETY: closing the child's copies of the parent's ends.
        unsafe {
            libc::close(parent_r);
            libc::close(parent_w);
        }
        let mut out = std::fs::File::from(to_parent_w);
        let code = child(&mut out);
        drop(out);
        let mut byte = [0u8];
        // SAFETY: waits for the parent to close its end.
        unsafe { libc::read(to_child_r.as_raw_fd(), byte.as_mut_ptr().cast(), 1) };
        code
    };
    // SAFETY: this test binary is single-threaded.
    let spawned = unsafe { sandbox::spawn(c, None, body) }.expect("spawn");
    let mut message = String::new();
    let _ = std::fs::File::from(to_parent_r).read_to_string(&mut message);
    inspect(spawned.pid());
    drop::<OwnedFd>(to_child_w);
    (message, spawned.wait().expect("wait"))
}

fn status_field(status: &str, key: &str) -> String {
    status
        .lines()
        .find_map(|l| l.strip_prefix(key))
        .map(|v| v.split_whitespace().collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

fn fully_confined(checks: &mut Checks, dirs: &common::Dirs) {
    let c = dirs.confinement();
    let root = nix::unistd::geteuid().is_root();
    let (uid, gid) =
        if root { (65534, 65534) } else { (nix::unistd::geteuid().as_raw(), nix::unistd::getegid().as_raw()) };
    let mut status = String::new();
    let mut ns_differ = Vec::new();
    let (message, got) = with_pipe(
        &c,
        |out| {
            use std::io::Write;
            match sandbox::confine(&dirs.confinement()) {
                Ok(applied) => {
                    let _ = write!(out, "{applied:?}");
                    0
                }
                Err(e) => {
                    let _ = write!(out, "error: {e}");
                    1
                }
            }
        },
        |pid| {
            status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
            for ns in ["user", "pid", "mnt", "net", "ipc", "uts", "cgroup"] {
                let theirs = std::fs::read_link(format!("/proc/{pid}/ns/{ns}"));
                let ours = std::fs::read_link(format!("/proc/self/ns/{ns}"));
                ns_differ.push((
                    ns,
                    match (theirs, ours) {
                        (Ok(t), Ok(o)) => Some(t != o),
                        _ => None,
                    },
                ));
            }
        },
    );
    checks.check("the child confines itself", got == Termination::Exited(0), &message);
    checks.note(format!("the child's report: {message}"));
    let ids = format!("{uid} {uid} {uid} {uid}");
    checks.check("its uids seen from outside", status_field(&status, "Uid:") == ids, status_field(&status, "Uid:"));
    let gids = format!("{gid} {gid} {gid} {gid}");
    checks.check("its gids seen from outside", status_field(&status, "Gid:") == gids, status_field(&status, "Gid:"));
    if root {
        checks.check(
            "no supplementary groups (root caller)",
            status_field(&status, "Groups:").is_empty(),
            status_field(&status, "Groups:"),
        );
    }
    for set in ["CapInh:", "CapPrm:", "CapEff:", "CapBnd:", "CapAmb:"] {
        checks.check(
            &format!("{set} empty"),
            status_field(&status, set) == "0000000000000000",
            status_field(&status, set),
        );
    }
    checks.check("NoNewPrivs", status_field(&status, "NoNewPrivs:") == "1", status_field(&status, "NoNewPrivs:"));
    checks.check("seccomp filter mode", status_field(&status, "Seccomp:") == "2", status_field(&status, "Seccomp:"));
    checks.check(
        "one seccomp program",
        status_field(&status, "Seccomp_filters:") == "1",
        status_field(&status, "Seccomp_filters:"),
    );
    for (ns, differ) in ns_differ {
        match differ {
            Some(d) => checks.check(&format!("its {ns} namespace is not ours"), d, ""),
            None => checks.note(format!(
                "/proc/<pid>/ns/{ns} unreadable (the child is not dumpable and this test is not root): not checked"
            )),
        }
    }
    let expected_ns = r#"namespaces: ["user", "pid", "mount", "network", "ipc", "uts", "cgroup"]"#;
    checks.check("the report lists every namespace", message.contains(expected_ns), expected_ns);
    checks.check(
        "the report's identity",
        message.contains(&format!("uid: {uid}, gid: {gid}")),
        format!("uid {uid} gid {gid}"),
    );
    let landlock = match common::landlock_abi() {
        Some(abi) => format!("landlock: Enforced {{ abi: {abi}, full: {} }}", abi >= 6),
        None => "landlock: Unsupported".into(),
    };
    checks.check("the report's landlock ABI", message.contains(&landlock), &landlock);
    checks.check(
        "the report's rlimits include RLIMIT_CORE 0",
        message.contains(r#"resource: "RLIMIT_CORE", soft: 0, hard: 0"#),
        "",
    );
    checks.check("the report says seccomp and no cgroup", message.contains("cgroup: false, seccomp: true"), "");
}

/// Runs `body` in a plain forked child (not spawned) and returns what it wrote to stderr's
/// replacement pipe, with its exit status.
fn plain_child(body: fn() -> String) -> String {
    let (r, w) = nix::unistd::pipe().expect("pipe");
    // SAFETY: this test binary is single-threaded.
    let pid = unsafe {
        sandbox::spawn::fork(move || {
            use std::io::Write;
            let message = body();
            let _ = std::fs::File::from(w).write_all(message.as_bytes());
            0
        })
    }
    .expect("fork");
    let mut message = String::new();
    let _ = std::fs::File::from(r).read_to_string(&mut message);
    let mut status = 0;
    // SAFETY: reaping our own child.
    unsafe { libc::waitpid(pid, &mut status, 0) };
    message
}

fn misuse(checks: &mut Checks) {
    let message = plain_child(|| match sandbox::confine(&Confinement::default()) {
        Ok(_) => "confined".into(),
        Err(e) => e.to_string(),
    });
    let expected = r#"namespaces ["user", "pid", "mount", "network", "ipc", "uts", "cgroup"] were not entered: start the process with sandbox::spawn (a pid namespace needs a new process)"#;
    checks.check("confine without spawn fails, naming the namespaces", message == expected, &message);

    let message = plain_child(|| {
        let _t = std::thread::spawn(|| std::thread::sleep(std::time::Duration::from_secs(2)));
        match sandbox::confine(&Confinement::default()) {
            Ok(_) => "confined".into(),
            Err(e) => e.to_string(),
        }
    });
    let expected = "confine must run before any thread starts: this process has 2 threads";
    checks.check("confine with a second thread fails", message == expected, &message);

    let message = plain_child(|| {
        let c = Confinement { namespaces: Namespaces::USER_ONLY, empty_root: true, ..Confinement::default() };
        match sandbox::confine(&c) {
            Ok(_) => "confined".into(),
            Err(e) => e.to_string(),
        }
    });
    let expected =
        "empty root: this process has no private mount namespace (start it with sandbox::spawn, mount namespace on)";
    checks.check("the empty root refuses the host's mount namespace", message == expected, &message);

    let message = plain_child(|| {
        let c = Confinement { namespaces: Namespaces::USER_ONLY, empty_root: false, ..Confinement::default() };
        match sandbox::confine(&c) {
            Ok(a) => format!("confined: landlock {}, seccomp {}", a.landlock, a.seccomp),
            Err(e) => e.to_string(),
        }
    });
    if nix::unistd::geteuid().is_root() {
        checks.check(
            "confine works on its own (root, no namespaces, no empty root)",
            message.starts_with("confined:"),
            &message,
        );
    } else {
        // Without CAP_SETPCAP neither the securebits nor the bounding set can be changed.
        let expected = "privileges: prctl(PR_SET_SECUREBITS): Operation not permitted (os error 1)";
        checks.check("confine on its own, unprivileged, fails closed", message == expected, &message);
    }
}

fn spawn_contract(checks: &mut Checks) {
    let as_root = Confinement { run_as: sandbox::RunAs { uid: 0, gid: 0 }, ..Confinement::default() };
    // SAFETY: this test binary is single-threaded.
    let result = unsafe { sandbox::spawn(&as_root, None, || 0) };
    if nix::unistd::geteuid().is_root() {
        let message = result.map(|_| "spawned".to_string()).unwrap_or_else(|e| e.to_string());
        let expected = "refusing to run as uid 0 gid 0: a run started by root takes an unprivileged identity (RunAs)";
        checks.check("root cannot ask for a run as root", message == expected, &message);
    } else if let Ok(child) = result {
        let got = child.wait().expect("wait");
        checks.check(
            "run_as is ignored when the caller is not root",
            got == Termination::Exited(0),
            common::describe(got),
        );
    }

    let panics = || {
        std::panic::set_hook(Box::new(|_| {}));
        panic!("child panics")
    };
    // SAFETY: this test binary is single-threaded.
    let child = unsafe { sandbox::spawn(&Confinement::default(), None, panics) }.expect("spawn");
    let got = child.wait().expect("wait");
    checks.check(
        "a panicking child exits 101, never unwinds into the parent",
        got == Termination::Exited(sandbox::spawn::PANIC_EXIT),
        common::describe(got),
    );

    // SAFETY: this test binary is single-threaded.
    let child = unsafe { sandbox::spawn(&Confinement::default(), None, || 42) }.expect("spawn");
    let mut status = 0;
    // SAFETY: reaping our own child.
    unsafe { libc::waitpid(child.pid(), &mut status, 0) };
    checks.check(
        "a raw wait status decodes",
        child.termination(status) == Termination::Exited(42),
        format!("{status:#x}"),
    );

    // An intermediate process spawns a child that would sleep forever, reports its pid and
    // exits: the child must die with it.
    let (r, w) = nix::unistd::pipe().expect("pipe");
    let body = move || {
        use std::io::Write;
        let sleeper = || loop {
            std::thread::sleep(std::time::Duration::from_secs(60));
        };
        // SAFETY: the intermediate process is single-threaded.
        let Ok(child) = (unsafe { sandbox::spawn(&Confinement::default(), None, sleeper) }) else { return 1 };
        let _ = std::fs::File::from(w).write_all(child.pid().to_string().as_bytes());
        0
    };
    // SAFETY: this test binary is single-threaded.
    let intermediate = unsafe { sandbox::spawn::fork(body) }.expect("fork");
    let mut pid = String::new();
    let _ = std::fs::File::from(r).read_to_string(&mut pid);
    let mut status = 0;
    // SAFETY: reaping our own child.
    unsafe { libc::waitpid(intermediate, &mut status, 0) };
    let pid: i32 = pid.trim().parse().unwrap_or(0);
    let gone = (0..200).any(|_| {
        std::thread::sleep(std::time::Duration::from_millis(10));
        // A reparented zombie is reaped by init; either way kill(pid, 0) then fails.
        let state = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        state.is_empty() || state.split_whitespace().nth(2) == Some("Z")
    });
    checks.check("the child dies with its parent (PR_SET_PDEATHSIG)", pid > 0 && gone, format!("pid {pid}"));
}

fn main() {
    let mut checks = Checks::new("identity: the confined child seen from outside; misuse; spawn's contract");
    let dirs = common::Dirs::create("identity");
    fully_confined(&mut checks, &dirs);
    misuse(&mut checks);
    spawn_contract(&mut checks);
    drop(dirs); // finish exits: no destructor runs after it
    checks.finish()
}
