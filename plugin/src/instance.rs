//! One instance slot, from the host's side: its keeper (a process started from the host's
//! executable), the live confined child it handed over, and the call exchange with it —
//! requests out, host-function calls served on the calling thread, the answer or the
//! child's death read back, a timeout turned into a kill through the child's pidfd.

use crate::cpu::CpuBudget;
use crate::error::{BuildError, CallError};
use crate::keeper::{CONTROL_FD, ENV_MARKER};
use crate::messages::{Ended, FromInstance, FromKeeper, InstanceSpec, Payload, ToInstance, ToKeeper, INLINE_MAX};
use crate::plugin::Shared;
use crate::spin::{self, Word};
use crate::sys::{self, Mapping, Received};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::process::CommandExt;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A restart this soon after the previous one starts its successor's spare at once.
const RAPID_RESTART: Duration = Duration::from_millis(100);

/// How long a keeper may take to answer (a child's start, compilation included).
const KEEPER_TIMEOUT: Duration = Duration::from_secs(60);

/// The host's handle on a keeper process.
pub(crate) struct Keeper {
    process: std::process::Child,
    control: OwnedFd,
    buf: Vec<u8>,
}

impl Keeper {
    /// Starts the executable again as a keeper, configured with `spec` and `module` (a sealed
    /// memfd).
    pub(crate) fn start(spec: &InstanceSpec, module: &OwnedFd) -> Result<Keeper, BuildError> {
        let failed = |e: std::io::Error| BuildError::Keeper(e.to_string());
        let (mine, theirs) = sys::seqpacket_pair().map_err(failed)?;
        let exe = std::env::current_exe().map_err(failed)?;
        let raw = theirs.as_raw_fd();
        let mut cmd = std::process::Command::new(exe);
        cmd.env(ENV_MARKER, "1").stdin(std::process::Stdio::null()).stdout(std::process::Stdio::null());
        // SAFETY: runs between fork and exec in the new process; dup2 and fcntl are
        // async-signal-safe and touch only descriptors.
        unsafe {
            cmd.pre_exec(move || {
                if raw == CONTROL_FD {
                    // dup2 onto itself would keep close-on-exec: clear it instead.
                    if libc::fcntl(raw, libc::F_SETFD, 0) < 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                } else if libc::dup2(raw, CONTROL_FD) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            })
        };
        let process = cmd.spawn().map_err(failed)?;
        drop(theirs);
        let keeper = Keeper { process, control: mine, buf: vec![0; protocol::max_frame_len::<FromKeeper>()] };
        keeper.send(&ToKeeper::Configure(Box::new(spec.clone())), &[module.as_raw_fd()]).map_err(BuildError::Keeper)?;
        Ok(keeper)
    }

    /// Sends a control message with descriptors.
    pub(crate) fn send(&self, m: &ToKeeper, fds: &[RawFd]) -> Result<(), String> {
        let frame = protocol::encode(m).map_err(|e| e.to_string())?;
        sys::send(self.control.as_raw_fd(), &frame, fds).map_err(|e| format!("keeper: {e}"))
    }

    /// The keeper's next message, by `deadline`.
    fn recv(&mut self, deadline: Instant) -> Result<(FromKeeper, Vec<OwnedFd>), String> {
        let fd = self.control.as_raw_fd();
        if !sys::wait_readable(fd, Some(deadline)).map_err(|e| e.to_string())? {
            return Err("the instance keeper did not answer (does the program's main call \
                        sandboxrun_plugin::run_if_child() first?)"
                .into());
        }
        match sys::recv(fd, &mut self.buf).map_err(|e| e.to_string())? {
            Received::Closed => Err("the instance keeper ended".into()),
            Received::Datagram(n, _) if n > self.buf.len() => Err("an oversize message from the keeper".into()),
            Received::Datagram(n, fds) => {
                Ok((protocol::decode_untrusted::<FromKeeper>(&self.buf[..n]).map_err(|e| e.to_string())?, fds))
            }
        }
    }
}

impl Drop for Keeper {
    fn drop(&mut self) {
        // Closing the control socket ends it (and its children); the kill makes sure.
        let _ = self.process.kill();
        let _ = self.process.wait();
    }
}

/// A confined child handed over by the keeper.
pub(crate) struct Live {
    pub(crate) pid: i32,
    sock: OwnedFd,
    window: Mapping,
    pub(crate) pidfd: Arc<OwnedFd>,
    pub(crate) generation: u64,
    /// Datagrams received from the instance: its doorbell past this count means one is
    /// queued (`crate::spin`).
    received: u32,
    /// Whether the next wait is for the answer to a datagram just sent (worth spinning for).
    answer_due: bool,
    /// Watches the instance's doorbell before blocking.
    spinner: spin::Spinner,
    /// Its process CPU clock, when calls have a CPU budget.
    cpu_clock: Option<libc::clockid_t>,
    /// The current call's CPU budget.
    budget: Option<CpuBudget>,
}

/// One slot of the pool.
pub(crate) struct Slot {
    pub(crate) index: usize,
    keeper: Option<Keeper>,
    /// The module generation the keeper has.
    keeper_generation: u64,
    pub(crate) live: Option<Live>,
    /// A child handed over ahead, for the next start.
    spare: Option<Live>,
    /// Children the keeper will hand over (asked for, or its first).
    pending: usize,
    /// Whether a child ever ran here (the next start is then a restart).
    started_before: bool,
    restarts: std::collections::VecDeque<Instant>,
    /// When the slot last restarted, and whether that restart came rapidly after the one
    /// before (see [`RAPID_RESTART`]).
    last_restart: Option<Instant>,
    rapid_restart: bool,
    /// Why the slot serves no more calls.
    dead: Option<String>,
    buf: Vec<u8>,
}

impl Slot {
    pub(crate) fn new(index: usize) -> Slot {
        Slot {
            index,
            keeper: None,
            keeper_generation: 0,
            live: None,
            spare: None,
            pending: 0,
            started_before: false,
            restarts: Default::default(),
            last_restart: None,
            rapid_restart: false,
            dead: None,
            buf: vec![0; protocol::max_frame_len::<FromInstance>()],
        }
    }

    /// Marks the slot dead: it serves no more calls.
    pub(crate) fn set_dead(&mut self, why: String) {
        self.dead = Some(why);
    }

    /// Makes sure a child of the current module is live (starting the keeper, reloading,
    /// restarting as needed).
    pub(crate) fn ensure_live(&mut self, shared: &Shared) -> Result<(), CallError> {
        if let Some(why) = &self.dead {
            return Err(CallError::Unavailable(why.clone()));
        }
        let (generation, module) = shared.module();
        if self.keeper.is_none() {
            let keeper = Keeper::start(&shared.spec, &module).map_err(|e| CallError::Unavailable(e.to_string()))?;
            self.keeper = Some(keeper);
            self.keeper_generation = 0;
            // It starts its first child unasked.
            self.spare = None;
            self.pending = 1;
        }
        if self.keeper_generation != generation {
            let keeper = self.keeper.as_ref().expect("started above");
            if generation != 0 {
                keeper.send(&ToKeeper::Reload(generation), &[module.as_raw_fd()]).map_err(CallError::Unavailable)?;
            }
            self.keeper_generation = generation;
        }
        if self.live.as_ref().is_some_and(|l| l.generation != generation) {
            // Idle, so nothing is lost but its state: the new module replaces it.
            self.kill(shared);
        }
        if self.live.is_some() {
            return Ok(());
        }
        if self.started_before {
            if let crate::OnFailure::Restart { max_per_minute } = shared.on_failure {
                let now = Instant::now();
                self.restarts.retain(|t| now.duration_since(*t) < Duration::from_secs(60));
                if self.restarts.len() >= max_per_minute as usize {
                    return Err(CallError::Unavailable(format!(
                        "more than {max_per_minute} restarts in a minute; trying again later"
                    )));
                }
                self.restarts.push_back(now);
            }
            shared.counters.restarts.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let now = Instant::now();
            self.rapid_restart = self.last_restart.is_some_and(|t| now.duration_since(t) < RAPID_RESTART);
            self.last_restart = Some(now);
        }
        match self.spawn(shared, generation) {
            Ok(()) => Ok(()),
            Err(e) => {
                // A broken keeper (or module) is started afresh next time.
                self.keeper = None;
                self.spare = None;
                Err(e)
            }
        }
    }

    /// Puts a child of `generation` in place — the spare the keeper handed over ahead, or
    /// the next it hands over — asks at once for the next spare, and waits for the child's
    /// Ready (usually there already).
    fn spawn(&mut self, shared: &Shared, generation: u64) -> Result<(), CallError> {
        let deadline = Instant::now() + KEEPER_TIMEOUT;
        let child = loop {
            let child = match self.spare.take() {
                Some(c) => c,
                None => self.next_child(shared, deadline)?,
            };
            if child.generation == generation {
                break child;
            }
            // Started before a reload: killed, never used.
            sys::pidfd_kill(child.pidfd.as_raw_fd());
        };
        self.live = Some(child);
        let restart = std::mem::replace(&mut self.started_before, true);
        shared.set_pid(self.index, self.live.as_ref().map(|l| l.pid));
        if restart && std::mem::take(&mut self.rapid_restart) {
            // Failures in quick succession (a guest that fails every call): the next
            // replacement starts now rather than after this call, so that it is ready if this
            // one fails too. An isolated failure leaves the machine to the replacement's
            // first call (see `keep_spare`): starting a spare beside it costs that call ~1 ms.
            self.keep_spare();
        }
        match self.read(shared, deadline) {
            Ok(FromInstance::Ready(_)) => Ok(()),
            Ok(FromInstance::SetupFailed(m)) => {
                self.kill(shared);
                Err(CallError::Unavailable(m))
            }
            Ok(other) => {
                self.kill(shared);
                Err(CallError::Protocol(format!("expected Ready, got {other:?}")))
            }
            Err(CallError::Timeout) => Err(CallError::Unavailable("the instance did not start in time".into())),
            Err(e) => Err(e),
        }
    }

    /// Asks the keeper for the next spare if none is here or coming: called once a call has
    /// been answered, so that starting it (namespaces, compilation) does not compete with
    /// the first call of a new instance.
    pub(crate) fn keep_spare(&mut self) {
        if self.spare.is_none() && self.pending == 0 && self.keeper.is_some() && self.dead.is_none() {
            let _ = self.request(ToKeeper::Spawn);
        }
    }

    /// Sends `Spawn` to the keeper, counting the child it will hand over.
    fn request(&mut self, m: ToKeeper) -> Result<(), CallError> {
        let keeper = self.keeper.as_ref().ok_or_else(|| CallError::Unavailable("no keeper".into()))?;
        keeper.send(&m, &[]).map_err(CallError::Unavailable)?;
        self.pending += 1;
        Ok(())
    }

    /// The next child the keeper hands over (asking for one if none is coming).
    fn next_child(&mut self, shared: &Shared, deadline: Instant) -> Result<Live, CallError> {
        if self.pending == 0 {
            self.request(ToKeeper::Spawn)?;
        }
        loop {
            let keeper = self.keeper.as_mut().ok_or_else(|| CallError::Unavailable("no keeper".into()))?;
            let (m, fds) = keeper.recv(deadline).map_err(CallError::Unavailable)?;
            if let Some(child) = self.keeper_news(shared, m, fds)? {
                return Ok(child);
            }
        }
    }

    /// Takes one message of the keeper: an end is accounted, a child returned.
    fn keeper_news(&mut self, shared: &Shared, m: FromKeeper, fds: Vec<OwnedFd>) -> Result<Option<Live>, CallError> {
        match m {
            FromKeeper::Ended(e) => {
                shared.child_ended(self.index, &e);
                Ok(None)
            }
            FromKeeper::Failed(e) => {
                self.pending = self.pending.saturating_sub(1);
                Err(CallError::Unavailable(e))
            }
            FromKeeper::Child { pid, generation, .. } => {
                self.pending = self.pending.saturating_sub(1);
                let [sock, window, pidfd]: [OwnedFd; 3] = fds
                    .try_into()
                    .map_err(|_| CallError::Unavailable("the keeper sent the wrong descriptors".into()))?;
                let size = sys::file_size(window.as_raw_fd()).map_err(|e| CallError::Unavailable(e.to_string()))?;
                let seals = libc::F_SEAL_SHRINK | libc::F_SEAL_GROW;
                if size != spin::mapped_len(shared.spec.window) || !sys::has_seals(window.as_raw_fd(), seals) {
                    return Err(CallError::Unavailable("the payload window is not the sealed one expected".into()));
                }
                let window = Mapping::new(window.as_raw_fd(), shared.spec.window as usize)
                    .map_err(|e| CallError::Unavailable(e.to_string()))?;
                let cpu_clock = match shared.call_cpu_limit {
                    Some(_) => Some(sys::process_cpu_clock(pid).map_err(|e| CallError::Unavailable(e.to_string()))?),
                    None => None,
                };
                let pidfd = Arc::new(pidfd);
                Ok(Some(Live {
                    pid,
                    sock,
                    window,
                    pidfd,
                    generation,
                    received: 0,
                    answer_due: false,
                    spinner: spin::Spinner::new(shared.spin),
                    cpu_clock,
                    budget: None,
                }))
            }
        }
    }

    /// Kills the live child (if any) at once, through its pidfd. How it ended is read later
    /// from the keeper (at the next start), not waited for: the caller goes on at once.
    pub(crate) fn kill(&mut self, shared: &Shared) {
        if let Some(live) = self.live.take() {
            sys::pidfd_kill(live.pidfd.as_raw_fd());
            shared.set_pid(self.index, None);
        }
    }

    /// Reads the keeper's news until the live child's end (the child died by itself and the
    /// verdict is wanted); the ends of earlier children met on the way are accounted.
    fn collect(&mut self, shared: &Shared) -> Option<Ended> {
        let live = self.live.take()?;
        shared.set_pid(self.index, None);
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match self.keeper.as_mut()?.recv(deadline) {
                Ok((FromKeeper::Ended(e), _)) => {
                    shared.child_ended(self.index, &e);
                    if e.pid == live.pid {
                        return Some(e);
                    }
                }
                Ok((m, fds)) => {
                    if let Ok(Some(child)) = self.keeper_news(shared, m, fds) {
                        self.spare = Some(child);
                    }
                }
                Err(_) => {
                    // The keeper is broken: start another next time.
                    self.keeper = None;
                    return None;
                }
            }
        }
    }

    /// Sends a request and returns the answer, serving host-function calls meanwhile.
    /// Every failure leaves the slot consistent: a failure that replaces the instance has
    /// killed and collected it.
    pub(crate) fn exchange(
        &mut self,
        shared: &Shared,
        req: &ToInstance,
        deadline: Instant,
    ) -> Result<FromInstance, CallError> {
        let result = self.exchange_inner(shared, req, deadline);
        if let Err(e) = &result {
            if e.replaces_instance() {
                self.kill(shared);
            }
        }
        result
    }

    fn exchange_inner(
        &mut self,
        shared: &Shared,
        req: &ToInstance,
        deadline: Instant,
    ) -> Result<FromInstance, CallError> {
        self.send(shared, req, deadline)?;
        loop {
            match self.read(shared, deadline)? {
                FromInstance::HostCall { func, input } => {
                    let input = self.bytes(input)?;
                    let answer = shared.run_host_fn(self, func, &input, deadline)?;
                    let answer = answer.map(|bytes| self.payload(bytes)).and_then(|p| p.map_err(|e| e.to_string()));
                    self.send(shared, &ToInstance::HostReturn(answer), deadline)?;
                }
                other => return Ok(other),
            }
        }
    }

    fn send(&mut self, shared: &Shared, req: &ToInstance, deadline: Instant) -> Result<(), CallError> {
        let live = self.live.as_mut().ok_or_else(|| CallError::Unavailable("no instance".into()))?;
        let frame = protocol::encode(req).map_err(|e| CallError::Protocol(e.to_string()))?;
        match sys::send(live.sock.as_raw_fd(), &frame, &[]) {
            Ok(()) => {
                spin::ring(live.window.word(Word::Request));
                live.answer_due = true;
                Ok(())
            }
            // The child is gone: say how.
            Err(_) => Err(self.died(shared, deadline)),
        }
    }

    /// Bytes to send: inline when small, else through the window.
    pub(crate) fn payload(&self, bytes: Vec<u8>) -> Result<Payload, CallError> {
        if bytes.len() < INLINE_MAX {
            return Ok(Payload::Inline(bytes));
        }
        let live = self.live.as_ref().ok_or_else(|| CallError::Unavailable("no instance".into()))?;
        if !live.window.copy_in(&bytes) {
            return Err(CallError::TooLarge { len: bytes.len(), max: live.window.size() });
        }
        Ok(Payload::Window(bytes.len() as u32))
    }

    /// Bytes received (a window length is checked against the window).
    pub(crate) fn bytes(&self, p: Payload) -> Result<Vec<u8>, CallError> {
        match p {
            Payload::Inline(b) => Ok(b),
            Payload::Window(len) => {
                let live = self.live.as_ref().ok_or_else(|| CallError::Unavailable("no instance".into()))?;
                live.window
                    .copy_out(len as usize)
                    .ok_or_else(|| CallError::Protocol(format!("a window payload of {len} bytes, past the window")))
            }
        }
    }

    /// Starts the call's CPU budget (when calls have one): the instance's CPU time from now.
    pub(crate) fn start_cpu_budget(&mut self, shared: &Shared) {
        if let (Some(limit), Some(live)) = (shared.call_cpu_limit, self.live.as_mut()) {
            live.budget = live.cpu_clock.and_then(|c| CpuBudget::start(c, limit));
        }
    }

    /// Waits until the child's socket is readable: by `deadline`, within the call's CPU
    /// budget, else the child is killed at once (whatever it was doing: computing, sleeping,
    /// waiting) and the call fails.
    fn wait_readable(&mut self, shared: &Shared, deadline: Instant) -> Result<(), CallError> {
        let live = self.live.as_mut().ok_or_else(|| CallError::Unavailable("no instance".into()))?;
        // Only a hint (the instance may write the word at will): the socket decides.
        let due = std::mem::take(&mut live.answer_due);
        let spun = due && {
            let cap = deadline.saturating_duration_since(Instant::now());
            live.spinner.wait(live.window.word(Word::Answer), live.received, cap)
        };
        let blocked = Instant::now();
        let fd = live.sock.as_raw_fd();
        let failure = loop {
            let until = match live.budget.as_ref().and_then(CpuBudget::left) {
                Some(left) if left.is_zero() => break CallError::CpuLimit,
                Some(left) => deadline.min(CpuBudget::next_check(left)),
                None => deadline,
            };
            match sys::wait_readable(fd, Some(until)) {
                Ok(true) => {
                    if due && !spun {
                        live.spinner.blocked(blocked.elapsed());
                    }
                    return Ok(());
                }
                Ok(false) if Instant::now() >= deadline => break CallError::Timeout,
                Ok(false) => {}
                Err(e) => return Err(CallError::Protocol(e.to_string())),
            }
        };
        self.kill(shared);
        Err(failure)
    }

    /// Reads the child's next message by `deadline`; its death or silence is an error.
    fn read(&mut self, shared: &Shared, deadline: Instant) -> Result<FromInstance, CallError> {
        self.wait_readable(shared, deadline)?;
        let live = self.live.as_mut().ok_or_else(|| CallError::Unavailable("no instance".into()))?;
        live.received = live.received.wrapping_add(1);
        let fd = live.sock.as_raw_fd();
        match sys::recv(fd, &mut self.buf) {
            Ok(Received::Datagram(n, fds)) if fds.is_empty() && n <= self.buf.len() => {
                protocol::decode_untrusted::<FromInstance>(&self.buf[..n])
                    .map_err(|e| CallError::Protocol(e.to_string()))
            }
            Ok(Received::Datagram(..)) => Err(CallError::Protocol("an oversize datagram, or descriptors".into())),
            Ok(Received::Closed) => Err(self.died(shared, deadline)),
            Err(e) => Err(CallError::Protocol(e.to_string())),
        }
    }

    /// The child's channel closed: collect its end from the keeper and name it.
    fn died(&mut self, shared: &Shared, _deadline: Instant) -> CallError {
        match self.collect(shared) {
            Some(e) => shared.verdict(&e),
            None => CallError::Crashed { verdict: "the instance ended; its keeper too".into() },
        }
    }
}
