//! Exclusive access to a run directory: an advisory lock (`flock`) on the
//! directory itself, held for as long as the process uses it. The operating
//! system releases it when the process ends, however it ends (a kill
//! included), so a held lock always has a live holder; and as it is the
//! directory's, deleting a file cannot release it. The holder (process,
//! host, start) is written into `RUN/lock` for the message others get, and
//! that file is removed when the lock is released normally (one left by a
//! killed run names a dead process and locks nothing).
//!
//! Where a directory cannot be locked (some network filesystems refuse
//! `flock` on a directory), the file `RUN/lock` itself is locked instead
//! and kept.

use std::io::{Read as _, Seek as _, Write as _};
use std::path::{Path, PathBuf};

/// A held lock; released when dropped (or when the process ends).
#[derive(Debug)]
pub struct RunLock {
    /// The file naming the holder, removed on release (`None`: it is the
    /// locked file itself, which stays).
    holder: Option<PathBuf>,
    _file: std::fs::File,
}

impl Drop for RunLock {
    fn drop(&mut self) {
        if let Some(holder) = &self.holder {
            let _ = std::fs::remove_file(holder);
        }
    }
}

/// Why a run directory could not be locked.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    /// Another process holds it: who, as it wrote itself into the file.
    #[error("`{dir}` is in use by {holder}")]
    Held { dir: String, holder: String },
    #[error("cannot lock `{0}`: {1}")]
    Io(String, std::io::Error),
}

/// The text of `RUN/lock` starts with this (how an mbrl lock file is told
/// from a file of the same name that someone else put there).
pub const HOLDER_PREFIX: &str = "mbrl (pid ";

/// Locks `dir` (which must exist) for this process.
pub fn lock(dir: &Path) -> Result<RunLock, LockError> {
    let path = dir.join("lock");
    let io = |e| LockError::Io(path.display().to_string(), e);
    let held = |dir: &Path| {
        let mut holder = String::new();
        if let Ok(mut file) = std::fs::File::open(dir.join("lock")) {
            let _ = file.read_to_string(&mut holder);
        }
        let holder = match holder.trim() {
            "" => "another mbrl process".to_string(),
            h => h.to_string(),
        };
        LockError::Held {
            dir: dir.display().to_string(),
            holder,
        }
    };
    let directory =
        std::fs::File::open(dir).map_err(|e| LockError::Io(dir.display().to_string(), e));
    let (file, holder) = match directory.map(|d| (d.try_lock(), d)) {
        Ok((Ok(()), d)) => (d, Some(path.clone())),
        Ok((Err(std::fs::TryLockError::WouldBlock), _)) => return Err(held(dir)),
        // The directory cannot be locked here: lock the holder's file.
        _ => {
            let file = std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .open(&path)
                .map_err(io)?;
            match file.try_lock() {
                Ok(()) => (file, None),
                Err(std::fs::TryLockError::WouldBlock) => return Err(held(dir)),
                Err(std::fs::TryLockError::Error(e)) => return Err(io(e)),
            }
        }
    };
    let host = std::fs::read_to_string("/etc/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "this host".into());
    let since = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let text = format!(
        "{HOLDER_PREFIX}{} on {host}, since unix time {since})\n",
        std::process::id()
    );
    let lock = RunLock {
        holder,
        _file: file,
    };
    match &lock.holder {
        // A new file each time, written whole: never a half-written holder.
        Some(holder) => super::write_atomic(holder, text.as_bytes()).map_err(io)?,
        None => {
            let mut file = &lock._file;
            file.set_len(0).map_err(io)?;
            file.rewind().map_err(io)?;
            file.write_all(text.as_bytes()).map_err(io)?;
        }
    }
    Ok(lock)
}

/// How to tell whether the holder a [`LockError::Held`] names is alive, in
/// words: it is, since the lock goes with its process.
pub fn holder_help(holder: &str) -> String {
    let pid: Option<u32> = holder
        .strip_prefix(HOLDER_PREFIX)
        .and_then(|rest| rest.split(' ').next())
        .and_then(|pid| pid.parse().ok());
    let host = holder
        .split(" on ")
        .nth(1)
        .and_then(|rest| rest.split(',').next());
    match (pid, host) {
        (Some(pid), Some(host)) => format!(
            "the lock is the operating system's and goes with its holder: held, it means process {pid} on {host} is alive (`ps -p {pid}` there shows it). Wait for that run to end (or stop it with Ctrl-C), or choose another `--out`"
        ),
        _ => "the lock is the operating system's and goes with its holder, so the holder is alive. Wait for that run to end (or stop it with Ctrl-C), or choose another `--out`".to_string(),
    }
}
