//! Resource limits and cgroups, in confined children: RLIMIT_DATA bounds what becomes
//! writable but not the 6 GiB reservations, and the other limits bite; the cgroup steps work
//! where cgroup v2 is usable, and say why not elsewhere.

mod common;

use common::{judge, openat, Checks, Dirs, Expect, Fds};
use sandbox::{Cgroup, CgroupError, CgroupLimits, Confinement, Rlimits, Termination};
use std::os::fd::AsRawFd;

const MIB: usize = 1 << 20;

fn reserve_and_grow(grow: usize) -> Result<(), i32> {
    // SAFETY: a fresh PROT_NONE reservation; only the part made writable is written.
    unsafe {
        let size = 6usize << 30;
        let flags = libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE;
        let p = libc::mmap(std::ptr::null_mut(), size, libc::PROT_NONE, flags, -1, 0);
        if p == libc::MAP_FAILED {
            return Err(std::io::Error::last_os_error().raw_os_error().unwrap_or(0));
        }
        common::cvt(libc::mprotect(p, grow, libc::PROT_READ | libc::PROT_WRITE))?;
        p.cast::<u8>().write_bytes(1, grow);
        Ok(())
    }
}

fn rlimits(checks: &mut Checks, dirs: &Dirs, filter: &sandbox::Filter) {
    let with = |rlimits: Rlimits| Confinement { rlimits, ..dirs.confinement() };
    let data = with(Rlimits { data: Some(256 << 20), ..Default::default() });
    let cases: Vec<(&str, Confinement, common::Attempt, Expect)> = vec![
        (
            "RLIMIT_DATA 256 MiB: 6 GiB reserved, 64 MiB made writable",
            data.clone(),
            |_| reserve_and_grow(64 * MIB),
            Expect::Works,
        ),
        (
            "RLIMIT_DATA 256 MiB: making 512 MiB writable fails (mprotect ENOMEM)",
            data,
            |_| reserve_and_grow(512 * MIB),
            Expect::Errno(&[libc::ENOMEM]),
        ),
        (
            "RLIMIT_NOFILE 16: the 17th descriptor fails",
            with(Rlimits { open_files: Some(16), ..Default::default() }),
            |f| {
                for _ in 0..32 {
                    // SAFETY: duplicating a descriptor the child owns.
                    common::cvt(unsafe { libc::dup(f.ro.as_raw_fd()) })?;
                }
                Ok(())
            },
            Expect::Errno(&[libc::EMFILE]),
        ),
        (
            "RLIMIT_NPROC 1: no second thread",
            with(Rlimits { processes: Some(1), ..Default::default() }),
            |_| std::thread::Builder::new().spawn(|| ()).map(drop).map_err(|e| e.raw_os_error().unwrap_or(0)),
            Expect::Errno(&[libc::EAGAIN]),
        ),
        (
            "RLIMIT_NPROC 8: threads still start",
            with(Rlimits { processes: Some(8), ..Default::default() }),
            |_| std::thread::spawn(|| ()).join().map_err(|_| 0),
            Expect::Works,
        ),
        (
            "RLIMIT_FSIZE 1 KiB: writing 1 KiB works",
            with(Rlimits { file_size: Some(1024), ..Default::default() }),
            |f| write_bytes(f, 1024),
            Expect::Works,
        ),
        (
            "RLIMIT_FSIZE 1 KiB: writing past it fails with EFBIG (SIGXFSZ ignored)",
            with(Rlimits { file_size: Some(1024), ..Default::default() }),
            |f| write_bytes(f, 4096),
            Expect::Errno(&[libc::EFBIG]),
        ),
        (
            "RLIMIT_CPU 1 s: spinning pid 1 ignores SIGXCPU, is SIGKILLed at the hard limit (2 s)",
            with(Rlimits { cpu_seconds: Some(1), ..Default::default() }),
            |_| loop {
                std::hint::black_box(0u64);
            },
            Expect::Signal(libc::SIGKILL),
        ),
    ];
    for (name, confinement, attempt, expect) in cases {
        let got = common::run_confined(&confinement, filter, dirs, attempt);
        judge(checks, name, expect, got);
    }
}

/// Writes `n` bytes to a new file of the rw dir (every byte: a write crossing the limit is
/// partial, the next one fails).
fn write_bytes(f: &Fds, n: usize) -> Result<(), i32> {
    let fd = openat(&f.rw, "big", libc::O_WRONLY | libc::O_CREAT | libc::O_TRUNC)?;
    let data = vec![0u8; n];
    let mut done = 0;
    while done < n {
        // SAFETY: a valid buffer and descriptor.
        done += common::cvt(unsafe { libc::write(fd, data[done..].as_ptr().cast(), n - done) })? as usize;
    }
    Ok(())
}

/// This process's cgroup v2 directory's controllers, for the notes.
fn cgroup_facts(checks: &Checks) -> Option<String> {
    let membership = std::fs::read_to_string("/proc/self/cgroup").ok()?;
    let own = membership.lines().find_map(|l| l.strip_prefix("0::"))?.to_string();
    let mount = std::fs::read_to_string("/proc/self/mountinfo")
        .ok()?
        .lines()
        .find(|l| l.contains(" - cgroup2 "))
        .and_then(|l| l.split_whitespace().nth(4).map(String::from));
    checks.note(format!("cgroup v2: own cgroup '{own}', hierarchy mounted at {mount:?}"));
    let dir = format!("{}{}", mount?, own.trim_end_matches('/'));
    let controllers = std::fs::read_to_string(format!("{dir}/cgroup.controllers")).ok()?;
    checks.note(format!("cgroup v2 controllers in '{dir}': '{}'", controllers.trim()));
    Some(controllers)
}

fn cgroups(checks: &mut Checks, dirs: &Dirs, filter: &sandbox::Filter) {
    let controllers = cgroup_facts(checks);
    let name = format!("sandbox-test-{}", std::process::id());
    let limits = CgroupLimits { memory_max: Some(64 << 20), pids_max: Some(16) };
    let has = |c: &str| controllers.as_deref().is_some_and(|all| all.split_whitespace().any(|x| x == c));
    match Cgroup::create(&name, &limits) {
        Ok(cgroup) => {
            checks.note(format!("memory and pids controllers usable: {}", cgroup.path().display()));
            // SAFETY: this test binary is single-threaded.
            let child = unsafe {
                sandbox::spawn(&dirs.confinement(), Some(&cgroup), || {
                    if sandbox::confine_with(&dirs.confinement(), filter).is_err() {
                        return common::CONFINE_FAILED;
                    }
                    // Touch 256 MiB: the OOM killer must end this under memory.max 64 MiB.
                    let mut blocks = Vec::new();
                    for _ in 0..256 {
                        blocks.push(vec![1u8; MIB]);
                    }
                    blocks.len() as i32
                })
            }
            .expect("spawn");
            let got = child.wait().expect("wait");
            checks.check(
                "memory.max: the run is OOM-killed",
                got == Termination::Signaled(libc::SIGKILL),
                common::describe(got),
            );
            let kills = cgroup.oom_kills();
            checks.check(
                "memory.events counts the OOM kill",
                matches!(kills, Ok(Some(n)) if n >= 1),
                format!("{kills:?}"),
            );
            let peak = cgroup.memory_peak();
            checks.check("memory.peak is reported", matches!(peak, Ok(Some(p)) if p > 0), format!("{peak:?}"));
            let removed = cgroup.remove();
            checks.check("the cgroup is removed", removed.is_ok(), format!("{removed:?}"));
        }
        Err(CgroupError::Unavailable { reason }) => {
            checks.note(format!("cgroup limits not testable here: {reason}"));
            let consistent = if !has("memory") {
                reason.contains("the memory controller is not available")
            } else if !has("pids") {
                reason.contains("the pids controller is not available")
            } else {
                // Both exist: only the no-internal-processes rule can stop us.
                reason.contains("cannot enable")
            };
            checks.check("create reports Unavailable, consistent with the controllers found", consistent, &reason);
        }
        Err(e) => checks.check("Cgroup::create", false, e),
    }

    // Without limits no controller is needed: the placement itself is checked from outside.
    match Cgroup::create(&format!("{name}-plain"), &CgroupLimits::default()) {
        Ok(cgroup) => {
            let (read_end, write_end) = nix::unistd::pipe().expect("pipe");
            let write_raw = write_end.as_raw_fd();
            let body = move || {
                // SAFETY: closing the child's copy of the parent's end.
                unsafe { libc::close(write_raw) };
                let applied = match sandbox::confine_with(&dirs.confinement(), filter) {
                    Ok(a) => a,
                    Err(_) => return common::CONFINE_FAILED,
                };
                let mut byte = [0u8];
                // SAFETY: blocks until the parent closes its end.
                unsafe { libc::read(read_end.as_raw_fd(), byte.as_mut_ptr().cast(), 1) };
                if applied.cgroup {
                    0
                } else {
                    1
                }
            };
            // SAFETY: this test binary is single-threaded.
            let child = unsafe { sandbox::spawn(&dirs.confinement(), Some(&cgroup), body) }.expect("spawn");
            let membership = std::fs::read_to_string(format!("/proc/{}/cgroup", child.pid())).unwrap_or_default();
            drop(write_end);
            checks.check(
                "spawn moves the child into the cgroup before it runs",
                membership.contains(&format!("{name}-plain")),
                membership.lines().find(|l| l.starts_with("0::")).unwrap_or("no 0:: line"),
            );
            let got = child.wait().expect("wait");
            checks.check("the child's report says cgroup on", got == Termination::Exited(0), common::describe(got));
            checks.check(
                "memory.peak without the memory controller is None",
                matches!(cgroup.memory_peak(), Ok(None)) || has("memory"),
                "",
            );
            let removed = cgroup.remove();
            checks.check("the cgroup is removed after the run", removed.is_ok(), format!("{removed:?}"));
        }
        Err(e) => checks.note(format!("no cgroup v2 placement test here: {e}")),
    }
}

fn main() {
    let mut checks = Checks::new("limits: rlimits and cgroups in confined children");
    let dirs = Dirs::create("limits");
    let filter = sandbox::compile_filter(sandbox::Arch::X86_64, Some(sandbox::PID_IN_NAMESPACE)).expect("filter");
    rlimits(&mut checks, &dirs, &filter);
    cgroups(&mut checks, &dirs, &filter);
    drop(dirs); // finish exits: no destructor runs after it
    checks.finish()
}
