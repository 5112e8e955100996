//! Exclusive access to a run directory: an advisory lock on `RUN/lock`,
//! held for as long as the process uses the directory, with the holder
//! (process, host, start) written into the file for the message others get.

use std::io::{Read as _, Seek as _, Write as _};
use std::path::Path;

/// A held lock; released when dropped (or when the process ends).
#[derive(Debug)]
pub struct RunLock {
    _file: std::fs::File,
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

/// Locks `dir` (which must exist) for this process.
pub fn lock(dir: &Path) -> Result<RunLock, LockError> {
    let path = dir.join("lock");
    let io = |e| LockError::Io(path.display().to_string(), e);
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(io)?;
    match file.try_lock() {
        Ok(()) => (),
        Err(std::fs::TryLockError::WouldBlock) => {
            let mut holder = String::new();
            let _ = file.read_to_string(&mut holder);
            let holder = match holder.trim() {
                "" => "another mbrl process".to_string(),
                h => h.to_string(),
            };
            return Err(LockError::Held {
                dir: dir.display().to_string(),
                holder,
            });
        }
        Err(std::fs::TryLockError::Error(e)) => return Err(io(e)),
    }
    let host = std::fs::read_to_string("/etc/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "this host".into());
    let since = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let text = format!(
        "mbrl (pid {} on {host}, since unix time {since})\n",
        std::process::id()
    );
    file.set_len(0).map_err(io)?;
    file.rewind().map_err(io)?;
    file.write_all(text.as_bytes()).map_err(io)?;
    Ok(RunLock { _file: file })
}
