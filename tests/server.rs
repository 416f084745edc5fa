//! `sandboxrun serve` and `sandboxrun --server`: a run through the server behaves as the same
//! run started directly — output, exit status, report, confinement — and the server keeps
//! serving whatever its clients do.

mod common;

use common::*;
use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixDatagram, UnixStream};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The states (`R`, `S`, ...) of the processes of the server on `socket` — itself, its slots,
/// their children: forks, whose command line names the socket.
fn process_states(socket: &Path) -> Vec<String> {
    let socket = socket.to_string_lossy().into_owned();
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            String::from_utf8_lossy(&cmdline).contains(&socket)
        })
        .filter_map(|pid| {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
            Some(stat.rsplit(')').next()?.split_whitespace().next()?.to_string())
        })
        .collect()
}

/// Sends a datagram with descriptors attached, as a client would.
fn send_with_fds(socket: &UnixDatagram, to: &Path, body: &[u8], fds: &[i32]) {
    use nix::sys::socket::{sendmsg, ControlMessage, MsgFlags, UnixAddr};
    let address = UnixAddr::new(to).unwrap();
    let iov = [std::io::IoSlice::new(body)];
    let fd = std::os::fd::AsRawFd::as_raw_fd(socket);
    sendmsg(fd, &iov, &[ControlMessage::ScmRights(fds)], MsgFlags::empty(), Some(&address)).unwrap();
}

/// The parts of a report that must not depend on how the run was started.
fn comparable(report: &serde_json::Value) -> serde_json::Value {
    let mut c = report["confinement"].clone();
    let fds = c["open_fds"].as_array().map(Vec::len);
    c["open_fds"] = serde_json::json!(fds);
    // A root server's runs share one empty network namespace instead of one each.
    for n in c["namespaces"].as_array_mut().unwrap() {
        if n == "network (shared, empty)" {
            *n = serde_json::json!("network");
        }
    }
    serde_json::json!({
        "status": report["status"], "exit_code": report["exit_code"], "stdout_bytes": report["stdout_bytes"],
        "stderr_bytes": report["stderr_bytes"], "module_sha256": report["module_sha256"], "confinement": c,
    })
}

#[test]
fn a_run_through_the_server_is_the_run_started_directly() {
    let dir = temp_dir("server-same");
    let server = Server::start(&dir);
    std::fs::create_dir_all(dir.join("data")).unwrap();
    rw_dir(&dir.join("out"));
    write(&dir.join("data"), "input.txt", "hello from host\n");
    let policy = write(
        &dir,
        "p.yaml",
        "version: 1\nargs: [arg1]\nenv: {GREETING: hi}\nmounts:\n  - {host: data, guest: /ro}\n  - {host: out, guest: /rw, mode: rw}\n",
    );
    // Twice: the served run below is a cache hit, and a hit holds one descriptor more (the
    // artifact's file) than the miss of a first run.
    let direct =
        || run(bin().arg("--report").arg(dir.join("direct.json")).arg("-p").arg(&policy).arg(fixture("files.wasm")));
    direct();
    let direct = direct();
    let served = run(server
        .client()
        .arg("--report")
        .arg(dir.join("served.json"))
        .arg("-p")
        .arg(&policy)
        .arg(fixture("files.wasm")));
    assert_eq!(served.status.code(), Some(3), "{}", stderr(&served));
    assert_eq!((stdout(&served), stderr(&served)), (stdout(&direct), stderr(&direct)));
    assert_eq!(stdout(&served).lines().filter(|l| l.ends_with(": ok")).count(), 15, "{}", stdout(&served));
    let (direct, served) = (report_json(&dir.join("direct.json")), report_json(&dir.join("served.json")));
    assert_eq!(comparable(&served), comparable(&direct));
    assert_eq!(served["confinement"]["seccomp"], true);
    assert_eq!(served["confinement"]["empty_root"], true);
    assert_eq!(served["confinement"]["namespaces"].as_array().unwrap().len(), 7);
    if is_root() {
        assert_eq!(served["confinement"]["namespaces"][3], "network (shared, empty)");
    }
    assert_eq!(served["cache"], "hit", "the direct run cached the module for the served one");
}

#[test]
fn exit_statuses_verdicts_and_usage_errors_through_the_server() {
    let dir = temp_dir("server-status");
    let server = Server::start(&dir);
    let wat = write(&dir, "m.wat", HELLO);
    let o = run(server.client().arg(&wat));
    assert_eq!((o.status.code(), stdout(&o)), (Some(42), "hello, world\n".to_string()), "{}", stderr(&o));

    let o = run(server.client().args(["--invoke", "div"]).arg(&wat).args(["1", "0"]));
    assert_eq!(o.status.code(), Some(134));
    assert_eq!(stderr(&o).lines().count(), 1, "{}", stderr(&o));
    assert!(stderr(&o).contains("integer divide by zero"), "{}", stderr(&o));

    let policy = write(&dir, "slow.yaml", "version: 1\nlimits: {wall_time: 300ms}\n");
    let o = run(server.client().arg("-p").arg(&policy).args(["--invoke", "spin"]).arg(&wat));
    assert_eq!(o.status.code(), Some(124), "{}", stderr(&o));

    let o = run(server.client().arg("--no-such-option").arg(&wat));
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("Usage:"), "{}", stderr(&o));

    let o = run(server.client().arg(dir.join("missing.wasm")));
    assert_eq!(o.status.code(), Some(125));
    assert!(stderr(&o).contains("missing.wasm"), "{}", stderr(&o));

    // The client binary: the same run; without a socket, its usage.
    let client = || {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_sandboxrun-client"));
        cmd.envs(bin().get_envs().filter_map(|(k, v)| Some((k.to_owned(), v?.to_owned()))));
        cmd
    };
    let o = run(client().arg(&server.socket).args(["--invoke", "add"]).arg(&wat).args(["2", "40"]));
    assert_eq!((o.status.code(), stdout(&o)), (Some(0), "42\n".to_string()), "{}", stderr(&o));
    let o = run(&mut client());
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("usage: sandboxrun-client SOCKET"), "{}", stderr(&o));
}

#[test]
fn the_clients_directory_environment_and_stdin_are_the_runs() {
    let dir = temp_dir("server-client");
    let server = Server::start(&dir);
    // stdin: inherit reads the client's stdin; the policy and report paths are relative to
    // the client's working directory; the cache is the client's ($SANDBOXRUN_CACHE).
    write(&dir, "q.yaml", "version: 1\nstdin: inherit\n");
    let cache = dir.join("own-cache.sqlite");
    let mut child = server
        .client()
        .current_dir(&dir)
        .env("SANDBOXRUN_CACHE", &cache)
        .args(["-p", "q.yaml", "--report", "r.json"])
        .arg(fixture("echo.wasm"))
        .arg("7")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(b"piped\n").unwrap();
    let o = child.wait_with_output().unwrap();
    assert_eq!((o.status.code(), stdout(&o)), (Some(7), "PIPED\n".to_string()), "{}", stderr(&o));
    assert_eq!(report_json(&dir.join("r.json"))["exit_code"], 7);
    assert!(cache.exists(), "the run used the client's cache");
}

#[test]
fn concurrent_clients_each_get_their_own_run() {
    let dir = temp_dir("server-concurrent");
    let server = Server::start(&dir);
    let policy = write(&dir, "p.yaml", "version: 1\nstdin: inherit\n");
    let clients: Vec<_> = (0..6)
        .map(|i| {
            let mut child = server
                .client()
                .arg("-p")
                .arg(&policy)
                .arg(fixture("echo.wasm"))
                .arg(i.to_string())
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .spawn()
                .unwrap();
            child.stdin.take().unwrap().write_all(format!("run{i}\n").as_bytes()).unwrap();
            child
        })
        .collect();
    for (i, child) in clients.into_iter().enumerate() {
        let o = child.wait_with_output().unwrap();
        assert_eq!((o.status.code(), stdout(&o)), (Some(i as i32), format!("RUN{i}\n")));
    }
}

#[test]
fn the_server_outlives_bad_clients_and_guards_its_socket() {
    let dir = temp_dir("server-bad");
    let server = Server::start(&dir);
    let mode = std::fs::metadata(&server.socket).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    // Garbage: a datagram without a reply socket (dropped), one whose request is malformed
    // (answered with one line, in a reply frame), one whose reply socket is closed at once.
    let probe = UnixDatagram::unbound().unwrap();
    probe.send_to(&[0xff; 64], &server.socket).unwrap();
    let (mut reply, theirs) = UnixStream::pair().unwrap();
    send_with_fds(&probe, &server.socket, &[0xff; 64], &[std::os::fd::AsRawFd::as_raw_fd(&theirs)]);
    drop(theirs);
    let mut answer = Vec::new();
    reply.read_to_end(&mut answer).unwrap();
    let answer = protocol::decode_untrusted::<protocol::reply::Reply>(&answer).unwrap();
    assert!(
        matches!(&answer, protocol::reply::Reply::Refused(why) if why.contains("bad request") && why.contains("not a message")),
        "{answer:?}"
    );
    let (reply, theirs) = UnixStream::pair().unwrap();
    drop(reply);
    let request = protocol::request::Request { argv: vec!["x".into()], env: Vec::new() };
    let request = protocol::encode(&request).unwrap();
    send_with_fds(&probe, &server.socket, &request, &[std::os::fd::AsRawFd::as_raw_fd(&theirs)]);
    let wat = write(&dir, "m.wat", HELLO);
    let o = run(server.client().arg(&wat));
    assert_eq!(o.status.code(), Some(42), "{}", stderr(&o));

    // A second server on the same socket, or a socket path that is a file, is refused.
    let o = run(bin().args(["serve", "--socket"]).arg(&server.socket));
    assert_eq!(o.status.code(), Some(125));
    assert!(stderr(&o).contains("already listening"), "{}", stderr(&o));
    let file = write(&dir, "not-a-socket", "");
    let o = run(bin().args(["serve", "--socket"]).arg(&file));
    assert_eq!(o.status.code(), Some(125));
    assert!(stderr(&o).contains("not a socket"), "{}", stderr(&o));

    // No server: one line, 125.
    let o = run(bin().arg("--server").arg(dir.join("none.sock")).arg(&wat));
    assert_eq!(o.status.code(), Some(125));
    assert_eq!(stderr(&o).lines().count(), 1, "{}", stderr(&o));

    if is_root() {
        // Another user: refused by the socket's mode, and by the server if the mode is relaxed.
        use std::os::unix::process::CommandExt;
        let as_nobody = || {
            let mut cmd = server.client();
            cmd.arg(&wat).current_dir("/").uid(65534).gid(65534);
            cmd
        };
        let o = run(&mut as_nobody());
        assert_eq!(o.status.code(), Some(125));
        assert!(stderr(&o).contains("Permission denied"), "{}", stderr(&o));
        std::fs::set_permissions(&server.socket, std::fs::Permissions::from_mode(0o666)).unwrap();
        let o = run(&mut as_nobody());
        assert_eq!(o.status.code(), Some(125));
        assert!(stderr(&o).contains("serves uid 0 only, not uid 65534"), "{}", stderr(&o));
    }
}

#[test]
fn no_process_outlives_the_server() {
    let dir = temp_dir("server-end");
    let server = Server::start(&dir);
    let wat = write(&dir, "m.wat", HELLO);
    let o = run(server.client().arg(&wat));
    assert_eq!(o.status.code(), Some(42), "{}", stderr(&o));
    let socket = server.socket.clone();
    let states = || process_states(&socket);
    assert!(states().len() >= 3, "the server, a slot and its child: {:?}", states());
    drop(server);
    let started = Instant::now();
    while !states().is_empty() {
        assert!(started.elapsed() < Duration::from_secs(5), "left behind: {:?}", states());
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_run_ends_when_its_client_goes_away() {
    let dir = temp_dir("server-cancel");
    let server = Server::start(&dir);
    let wat = write(&dir, "m.wat", HELLO);
    let policy = write(&dir, "long.yaml", "version: 1\nlimits: {wall_time: 60s, cpu_time: 60s}\n");
    // The server's processes that are running: the spinning child.
    let running = || process_states(&server.socket).iter().filter(|state| *state == "R").count();
    let mut client = server
        .client()
        .arg("-p")
        .arg(&policy)
        .args(["--invoke", "spin"])
        .arg(&wat)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let started = Instant::now();
    while running() == 0 {
        assert!(started.elapsed() < Duration::from_secs(10), "the run did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    client.kill().unwrap();
    client.wait().unwrap();
    let killed = Instant::now();
    while running() > 0 {
        assert!(killed.elapsed() < Duration::from_secs(5), "the run outlived its client");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn another_identity_gets_a_child_of_its_own() {
    // Slots prepare children for the default identity; a run asking for another one (as
    // root) is given a child spawned for it, with the same confinement.
    let dir = temp_dir("server-run-as");
    let server = Server::start(&dir);
    let wat = write(&dir, "m.wat", HELLO);
    let report = dir.join("r.json");
    let o = run(server.client().args(["--run-as", "4321"]).arg("--report").arg(&report).arg(&wat));
    assert_eq!((o.status.code(), stdout(&o)), (Some(42), "hello, world\n".to_string()), "{}", stderr(&o));
    let report = report_json(&report);
    // SAFETY: getuid has no preconditions.
    let expected = if is_root() { 4321 } else { unsafe { libc::getuid() } };
    assert_eq!(report["confinement"]["uid"], expected);
    assert_eq!(report["confinement"]["seccomp"], true);
    assert_eq!(report["confinement"]["empty_root"], true);
}

#[test]
fn an_unprivileged_server_gives_each_run_its_own_network_namespace() {
    // Only root may move the server into a network namespace its runs share; any other user's
    // runs each get their own, as runs started directly do.
    let dir = temp_dir("server-unprivileged");
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).unwrap();
    let wat = write(&dir, "m.wat", HELLO);
    std::fs::set_permissions(&wat, std::fs::Permissions::from_mode(0o644)).unwrap();
    let socket = dir.join("u.sock");
    let as_user = |bin: &str| {
        let mut cmd = if is_root() {
            let mut c = Command::new("setpriv");
            c.args(["--reuid=65534", "--regid=65534", "--clear-groups"]).arg(bin);
            c
        } else {
            Command::new(bin)
        };
        cmd.env("HOME", &dir).env_remove("SANDBOXRUN_CACHE").env_remove("XDG_CACHE_HOME").current_dir(&dir);
        cmd
    };
    let server = Server::launch(as_user(env!("CARGO_BIN_EXE_sandboxrun")), socket.clone());
    let o = as_user(env!("CARGO_BIN_EXE_sandboxrun-client"))
        .arg(&socket)
        .args(["--report", "r.json", "m.wat"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    drop(server);
    assert_eq!((o.status.code(), stdout(&o)), (Some(42), "hello, world\n".to_string()), "{}", stderr(&o));
    let report = report_json(&dir.join("r.json"));
    let namespaces = report["confinement"]["namespaces"].as_array().unwrap();
    assert!(namespaces.iter().any(|n| n == "network"), "{namespaces:?}");
    assert_eq!(report["confinement"]["seccomp"], true);
}

/// A server keeps at hand the modules its runs found in the code cache: a later run of the
/// same file neither hashes it nor looks it up (`-v` says so) and reports the same; a module
/// changed in place is seen at once, never served from the set.
#[test]
fn a_module_at_hand_is_not_hashed_again_its_use_is_recorded_and_a_changed_one_is_seen() {
    let dir = temp_dir("server-hot");
    let server = Server::start(&dir);
    let module = printing_module;
    let path = dir.join("hot.wasm");
    std::fs::write(&path, module("first")).unwrap();
    // Only a module that last changed a moment before it was hashed is kept.
    std::thread::sleep(std::time::Duration::from_millis(2100));
    let report = dir.join("r.json");
    let run = || {
        let o = run(server.client().arg("-v").arg("--report").arg(&report).arg(&path));
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
        (stdout(&o), stderr(&o).contains("at hand"), report_json(&report))
    };
    let (out, at_hand, first) = run();
    assert_eq!((out.as_str(), at_hand), ("first\n", false));
    // The first hit is reported to the server; slots started after that inherit it (a pool of
    // two: within a few runs).
    // Every run's use reaches the index (eviction is least recently used first): the row is
    // made old before each run, and a run with the module at hand makes it new again.
    let db = rusqlite::Connection::open(cache_path()).unwrap();
    let last_used = || -> i64 {
        db.query_row("SELECT last_used FROM entries WHERE module_sha256 = ?1", [first["module_sha256"].as_str()], |r| {
            r.get(0)
        })
        .unwrap()
    };
    let mut hot = None;
    for _ in 0..6 {
        db.execute("UPDATE entries SET last_used = 0 WHERE module_sha256 = ?1", [first["module_sha256"].as_str()])
            .unwrap();
        let (out, at_hand, report) = run();
        assert_eq!(out, "first\n");
        assert_eq!(report["cache"], "hit");
        assert!(last_used() > 0, "the use (at hand: {at_hand}) was not recorded");
        if at_hand {
            hot = Some(report);
            break;
        }
    }
    let hot = hot.expect("a run with the module at hand");
    assert_eq!(hot["module_sha256"], first["module_sha256"], "the same module, reported the same");
    // Rewritten in place, same length: every slot sees another fingerprint.
    std::fs::write(&path, module("other")).unwrap();
    for _ in 0..3 {
        let (out, at_hand, report) = run();
        assert_eq!((out.as_str(), at_hand), ("other\n", false));
        assert_ne!(report["module_sha256"], first["module_sha256"]);
    }
}
