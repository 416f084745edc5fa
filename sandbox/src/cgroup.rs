//! Step 6, cgroup v2 (optional, parent side): a child cgroup with `memory.max` and `pids.max`
//! the run is moved into before it runs anything, its peak memory and OOM kills read after it
//! ends, removed last. Unlike `RLIMIT_DATA`, `memory.max` counts every page charged to the run:
//! anonymous memory, page cache of the files it writes, kernel memory.
//!
//! The sequence, in the supervisor: [`Cgroup::create`] before forking; [`crate::spawn()`] moves
//! the child in ([`Cgroup::add`]) before letting it go on; after reaping it,
//! [`Cgroup::memory_peak`] and [`Cgroup::oom_kills`]; then [`Cgroup::remove`].
//!
//! Where it works: as root in a cgroup v2 (unified) hierarchy, or where the supervisor's
//! cgroup is delegated to its user. cgroup v2 forbids processes in a cgroup that hands
//! controllers to children (except the root), so a delegated supervisor must live in a leaf and
//! pass the leaf's parent to [`Cgroup::create_in`]. Anything else is reported as
//! [`CgroupError::Unavailable`], and the run goes on without a cgroup (the report says so).

use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Limits of a run's cgroup (`None`: the controller is not required and the limit not set).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CgroupLimits {
    /// `memory.max` in bytes (swap is disabled for the cgroup where swap accounting exists).
    pub memory_max: Option<u64>,
    /// `pids.max`: tasks, threads included.
    pub pids_max: Option<u64>,
}

/// Why the cgroup could not be set up or read.
#[derive(Debug, thiserror::Error)]
pub enum CgroupError {
    /// cgroup v2 cannot be used here.
    #[error("cgroup v2 is not usable: {reason}")]
    Unavailable {
        /// Why.
        reason: String,
    },
    /// The name is not a single path component.
    #[error("cgroup: invalid name '{0}' (one path component, not '.' or '..')")]
    InvalidName(String),
    /// A cgroup file operation failed.
    #[error("cgroup: failed to {action} '{path}': {source}")]
    Io {
        /// What was being done.
        action: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The error.
        source: io::Error,
    },
}

/// A run's cgroup, removed by [`Cgroup::remove`] (or, best effort, when dropped).
#[derive(Debug)]
pub struct Cgroup {
    path: PathBuf,
    removed: bool,
}

fn io_error<'a>(action: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> CgroupError + 'a {
    move |source| CgroupError::Io { action, path: path.to_path_buf(), source }
}

/// A cgroup's name must be one path component.
fn check_name(name: &str) -> Result<(), CgroupError> {
    if name.is_empty() || name == "." || name == ".." || name.contains('/') {
        return Err(CgroupError::InvalidName(name.to_string()));
    }
    Ok(())
}

/// A cgroup v2 directory ready to hold run cgroups: the controllers their limits need are
/// available and enabled for its children. Made ready once ([`CgroupParent::find`]), it
/// creates each run's cgroup with a few writes ([`CgroupParent::create`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CgroupParent {
    path: PathBuf,
    /// The controllers made ready: memory, pids.
    controllers: (bool, bool),
}

impl CgroupParent {
    /// This process's own cgroup v2 directory, ready for cgroups with `limits`.
    ///
    /// # Errors
    /// [`CgroupError::Unavailable`] when there is no cgroup v2 hierarchy, or the controllers the
    /// limits need are not available or cannot be enabled; [`CgroupError::Io`] otherwise.
    pub fn find(limits: &CgroupLimits) -> Result<CgroupParent, CgroupError> {
        let unavailable = |reason: String| CgroupError::Unavailable { reason };
        let membership = std::fs::read_to_string("/proc/self/cgroup").map_err(|e| unavailable(e.to_string()))?;
        // The usual places first (a unified or a hybrid system, our cgroup beneath the mount's
        // root): no need to read the mount table, which is long on busy hosts.
        let parent = match usual_cgroup_dir(&membership) {
            Some(dir) => dir,
            None => {
                let mountinfo =
                    std::fs::read_to_string("/proc/self/mountinfo").map_err(|e| unavailable(e.to_string()))?;
                own_cgroup_dir(&mountinfo, &membership).map_err(unavailable)?
            }
        };
        CgroupParent::at(&parent, limits)
    }

    /// `parent` (a cgroup v2 directory), ready for cgroups with `limits`: the controllers they
    /// need are enabled for its children if they are not yet.
    ///
    /// # Errors
    /// As for [`CgroupParent::find`].
    pub fn at(parent: &Path, limits: &CgroupLimits) -> Result<CgroupParent, CgroupError> {
        let controllers = (limits.memory_max.is_some(), limits.pids_max.is_some());
        let needed: Vec<&str> = [(controllers.0, "memory"), (controllers.1, "pids")]
            .into_iter()
            .filter_map(|(needed, controller)| needed.then_some(controller))
            .collect();
        let controllers_file = parent.join("cgroup.controllers");
        let available = std::fs::read_to_string(&controllers_file).map_err(|e| CgroupError::Unavailable {
            reason: format!("cannot read '{}': {e}", controllers_file.display()),
        })?;
        for controller in &needed {
            if !available.split_whitespace().any(|c| c == *controller) {
                return Err(CgroupError::Unavailable {
                    reason: format!(
                        "the {controller} controller is not available in '{}' (it has: {}); on a hybrid system it is bound to cgroup v1",
                        parent.display(),
                        available.trim()
                    ),
                });
            }
        }
        let subtree_file = parent.join("cgroup.subtree_control");
        let enabled = std::fs::read_to_string(&subtree_file).map_err(io_error("read", &subtree_file))?;
        let missing: Vec<String> =
            needed.iter().filter(|c| !enabled.split_whitespace().any(|e| e == **c)).map(|c| format!("+{c}")).collect();
        if !missing.is_empty() {
            std::fs::write(&subtree_file, missing.join(" ")).map_err(|e| CgroupError::Unavailable {
                reason: format!(
                    "cannot enable {} in '{}': {e} (a non-root cgroup with processes cannot give controllers to children: run the supervisor in a leaf and create run cgroups beside it)",
                    missing.join(" "),
                    subtree_file.display()
                ),
            })?;
        }
        Ok(CgroupParent { path: parent.to_path_buf(), controllers })
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Creates the cgroup `name` here, with `limits`.
    ///
    /// # Errors
    /// [`CgroupError::InvalidName`] for a name that is not one path component;
    /// [`CgroupError::Unavailable`] for limits needing a controller this directory was not
    /// made ready for; [`CgroupError::Io`] otherwise.
    pub fn create(&self, name: &str, limits: &CgroupLimits) -> Result<Cgroup, CgroupError> {
        check_name(name)?;
        if (limits.memory_max.is_some() && !self.controllers.0) || (limits.pids_max.is_some() && !self.controllers.1) {
            return Err(CgroupError::Unavailable {
                reason: format!("'{}' was not made ready for the controllers of these limits", self.path.display()),
            });
        }
        let parent = &self.path;
        let path = parent.join(name);
        std::fs::create_dir(&path).map_err(io_error("create", &path))?;
        let cgroup = Cgroup { path, removed: false };
        if let Some(bytes) = limits.memory_max {
            cgroup.write("memory.max", &bytes.to_string())?;
            // Swap would let the run hold more than memory.max; the file exists only with swap
            // accounting.
            if cgroup.path.join("memory.swap.max").exists() {
                cgroup.write("memory.swap.max", "0")?;
            }
            // An OOM kill ends the whole run, not one of its threads' victims.
            if cgroup.path.join("memory.oom.group").exists() {
                cgroup.write("memory.oom.group", "1")?;
            }
        }
        if let Some(n) = limits.pids_max {
            cgroup.write("pids.max", &n.to_string())?;
        }
        Ok(cgroup)
    }
}

impl Cgroup {
    /// Creates the cgroup `name` beneath this process's own cgroup v2 directory.
    ///
    /// # Errors
    /// [`CgroupError::Unavailable`] when there is no cgroup v2 hierarchy, or the controllers the
    /// limits need are not available or cannot be enabled; [`CgroupError::InvalidName`] for a name
    /// that is not one path component; [`CgroupError::Io`] otherwise.
    pub fn create(name: &str, limits: &CgroupLimits) -> Result<Cgroup, CgroupError> {
        check_name(name)?;
        CgroupParent::find(limits)?.create(name, limits)
    }

    /// Creates the cgroup `name` beneath `parent` (a cgroup v2 directory), enabling the
    /// controllers the limits need in `parent` if they are not yet.
    ///
    /// # Errors
    /// As for [`Cgroup::create`].
    pub fn create_in(parent: &Path, name: &str, limits: &CgroupLimits) -> Result<Cgroup, CgroupError> {
        check_name(name)?;
        CgroupParent::at(parent, limits)?.create(name, limits)
    }

    fn write(&self, file: &str, value: &str) -> Result<(), CgroupError> {
        let path = self.path.join(file);
        std::fs::write(&path, value).map_err(io_error("write", &path))
    }

    fn read(&self, file: &str) -> Result<Option<String>, CgroupError> {
        let path = self.path.join(file);
        match std::fs::read_to_string(&path) {
            Ok(s) => Ok(Some(s)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io_error("read", &path)(e)),
        }
    }

    /// The cgroup's directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Moves a process (with its threads) into the cgroup.
    ///
    /// # Errors
    /// [`CgroupError::Io`] when `cgroup.procs` cannot be written.
    pub fn add(&self, pid: libc::pid_t) -> Result<(), CgroupError> {
        self.write("cgroup.procs", &pid.to_string())
    }

    /// The largest memory use the cgroup has seen (`memory.peak`, Linux 5.19+), in bytes;
    /// `None` without the memory controller or on older kernels.
    ///
    /// # Errors
    /// [`CgroupError::Io`] when the file exists but cannot be read.
    pub fn memory_peak(&self) -> Result<Option<u64>, CgroupError> {
        Ok(self.read("memory.peak")?.and_then(|s| s.trim().parse().ok()))
    }

    /// How many times the kernel's OOM killer killed in the cgroup (`oom_kill` in
    /// `memory.events`); `None` without the memory controller.
    ///
    /// # Errors
    /// [`CgroupError::Io`] when the file exists but cannot be read.
    pub fn oom_kills(&self) -> Result<Option<u64>, CgroupError> {
        Ok(self.read("memory.events")?.and_then(|s| event_count(&s, "oom_kill")))
    }

    /// Kills whatever is left in the cgroup (`cgroup.kill`, Linux 5.14+) and removes it. Call it
    /// after reaping the run.
    ///
    /// # Errors
    /// [`CgroupError::Io`] when the directory cannot be removed.
    pub fn remove(mut self) -> Result<(), CgroupError> {
        self.removed = true;
        remove_dir(&self.path)
    }
}

impl Drop for Cgroup {
    fn drop(&mut self) {
        if !self.removed {
            let _ = remove_dir(&self.path);
        }
    }
}

fn remove_dir(path: &Path) -> Result<(), CgroupError> {
    let kill = path.join("cgroup.kill");
    if kill.exists() {
        let _ = std::fs::write(&kill, "1");
    }
    // Killed tasks leave the cgroup asynchronously: EBUSY for a moment.
    let mut attempts = 0;
    loop {
        match std::fs::remove_dir(path) {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) if e.raw_os_error() == Some(libc::EBUSY) && attempts < 200 => {
                attempts += 1;
                std::thread::sleep(Duration::from_millis(5));
            }
            Err(e) => return Err(io_error("remove", path)(e)),
        }
    }
}

/// The value of `key` in a flat-keyed cgroup file (`memory.events`).
fn event_count(text: &str, key: &str) -> Option<u64> {
    text.lines().find_map(|l| l.strip_prefix(key)?.strip_prefix(' ')?.trim().parse().ok())
}

/// This process's cgroup v2 directory, from `/proc/self/mountinfo` and `/proc/self/cgroup`.
/// This process's cgroup v2 directory when the hierarchy is mounted at `/sys/fs/cgroup` or
/// `/sys/fs/cgroup/unified` and the directory exists; `None` means: read the mount table.
fn usual_cgroup_dir(membership: &str) -> Option<PathBuf> {
    const CGROUP2_SUPER_MAGIC: i64 = 0x6367_7270;
    let own = membership.lines().find_map(|l| l.strip_prefix("0::"))?;
    ["/sys/fs/cgroup", "/sys/fs/cgroup/unified"].into_iter().find_map(|mount| {
        let is_cgroup2 = nix::sys::statfs::statfs(mount).is_ok_and(|s| s.filesystem_type().0 == CGROUP2_SUPER_MAGIC);
        let dir = Path::new(mount).join(own.trim_start_matches('/'));
        (is_cgroup2 && dir.is_dir()).then_some(dir)
    })
}

fn own_cgroup_dir(mountinfo: &str, membership: &str) -> Result<PathBuf, String> {
    let own = membership
        .lines()
        .find_map(|l| l.strip_prefix("0::"))
        .ok_or("this process is in no cgroup v2 hierarchy (no '0::' line in /proc/self/cgroup)")?;
    for line in mountinfo.lines() {
        // id parent major:minor root mount-point options [optional...] - fstype source super-options
        let Some((before, after)) = line.split_once(" - ") else { continue };
        if after.split_whitespace().next() != Some("cgroup2") {
            continue;
        }
        let fields: Vec<&str> = before.split_whitespace().collect();
        let (Some(root), Some(mount_point)) = (fields.get(3), fields.get(4)) else { continue };
        // Our cgroup must lie beneath the mount's root (a cgroup namespace or a bind mount
        // may show only part of the hierarchy).
        let Some(relative) = own.strip_prefix(root.trim_end_matches('/')) else { continue };
        if !(relative.is_empty() || relative.starts_with('/')) {
            continue;
        }
        return Ok(Path::new(mount_point).join(relative.trim_start_matches('/')));
    }
    Err("no cgroup v2 hierarchy is mounted (see /proc/self/mountinfo)".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    const HYBRID: &str = "\
35 24 0:30 / /sys/fs/cgroup ro,nosuid,nodev,noexec shared:9 - tmpfs tmpfs ro,mode=755
36 35 0:31 / /sys/fs/cgroup/unified rw,nosuid,nodev,noexec,relatime shared:10 - cgroup2 cgroup2 rw
40 35 0:35 / /sys/fs/cgroup/memory rw,nosuid,nodev,noexec,relatime shared:14 - cgroup cgroup rw,memory";

    #[test]
    fn finds_the_unified_hierarchy_of_a_hybrid_system() {
        let membership = "4:memory:/x\n0::/user.slice/session-1.scope\n";
        assert_eq!(
            own_cgroup_dir(HYBRID, membership).unwrap(),
            PathBuf::from("/sys/fs/cgroup/unified/user.slice/session-1.scope")
        );
        assert_eq!(own_cgroup_dir(HYBRID, "0::/\n").unwrap(), PathBuf::from("/sys/fs/cgroup/unified/"));
    }

    #[test]
    fn reports_a_missing_hierarchy() {
        assert!(own_cgroup_dir(HYBRID, "4:memory:/x\n").unwrap_err().contains("no cgroup v2"));
        let v1_only = "40 35 0:35 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory";
        assert!(own_cgroup_dir(v1_only, "0::/\n").unwrap_err().contains("no cgroup v2 hierarchy is mounted"));
    }

    #[test]
    fn reads_event_counts() {
        let events = "low 0\nhigh 0\nmax 12\noom 3\noom_kill 2\noom_group_kill 1\n";
        assert_eq!(event_count(events, "oom_kill"), Some(2));
        assert_eq!(event_count(events, "oom"), Some(3));
        assert_eq!(event_count(events, "missing"), None);
    }

    #[test]
    fn names_are_one_component() {
        for name in ["", ".", "..", "a/b", "../x"] {
            let err = Cgroup::create_in(Path::new("/nonexistent"), name, &CgroupLimits::default()).unwrap_err();
            assert!(matches!(err, CgroupError::InvalidName(_)), "{name}: {err}");
        }
    }

    #[test]
    fn missing_controllers_make_the_cgroup_unavailable() {
        let dir = std::env::temp_dir().join(format!("sandbox-cgroup-unit-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("cgroup.controllers"), "cpu io hugetlb\n").unwrap();
        std::fs::write(dir.join("cgroup.subtree_control"), "").unwrap();
        let err =
            Cgroup::create_in(&dir, "run", &CgroupLimits { memory_max: Some(1 << 20), pids_max: None }).unwrap_err();
        assert!(err.to_string().contains("the memory controller is not available"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
