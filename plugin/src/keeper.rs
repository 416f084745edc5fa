//! The instance keeper: the host's own executable started afresh (so it is single-threaded,
//! as `sandbox::spawn` needs), one per instance slot. It starts confined children with
//! `sandbox::spawn` — one at once, then one per `Spawn` — and hands each to the host as soon
//! as it is started (call socket, window memfd, pidfd by SCM_RIGHTS; the host keeps one as
//! its spare, so a restart costs no round trip here), reaps them and says how they ended. It
//! runs no guest code and parses only its host's messages.
//!
//! It ends when the host closes the control socket (the host died, or dropped the plugin);
//! its children die with it (`PR_SET_PDEATHSIG`, set by `sandbox::spawn`).

use crate::confine;
use crate::messages::{Ended, FromKeeper, InstanceSpec, ToKeeper};
use crate::sys::{self, Received};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};

/// The environment variable that makes a process a keeper: the host sets it when it starts
/// its executable again.
pub const ENV_MARKER: &str = "SANDBOXRUN_PLUGIN_KEEPER";

/// The control socket's descriptor number in the keeper.
pub const CONTROL_FD: RawFd = 3;

/// A child the keeper started.
struct Kid {
    child: sandbox::Child,
    pidfd: OwnedFd,
    /// The host's ends, until handed over.
    host_ends: Option<(OwnedFd, OwnedFd)>,
    cgroup: Option<sandbox::Cgroup>,
    generation: u64,
}

/// Everything the keeper needs to start children.
struct Keeper {
    control: OwnedFd,
    spec: InstanceSpec,
    module: Vec<u8>,
    generation: u64,
    filter: sandbox::Filter,
    cgroups: Option<sandbox::CgroupParent>,
    started: u64,
}

/// The keeper's life; returns its exit status.
pub fn main(control: OwnedFd) -> i32 {
    match setup(control) {
        Ok(k) => k.serve(),
        Err(e) => {
            eprintln!("sandboxrun-plugin keeper: {e}");
            125
        }
    }
}

/// Reads one control message with its descriptors.
fn recv(control: RawFd) -> Result<Option<(ToKeeper, Vec<OwnedFd>)>, String> {
    let mut buf = vec![0u8; protocol::max_frame_len::<ToKeeper>()];
    match sys::recv(control, &mut buf).map_err(|e| e.to_string())? {
        Received::Closed => Ok(None),
        Received::Datagram(n, _) if n > buf.len() => Err("an oversize control message".into()),
        Received::Datagram(n, fds) => {
            Ok(Some((protocol::decode_untrusted::<ToKeeper>(&buf[..n]).map_err(|e| e.to_string())?, fds)))
        }
    }
}

/// The module in a sealed memfd.
fn read_module(fds: Vec<OwnedFd>) -> Result<Vec<u8>, String> {
    let [fd]: [OwnedFd; 1] = fds.try_into().map_err(|_| "expected one module descriptor".to_string())?;
    let all = libc::F_SEAL_WRITE | libc::F_SEAL_SHRINK | libc::F_SEAL_GROW;
    if !sys::has_seals(fd.as_raw_fd(), all) {
        return Err("the module's memfd is not sealed".into());
    }
    // Read at offsets: the description (and its offset) is shared with the host and the
    // other keepers.
    let size = sys::file_size(fd.as_raw_fd()).map_err(|e| e.to_string())?;
    let mut bytes = vec![0; usize::try_from(size).map_err(|_| "module too large")?];
    std::os::unix::fs::FileExt::read_exact_at(&std::fs::File::from(fd), &mut bytes, 0).map_err(|e| e.to_string())?;
    Ok(bytes)
}

fn setup(control: OwnedFd) -> Result<Keeper, String> {
    let Some((ToKeeper::Configure(spec), fds)) = recv(control.as_raw_fd())? else {
        return Err("expected the configuration first".into());
    };
    let module = read_module(fds)?;
    let arch = sandbox::Arch::native().ok_or("no seccomp filter for this architecture")?;
    let filter = sandbox::compile_filter(arch, Some(sandbox::PID_IN_NAMESPACE)).map_err(|e| e.to_string())?;
    // A cgroup where usable (cgroup v2 with the memory and pids controllers); else the
    // rlimits alone bound the instance.
    let cgroups = sandbox::CgroupParent::find(&confine::cgroup_limits(&spec)).ok();
    Ok(Keeper { control, spec: *spec, module, generation: 0, filter, cgroups, started: 0 })
}

impl Keeper {
    /// Starts a child (it confines itself, compiles, and says Ready on its socket).
    fn start(&mut self) -> Result<Kid, String> {
        let (host_sock, child_sock) = sys::seqpacket_pair().map_err(|e| format!("socketpair: {e}"))?;
        let window =
            sys::window_memfd(crate::spin::mapped_len(self.spec.window) as usize).map_err(|e| format!("memfd: {e}"))?;
        self.started += 1;
        let limits = confine::cgroup_limits(&self.spec);
        let name = format!("sandboxrun-plugin-{}-{}", std::process::id(), self.started);
        let cgroup = self.cgroups.as_ref().and_then(|p| p.create(&name, &limits).ok());
        let c = confine::confinement(&self.spec);
        let (spec, module, filter) = (&self.spec, &self.module, &self.filter);
        let (sock, win) = (child_sock.as_raw_fd(), window.as_raw_fd());
        // SAFETY: `child::main` runs in the new process, where the objects alive own only
        // `sock`, `win` and stdio besides the keeper's, which it never uses or drops (it
        // leaves by `_exit`, through `sandbox::spawn`).
        let body = || unsafe { crate::child::main(spec, module, sock, win, filter) };
        // SAFETY: the keeper is a fresh single-threaded process (started by exec; no thread
        // is ever started in it).
        let child = unsafe { sandbox::spawn(&c, cgroup.as_ref(), body) }.map_err(|e| e.to_string())?;
        drop(child_sock);
        let pidfd = sys::pidfd_open(child.pid()).map_err(|e| format!("pidfd_open: {e}"))?;
        Ok(Kid { child, pidfd, host_ends: Some((host_sock, window)), cgroup, generation: self.generation })
    }

    fn send(&self, m: &FromKeeper, fds: &[RawFd]) -> bool {
        protocol::encode(m).is_ok_and(|frame| sys::send(self.control.as_raw_fd(), &frame, fds).is_ok())
    }

    /// Starts a child and hands it over at once: the host keeps it as its spare until it
    /// needs it, so a restart costs it no round trip to this process.
    fn hand_over_new(&mut self, live: &mut Vec<Kid>) {
        match self.start() {
            Err(e) => {
                self.send(&FromKeeper::Failed(e), &[]);
            }
            Ok(mut kid) => {
                let (sock, window) = kid.host_ends.take().expect("not handed over yet");
                let m = FromKeeper::Child {
                    pid: kid.child.pid(),
                    generation: kid.generation,
                    cgroup: kid.cgroup.is_some(),
                };
                self.send(&m, &[sock.as_raw_fd(), window.as_raw_fd(), kid.pidfd.as_raw_fd()]);
                live.push(kid);
            }
        }
    }

    fn serve(mut self) -> i32 {
        let mut live: Vec<Kid> = Vec::new();
        // The first child, unasked.
        self.hand_over_new(&mut live);
        loop {
            let mut fds = vec![self.control.as_raw_fd()];
            fds.extend(live.iter().map(|k| k.pidfd.as_raw_fd()));
            let Ok(revents) = sys::poll(&fds, -1) else { return 125 };
            for i in (0..live.len()).rev() {
                if revents[1 + i] != 0 {
                    let ended = reap(live.swap_remove(i));
                    self.send(&FromKeeper::Ended(ended), &[]);
                }
            }
            if revents[0] == 0 {
                continue;
            }
            match recv(self.control.as_raw_fd()) {
                // The host is gone: so are we (the children die with us).
                Ok(None) | Err(_) => return 0,
                Ok(Some((ToKeeper::Spawn, _))) => self.hand_over_new(&mut live),
                Ok(Some((ToKeeper::Reload(generation), fds))) => {
                    if let Ok(module) = read_module(fds) {
                        self.module = module;
                        self.generation = generation;
                    }
                }
                Ok(Some((ToKeeper::Configure(_), _))) => {}
            }
        }
    }
}

fn reap(mut kid: Kid) -> Ended {
    let ended = reap_in_place(&mut kid);
    if let Some(c) = kid.cgroup.take() {
        let _ = c.remove();
    }
    ended
}

/// Waits for a child that has ended (its pidfd is readable) and says how.
fn reap_in_place(kid: &mut Kid) -> Ended {
    let mut status = 0;
    // SAFETY: a zeroed rusage is valid for wait4 to fill.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    loop {
        // SAFETY: `status` and `usage` are valid for writes; the pid is our unreaped child.
        let r = unsafe { libc::wait4(kid.child.pid(), &mut status, libc::__WALL, &mut usage) };
        if r >= 0 || std::io::Error::last_os_error().kind() != std::io::ErrorKind::Interrupted {
            break;
        }
    }
    let ns = |t: libc::timeval| (t.tv_sec as u64) * 1_000_000_000 + (t.tv_usec as u64) * 1000;
    let (exit, signal, seccomp) = match kid.child.termination(status) {
        sandbox::Termination::Exited(c) => (Some(c), None, None),
        sandbox::Termination::Signaled(s) => (None, Some(s), None),
        sandbox::Termination::Seccomp(v) => {
            (None, Some(libc::SIGSYS), Some(v.map_or_else(|| "unknown".to_string(), |v| v.to_string())))
        }
    };
    let cg = kid.cgroup.as_ref();
    let peak = cg.and_then(|c| c.memory_peak().ok().flatten()).unwrap_or(usage.ru_maxrss as u64 * 1024);
    let oom_killed = cg.and_then(|c| c.oom_kills().ok().flatten()).is_some_and(|n| n > 0);
    Ended {
        pid: kid.child.pid(),
        exit,
        signal,
        seccomp,
        cpu_ns: ns(usage.ru_utime) + ns(usage.ru_stime),
        peak,
        oom_killed,
    }
}
