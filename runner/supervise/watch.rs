//! The supervising parent's side of a run: wait for the child (started by
//! `sandbox::spawn`), killing it at its wall-clock deadline or when its CPU time reaches the
//! limit, and collect its exit status and resource usage.
//!
//! The CPU time is read from the child's process CPU clock, not sampled at a fixed rate: the
//! parent sleeps for the CPU time left divided by the cores the child can use (it cannot
//! spend it faster), so a run far from its limit costs a handful of wake-ups, and one at its
//! limit is stopped within a few milliseconds of it.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::time::{Duration, Instant};

/// How the child process ended, as the kernel tells it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExitStatus {
    /// `exit(code)`.
    Exited(i32),
    /// Killed by a signal.
    Signaled(i32),
    /// It sent its complete report and waits to be released ([`Release`]): not waited for.
    Reported,
    /// Killed by the supervisor for breaking the protocol: it wrote more than a pipe's bound.
    Violated(&'static str),
}

/// A pipe the child writes and the supervisor reads to its end: what it sent, at most
/// `limit` bytes; more is a protocol violation that ends the run (everything a confined child
/// writes is untrusted, and must not grow the supervisor's memory at will).
#[derive(Debug)]
pub struct Inbound {
    /// The read end.
    pub fd: OwnedFd,
    /// What was read.
    pub bytes: Vec<u8>,
    /// The most it may carry.
    pub limit: usize,
    /// What it is, for the verdict's message ("report", "compiled code").
    pub what: &'static str,
}

impl Inbound {
    /// An empty inbound pipe.
    pub fn new(fd: OwnedFd, limit: usize, what: &'static str) -> Inbound {
        Inbound { fd, bytes: Vec::new(), limit, what }
    }

    /// An empty inbound pipe that carries one `M` from a confined child: bounded by the
    /// longest frame of an `M`.
    pub fn for_message<M: protocol::FromConfined>(fd: OwnedFd, what: &'static str) -> Inbound {
        Inbound::new(fd, protocol::max_frame_len::<M>(), what)
    }
}

/// A child that has sent its report and waits to be released (see [`wait`]). Dropping this
/// releases it: it exits, and is reaped by [`Release::reap`] or, once this process has ended,
/// by whoever reaps orphans. A supervisor about to exit need not wait for the child's exit,
/// which tears down its memory and namespaces (a few hundred microseconds).
#[derive(Debug)]
pub struct Release {
    fd: OwnedFd,
    pid: libc::pid_t,
    namespaces: Vec<OwnedFd>,
}

impl Release {
    /// Keeps `namespaces` (descriptors of the child's namespaces) open with it.
    pub fn keep(&mut self, namespaces: Vec<OwnedFd>) {
        self.namespaces.extend(namespaces);
    }

    /// Releases the child without waiting for it; returns the namespaces kept, whose holder
    /// decides when they are torn down (a server, when no run is under way).
    pub fn into_namespaces(self) -> Vec<OwnedFd> {
        self.namespaces
    }

    /// Releases the child and waits for it to end.
    pub fn reap(self) {
        drop(self.fd);
        let pid = nix::unistd::Pid::from_raw(self.pid);
        while nix::sys::wait::waitpid(pid, None) == Err(nix::errno::Errno::EINTR) {}
    }
}

/// What the parent observed of the child.
#[derive(Clone, Copy, Debug)]
pub struct ChildExit {
    /// How it ended.
    pub status: ExitStatus,
    /// Whether the parent killed it at the wall-clock deadline.
    pub wall_timeout: bool,
    /// Whether the parent killed it when its CPU time reached the limit.
    pub cpu_timeout: bool,
    /// Whether the parent killed it because the run's [`Watch::cancel`] hung up.
    pub cancelled: bool,
    /// Wall time from fork to exit.
    pub wall_time: Duration,
    /// User + system CPU time of the child and its reaped descendants.
    pub cpu_time: Duration,
    /// Peak resident set size in bytes (`ru_maxrss`).
    pub peak_rss_bytes: u64,
}

fn pidfd_open(pid: libc::pid_t) -> io::Result<OwnedFd> {
    // SAFETY: plain syscall with integer arguments.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the kernel returned a new file descriptor that we now own.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

/// The CPU time (user + system, all threads) of a child not yet reaped.
fn cpu_time(pid: libc::pid_t) -> io::Result<Duration> {
    let clock = nix::time::clock_getcpuclockid(nix::unistd::Pid::from_raw(pid))?;
    Ok(Duration::from(nix::time::clock_gettime(clock)?))
}

/// The peak resident set size of this process (the supervisor itself, not its children).
///
/// `VmHWM` of this process's own memory, not `getrusage`'s `ru_maxrss`: the kernel carries
/// that across `execve`, so it would count whatever the process that started sandboxrun held
/// when it did (a test that built a 24 MiB module showed 100 MB here).
pub fn own_peak_rss_bytes() -> u64 {
    peak_rss_of("self").unwrap_or(0)
}

/// The peak resident set size of a child not yet reaped (`VmHWM`, what `ru_maxrss` reports
/// once it is).
fn peak_rss(pid: libc::pid_t) -> Option<u64> {
    peak_rss_of(&pid.to_string())
}

/// `VmHWM` of the process `/proc/<which>`.
fn peak_rss_of(which: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{which}/status")).ok()?;
    let line = status.lines().find_map(|l| l.strip_prefix("VmHWM:"))?;
    let kib: u64 = line.trim().strip_suffix("kB")?.trim().parse().ok()?;
    Some(kib * 1024)
}

/// Reads what is available from `pipe`; `false` at end of file, or once it carried more than
/// its limit (the excess is not kept).
fn drain(pipe: &mut Inbound) -> bool {
    let mut chunk = [0u8; 64 << 10];
    // SAFETY: valid descriptor and buffer.
    let n = unsafe { libc::read(pipe.fd.as_raw_fd(), chunk.as_mut_ptr().cast(), chunk.len()) };
    if n > 0 {
        let room = (pipe.limit + 1).saturating_sub(pipe.bytes.len());
        pipe.bytes.extend_from_slice(&chunk[..(n as usize).min(room)]);
        return !overflowed(pipe);
    }
    n < 0 && io::Error::last_os_error().kind() == io::ErrorKind::Interrupted
}

fn overflowed(pipe: &Inbound) -> bool {
    pipe.bytes.len() > pipe.limit
}

/// What ends a run early.
#[derive(Clone, Copy, Debug)]
pub struct Watch<'a> {
    /// When the run started.
    pub started: Instant,
    /// The wall-clock limit, from `started`.
    pub wall_limit: Duration,
    /// The CPU-time limit.
    pub cpu_limit: Duration,
    /// A socket whose peer never writes: its hangup (a server's client gone) ends the run.
    pub cancel: Option<BorrowedFd<'a>>,
}

/// Waits for `pid` to exit, killing it (SIGKILL) at its wall-clock deadline, when its CPU time
/// reaches the limit, or when `watch.cancel` hangs up. Meanwhile reads everything the child
/// writes to the `pipes` into their buffers, so a child writing more than a pipe holds never
/// blocks; one that writes more than a pipe's limit is killed ([`ExitStatus::Violated`]).
///
/// A child that, once every pipe is closed, has written a first pipe that `reported` accepts,
/// and then waits until `release` (the write end of a pipe it reads) is closed, is not waited
/// for: its CPU time and peak memory are read then, and it is returned as
/// [`ExitStatus::Reported`] with its [`Release`]. Otherwise `release` is closed when every pipe
/// is closed (a report that is not accepted gets no answer to wait for) or when the child is
/// seen to end.
pub fn wait(
    pid: libc::pid_t,
    watch: &Watch,
    pipes: &mut [Inbound],
    reported: &dyn Fn(&[u8]) -> bool,
    release: OwnedFd,
) -> io::Result<(ChildExit, Option<Release>)> {
    wait_sampling(pid, watch, pipes, reported, release, &usage_now)
}

/// The CPU time and peak memory of a child not yet reaped; `None` if either cannot be read
/// (no `/proc`, say).
fn usage_now(pid: libc::pid_t) -> Option<(Duration, u64)> {
    Some((cpu_time(pid).ok()?, peak_rss(pid)?))
}

/// [`wait`], reading a reported child's usage with `sample`.
fn wait_sampling(
    pid: libc::pid_t,
    watch: &Watch,
    pipes: &mut [Inbound],
    reported: &dyn Fn(&[u8]) -> bool,
    release: OwnedFd,
    sample: &dyn Fn(libc::pid_t) -> Option<(Duration, u64)>,
) -> io::Result<(ChildExit, Option<Release>)> {
    let mut open: Vec<bool> = vec![true; pipes.len()];
    let ended = match watch_until_end(pid, watch, pipes, &mut open, reported, release, sample)? {
        Watched::Reported(exit, release) => return Ok((exit, Some(release))),
        Watched::Ended(ended) => ended,
    };
    Ok((reap(pid, watch.started, pipes, &open, ended)?, None))
}

/// Why the watch ended without a reported child to release.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Ended {
    /// The child ended by itself (or was released after an unaccepted report).
    ByItself,
    /// Killed at the wall-clock deadline.
    WallTime,
    /// Killed when its CPU clock reached the limit.
    CpuTime,
    /// Killed because the watch's cancel socket hung up.
    Cancelled,
    /// Killed for writing more than a pipe's bound.
    Violated(&'static str),
}

/// How a watch ended.
enum Watched {
    /// The child reported and waits to be released: its usage is read.
    Reported(ChildExit, Release),
    /// The child ended (or was killed): reap it.
    Ended(Ended),
}

fn kill(pid: libc::pid_t) {
    // Our own unreaped child: the pid cannot have been reused.
    let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL);
}

/// Polls the child's pidfd, its pipes and the cancel socket until the child ends, reports, or
/// is killed at a limit; drains the pipes meanwhile (`open[i]` false once pipe `i` is at its
/// end).
fn watch_until_end(
    pid: libc::pid_t,
    watch: &Watch,
    pipes: &mut [Inbound],
    open: &mut [bool],
    reported: &dyn Fn(&[u8]) -> bool,
    release: OwnedFd,
    sample: &dyn Fn(libc::pid_t) -> Option<(Duration, u64)>,
) -> io::Result<Watched> {
    let Watch { started, wall_limit, cpu_limit, cancel } = *watch;
    let mut release = Some(release);
    let pidfd = pidfd_open(pid)?;
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as u32;
    let deadline = started + wall_limit;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        // A child that just exited may have no clock any more: pidfd then reports it.
        let cpu_left = cpu_limit.saturating_sub(cpu_time(pid).unwrap_or_default());
        if left.is_zero() || cpu_left.is_zero() {
            kill(pid);
            return Ok(Watched::Ended(if left.is_zero() { Ended::WallTime } else { Ended::CpuTime }));
        }
        let left = left.min(cpu_left / cores);
        let mut fds = vec![libc::pollfd { fd: pidfd.as_raw_fd(), events: libc::POLLIN, revents: 0 }];
        for (pipe, open) in pipes.iter().zip(open.iter()) {
            // A closed pipe is polled as -1, which poll ignores.
            fds.push(libc::pollfd {
                fd: if *open { pipe.fd.as_raw_fd() } else { -1 },
                events: libc::POLLIN,
                revents: 0,
            });
        }
        // Last, so that the pipes keep their places.
        fds.push(libc::pollfd { fd: cancel.map_or(-1, |c| c.as_raw_fd()), events: libc::POLLIN, revents: 0 });
        let ms = left.as_millis().clamp(1, i32::MAX as u128) as i32;
        // SAFETY: a valid array of pollfds (poll with a -1 descriptor in place is why this is
        // not nix's, whose PollFd borrows a descriptor).
        let n = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, ms) };
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        for (i, pipe) in pipes.iter_mut().enumerate() {
            if fds[i + 1].revents != 0 {
                open[i] = drain(pipe);
            }
        }
        if let Some(pipe) = pipes.iter().find(|p| overflowed(p)) {
            kill(pid);
            return Ok(Watched::Ended(Ended::Violated(pipe.what)));
        }
        if fds.last().is_some_and(|c| c.revents != 0) {
            kill(pid);
            return Ok(Watched::Ended(Ended::Cancelled));
        }
        let all_closed = !open.iter().any(|o| *o);
        if let Some(fd) = release.take_if(|_| all_closed) {
            // A report not accepted, or its usage unreadable: the child is released at once
            // (dropping `fd`) and waited for as any other (else it would wait on the release
            // pipe until the wall-clock deadline).
            let accepted = pipes.first().is_some_and(|report| reported(&report.bytes));
            if let Some((cpu_time, peak_rss_bytes)) = sample(pid).filter(|_| accepted) {
                let exit = ChildExit {
                    status: ExitStatus::Reported,
                    wall_timeout: false,
                    cpu_timeout: false,
                    cancelled: false,
                    wall_time: started.elapsed(),
                    cpu_time,
                    peak_rss_bytes,
                };
                return Ok(Watched::Reported(exit, Release { fd, pid, namespaces: Vec::new() }));
            }
        }
        if n > 0 && fds[0].revents != 0 {
            return Ok(Watched::Ended(Ended::ByItself));
        }
    }
}

/// Reaps the ended child (its rusage: CPU time and peak memory) and drains what is left in
/// its pipes.
fn reap(
    pid: libc::pid_t,
    started: Instant,
    pipes: &mut [Inbound],
    open: &[bool],
    ended: Ended,
) -> io::Result<ChildExit> {
    let mut status = 0;
    // SAFETY: all-zero is a valid rusage.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    loop {
        // SAFETY: valid out-pointers; waits for our own child (wait4, which nix lacks: the
        // rusage is the point).
        let r = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
        if r == pid {
            break;
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
    let wall_time = started.elapsed();
    // The child is gone: what is left in the pipes ends at end of file.
    let mut violated = match ended {
        Ended::Violated(what) => Some(what),
        _ => None,
    };
    for (pipe, open) in pipes.iter_mut().zip(open) {
        while *open && drain(pipe) {}
        if violated.is_none() && overflowed(pipe) {
            violated = Some(pipe.what);
        }
    }
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    let status = if let Some(what) = violated {
        ExitStatus::Violated(what)
    } else if libc::WIFEXITED(status) {
        ExitStatus::Exited(libc::WEXITSTATUS(status))
    } else {
        ExitStatus::Signaled(libc::WTERMSIG(status))
    };
    Ok(ChildExit {
        status,
        wall_timeout: ended == Ended::WallTime,
        cpu_timeout: ended == Ended::CpuTime,
        cancelled: ended == Ended::Cancelled,
        wall_time,
        cpu_time: tv(usage.ru_utime) + tv(usage.ru_stime),
        peak_rss_bytes: usage.ru_maxrss as u64 * 1024,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    // These fork: the test harness is multi-threaded, but the children only call
    // async-signal-safe functions (busy loops, `read`, `write`, `_exit`).

    /// In a forked child: closes every descriptor above stdio but `keep` (at most two, in any
    /// order). The tests run side by side, so a child also holds the other tests' pipes, whose
    /// end of file it would otherwise delay. Only system calls: no allocation after a fork of
    /// a threaded process.
    fn keep_only(keep: [i32; 2]) {
        let (low, high) = (keep[0].min(keep[1]), keep[0].max(keep[1]));
        for (first, last) in [(3, low - 1), (low + 1, high - 1), (high + 1, i32::MAX)] {
            if first <= last {
                // SAFETY: closes descriptors this child owns and no object of it uses.
                unsafe { libc::syscall(libc::SYS_close_range, first as u32, last as u32, 0u32) };
            }
        }
    }

    /// A forked child that spins, holding no descriptor of the other tests.
    fn spinner() -> libc::pid_t {
        // SAFETY: the child makes one system call, then spins.
        unsafe {
            sandbox::spawn::fork(|| {
                keep_only([0, 0]);
                loop {
                    std::hint::spin_loop()
                }
            })
        }
        .unwrap()
    }

    /// Waits for a child that reports nothing.
    fn wait_plain(pid: libc::pid_t, started: Instant, wall: Duration, cpu: Duration) -> ChildExit {
        let (_, release) = std::io::pipe().unwrap();
        let watch = Watch { started, wall_limit: wall, cpu_limit: cpu, cancel: None };
        let (exit, pending) = wait(pid, &watch, &mut [], &|_| false, release.into()).unwrap();
        assert!(pending.is_none());
        exit
    }

    /// A forked child that reports `done`, closes the report pipe, waits to be released and
    /// exits 9; returns it with the report pipe's read end and the release pipe's write end.
    fn reporting_child() -> (libc::pid_t, OwnedFd, OwnedFd) {
        let (report_read, report_write) = std::io::pipe().unwrap();
        let (release_read, release_write) = std::io::pipe().unwrap();
        let (report_write, release_read) = (OwnedFd::from(report_write), OwnedFd::from(release_read));
        // SAFETY: the child only makes system calls, then exits.
        let pid = unsafe {
            sandbox::spawn::fork(|| {
                // Its copy of the release pipe's write end (and the other tests' descriptors)
                // would keep it from seeing end of file.
                keep_only([report_write.as_raw_fd(), release_read.as_raw_fd()]);
                libc::write(report_write.as_raw_fd(), b"done".as_ptr().cast(), 4);
                libc::close(report_write.as_raw_fd());
                let mut byte = 0u8;
                libc::read(release_read.as_raw_fd(), (&mut byte as *mut u8).cast(), 1);
                9
            })
        }
        .unwrap();
        (pid, report_read.into(), release_write.into())
    }

    /// What ends a test's run: only generous limits.
    fn watch(started: Instant) -> Watch<'static> {
        Watch { started, wall_limit: Duration::from_secs(10), cpu_limit: Duration::from_secs(10), cancel: None }
    }

    #[test]
    fn a_child_that_reported_is_not_waited_for_until_released() {
        let started = Instant::now();
        let (pid, report, release) = reporting_child();
        let mut pipes = [Inbound::new(report, 64, "report")];
        let (exit, release) = wait(pid, &watch(started), &mut pipes, &|report| report == b"done", release).unwrap();
        assert_eq!(exit.status, ExitStatus::Reported);
        assert!(exit.peak_rss_bytes > 0);
        assert_eq!(pipes[0].bytes, b"done");
        // Still there, waiting.
        // SAFETY: a non-blocking query of our own child.
        assert_eq!(unsafe { libc::waitpid(pid, std::ptr::null_mut(), libc::WNOHANG) }, 0);
        release.unwrap().reap();
        // SAFETY: as above: it is gone.
        assert_eq!(unsafe { libc::waitpid(pid, std::ptr::null_mut(), libc::WNOHANG) }, -1);
    }

    #[test]
    fn a_reported_child_whose_usage_cannot_be_read_is_released_and_waited_for() {
        let started = Instant::now();
        let (pid, report, release) = reporting_child();
        let mut pipes = [Inbound::new(report, 64, "report")];
        let reported = |report: &[u8]| report == b"done";
        let (exit, release) = wait_sampling(pid, &watch(started), &mut pipes, &reported, release, &|_| None).unwrap();
        assert!(release.is_none());
        assert_eq!(exit.status, ExitStatus::Exited(9));
        assert!(!exit.wall_timeout && exit.wall_time < Duration::from_secs(2), "{:?}", exit.wall_time);
    }

    #[test]
    fn a_report_that_is_not_accepted_gets_its_child_released_at_once() {
        // Unparseable: the child must not wait on its release pipe until the wall limit.
        let started = Instant::now();
        let (pid, report, release) = reporting_child();
        let mut pipes = [Inbound::new(report, 64, "report")];
        let (exit, release) = wait(pid, &watch(started), &mut pipes, &|report| report == b"other", release).unwrap();
        assert!(release.is_none());
        assert_eq!(exit.status, ExitStatus::Exited(9));
        assert!(!exit.wall_timeout && exit.wall_time < Duration::from_secs(2), "{:?}", exit.wall_time);
    }

    #[test]
    fn a_child_writing_past_a_pipes_bound_is_killed_and_its_excess_not_kept() {
        let started = Instant::now();
        let (report_read, report_write) = std::io::pipe().unwrap();
        let (release_read, release_write) = std::io::pipe().unwrap();
        let (report_write, release_read) = (OwnedFd::from(report_write), OwnedFd::from(release_read));
        // SAFETY: the child only makes system calls (an endless write loop).
        let pid = unsafe {
            sandbox::spawn::fork(|| {
                keep_only([report_write.as_raw_fd(), release_read.as_raw_fd()]);
                let chunk = [b'x'; 4096];
                loop {
                    libc::write(report_write.as_raw_fd(), chunk.as_ptr().cast(), chunk.len());
                }
            })
        }
        .unwrap();
        drop((report_write, release_read));
        let mut pipes = [Inbound::new(report_read.into(), 1 << 20, "report")];
        let (exit, release) = wait(pid, &watch(started), &mut pipes, &|_| true, release_write.into()).unwrap();
        assert!(release.is_none());
        assert_eq!(exit.status, ExitStatus::Violated("report"));
        assert!(pipes[0].bytes.len() <= (1 << 20) + 1, "{}", pipes[0].bytes.len());
        assert!(exit.wall_time < Duration::from_secs(5), "{:?}", exit.wall_time);
    }

    #[test]
    fn exit_code_and_timeout() {
        let started = Instant::now();
        // SAFETY: the child only calls `_exit`.
        let pid = unsafe { sandbox::spawn::fork(|| 7) }.unwrap();
        let exit = wait_plain(pid, started, Duration::from_secs(10), Duration::from_secs(10));
        assert_eq!(exit.status, ExitStatus::Exited(7));
        assert!(!exit.wall_timeout);

        let started = Instant::now();
        let pid = spinner();
        let exit = wait_plain(pid, started, Duration::from_millis(200), Duration::from_secs(10));
        assert_eq!(exit.status, ExitStatus::Signaled(libc::SIGKILL));
        assert!(exit.wall_timeout);
        assert!(exit.wall_time >= Duration::from_millis(200) && exit.wall_time < Duration::from_secs(2));
        assert!(exit.cpu_time > Duration::from_millis(50), "{:?}", exit.cpu_time);
    }

    #[test]
    fn a_hangup_of_the_cancel_socket_ends_the_run() {
        let (ours, theirs) = std::os::unix::net::UnixStream::pair().unwrap();
        let started = Instant::now();
        let pid = spinner();
        let hangup = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(200));
            drop(theirs);
        });
        let watch = Watch {
            started,
            wall_limit: Duration::from_secs(10),
            cpu_limit: Duration::from_secs(10),
            cancel: Some(std::os::fd::AsFd::as_fd(&ours)),
        };
        let (_, release) = std::io::pipe().unwrap();
        let (exit, _) = wait(pid, &watch, &mut [], &|_| false, release.into()).unwrap();
        hangup.join().unwrap();
        assert!(exit.cancelled && !exit.wall_timeout && !exit.cpu_timeout);
        assert_eq!(exit.status, ExitStatus::Signaled(libc::SIGKILL));
        assert!(exit.wall_time < Duration::from_secs(2), "{:?}", exit.wall_time);
    }

    #[test]
    fn cpu_limit_stops_a_spinning_child_close_to_the_limit() {
        let started = Instant::now();
        let pid = spinner();
        let exit = wait_plain(pid, started, Duration::from_secs(10), Duration::from_millis(300));
        assert_eq!(exit.status, ExitStatus::Signaled(libc::SIGKILL));
        assert!(exit.cpu_timeout && !exit.wall_timeout);
        assert!(
            exit.cpu_time >= Duration::from_millis(300) && exit.cpu_time < Duration::from_millis(400),
            "{:?}",
            exit.cpu_time
        );
    }
}
