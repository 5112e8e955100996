//! Fault injection: damaged checkpoints (truncated, flipped bytes in
//! weights, in counters, in a finished seed's record), a lost manifest with
//! a changed experiment, two runs on one directory, a full disk, deep
//! nesting, oversized grids, impossible memory, bad flags and a closed pipe.
//! Each ends in a clear coded error or a correct result, and no earlier
//! result is lost or altered.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use super::cli::{mbrl, stdout, temp_dir};

/// Stderr with miette's line wrapping undone, for matching phrases.
pub(crate) fn stderr(out: &std::process::Output) -> String {
    let text = super::cli::stderr(out);
    let mut flat = String::new();
    for line in text.lines() {
        let line = line.trim_start();
        let line = line.strip_prefix('│').unwrap_or(line).trim_start();
        if !flat.is_empty() && !flat.ends_with('-') {
            flat.push(' ');
        }
        flat.push_str(line);
    }
    flat
}

/// ER on PanFlute with 3 pipes: two seeds, checkpoints every 100 steps.
pub(crate) const TINY: &str = "use young2022::*
experiment tiny {
  seeds: 2
  env: panflute(pipes: 3)
  agent: er { lr: 1e-4, batch: 16, steps: 400 steps, eval_every: 100 steps, save_every: 100 steps, learning_starts: 100 steps, q: mlp { hidden: [16, 16] }, eval: greedy_eval { envs: 4, steps: 20 steps } }
}
";

struct Case {
    dir: PathBuf,
    file: String,
}

impl Case {
    fn new(name: &str, text: &str) -> Case {
        let dir = temp_dir(name);
        let file = dir.join("tiny.exp");
        std::fs::write(&file, text).unwrap();
        Case {
            file: file.to_str().unwrap().to_string(),
            dir,
        }
    }

    fn run(&self, out: &str, extra: &[&str]) -> std::process::Output {
        let out = self.dir.join(out);
        let mut args = vec!["run", &self.file, "--out", out.to_str().unwrap()];
        args.extend(extra);
        mbrl(&args)
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.join(rel)
    }
}

fn read(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap()
}

/// Every file under `dir` (but the lock), with a digest of its bytes.
fn snapshot(dir: &Path) -> Vec<(PathBuf, u64, usize)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else if path.file_name().is_some_and(|n| n != "lock") {
                let bytes = read(&path);
                let digest = bytes.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
                    (h ^ *b as u64).wrapping_mul(0x100_0000_01b3)
                });
                out.push((path.clone(), digest, bytes.len()));
            }
        }
    }
    out.sort();
    out
}

fn temporaries(dir: &Path) -> Vec<PathBuf> {
    snapshot(dir)
        .into_iter()
        .map(|(p, _, _)| p)
        .filter(|p| p.to_string_lossy().ends_with(".tmp") || p.to_string_lossy().contains(".tmp."))
        .collect()
}

/// A damaged checkpoint is refused with a coded error naming the file, and
/// nothing in the run directory changes; `--recompute-damaged` moves it
/// aside and ends with the uninterrupted run's numbers.
#[test]
fn damaged_checkpoints_are_refused_then_recomputed_on_request() {
    let case = Case::new("damaged", TINY);
    let whole = case.run("whole", &[]);
    assert_eq!(whole.status.code(), Some(0), "{}", stderr(&whole));
    let expected = read(&case.path("whole/metrics.csv"));
    // (what, how to damage a checkpoint of a stopped run, or of a finished one)
    type Damage = fn(&mut Vec<u8>);
    let damages: [(&str, Damage, bool); 4] = [
        ("truncated", |b| b.truncate(b.len() - 100), false),
        (
            "weights",
            |b| {
                let at = b.len() / 2;
                b[at] ^= 0x40
            },
            false,
        ),
        ("counters", |b| b[80] ^= 0x01, false),
        (
            "finished record",
            |b| {
                let at = b.len() - 20;
                b[at] ^= 0x08
            },
            true,
        ),
    ];
    for (what, damage, finished) in damages {
        let out = format!("run-{}", what.replace(' ', "-"));
        let first = match finished {
            true => case.run(&out, &[]),
            false => case.run(&out, &["--stop-at", "200"]),
        };
        assert!(
            matches!(first.status.code(), Some(0 | 130)),
            "{what}: {}",
            stderr(&first)
        );
        let ckpt = case.path(&format!("{out}/checkpoints/cell-0/seed-1.bin"));
        let mut bytes = read(&ckpt);
        damage(&mut bytes);
        std::fs::write(&ckpt, &bytes).unwrap();
        let before = snapshot(&case.path(&out));
        let res = case.run(&out, &[]);
        let err = stderr(&res);
        assert_eq!(res.status.code(), Some(2), "{what}: {err}");
        assert!(
            err.contains("mbrl::run::damaged_checkpoint"),
            "{what}: {err}"
        );
        assert!(
            err.contains("seed-1.bin") && err.contains("--recompute-damaged"),
            "{what}: {err}"
        );
        assert_eq!(
            before,
            snapshot(&case.path(&out)),
            "{what}: nothing changed"
        );
        let res = case.run(&out, &["--recompute-damaged"]);
        assert_eq!(res.status.code(), Some(0), "{what}: {}", stderr(&res));
        assert!(stderr(&res).contains("moved to"), "{what}");
        assert!(
            ckpt.with_extension("bin.damaged").exists(),
            "{what}: the damaged file is kept"
        );
        assert_eq!(
            read(&case.path(&format!("{out}/metrics.csv"))),
            expected,
            "{what}"
        );
    }
    let _ = std::fs::remove_dir_all(&case.dir);
}

/// With the manifest gone, a changed experiment meets the old run's
/// checkpoints: they carry the experiment's identity and are refused.
#[test]
fn a_lost_manifest_does_not_let_another_experiment_resume() {
    let case = Case::new("lost-manifest", TINY);
    let res = case.run("run", &["--stop-at", "200"]);
    assert_eq!(res.status.code(), Some(130), "{}", stderr(&res));
    std::fs::remove_file(case.path("run/manifest.ron")).unwrap();
    std::fs::write(&case.file, TINY.replace("lr: 1e-4", "lr: 2e-4")).unwrap();
    let before = snapshot(&case.path("run/checkpoints"));
    let res = case.run("run", &[]);
    let err = stderr(&res);
    assert_eq!(res.status.code(), Some(2), "{err}");
    assert!(err.contains("mbrl::run::foreign_checkpoint"), "{err}");
    assert!(err.contains("belongs to experiment"), "{err}");
    assert_eq!(before, snapshot(&case.path("run/checkpoints")));
    assert!(
        !case.path("run/manifest.ron").exists(),
        "the refusal writes no manifest"
    );
    let _ = std::fs::remove_dir_all(&case.dir);
}

/// Resuming compares resolved values: `1e-4` written `0.0001`, fields in
/// another order, resume; a renamed experiment does not.
#[test]
fn resume_compares_values_and_names_not_text() {
    let case = Case::new("rewritten", TINY);
    let res = case.run("run", &["--stop-at", "200"]);
    assert_eq!(res.status.code(), Some(130));
    let rewritten = TINY
        .replace("lr: 1e-4, batch: 16", "batch: 16, lr: 0.0001")
        .replace("seeds: 2\n  env", "env");
    let rewritten = rewritten.replace("  agent:", "  seeds: 2\n  agent:");
    std::fs::write(&case.file, rewritten).unwrap();
    let res = case.run("run", &["--stop-at", "300"]);
    assert_eq!(res.status.code(), Some(130), "{}", stderr(&res));
    assert!(stdout(&res).contains("resuming"), "{}", stdout(&res));
    std::fs::write(
        &case.file,
        TINY.replace("experiment tiny", "experiment tiny2"),
    )
    .unwrap();
    let res = case.run("run", &[]);
    let err = stderr(&res);
    assert_eq!(res.status.code(), Some(1), "{err}");
    assert!(
        err.contains("mbrl::run::changed_experiment") && err.contains("named `tiny`"),
        "{err}"
    );
    let _ = std::fs::remove_dir_all(&case.dir);
}

/// `mbrl run FILE --out OUT` on one thread in the background, once it has
/// written its manifest (it holds the directory's lock from then on).
pub(crate) fn running(file: &str, out: &Path) -> std::process::Child {
    let child = Command::new(crate::bin())
        .args([
            "run",
            file,
            "--out",
            out.to_str().unwrap(),
            "--threads",
            "1",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let start = std::time::Instant::now();
    while !out.join("manifest.ron").exists() && start.elapsed().as_secs() < 60 {
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    child
}

/// A second `mbrl run` on a directory in use is refused, naming the holder.
#[test]
fn two_runs_on_one_directory() {
    let slow = TINY.replace("steps: 400 steps", "steps: 20000 steps");
    let case = Case::new("concurrent", &slow);
    let out = case.path("run");
    let mut first = running(&case.file, &out);
    let res = case.run("run", &[]);
    first.kill().unwrap();
    first.wait().unwrap();
    let err = stderr(&res);
    assert_eq!(res.status.code(), Some(2), "{err}");
    assert!(err.contains("mbrl::run::locked"), "{err}");
    assert!(err.contains(&format!("pid {}", first.id())), "{err}");
    let _ = std::fs::remove_dir_all(&case.dir);
}

/// A full disk ends the run with an error; the files written before are
/// intact and no temporary file is left behind. Needs a small tmpfs
/// (root and `mount`): ignored by default, so that a machine without them
/// reports it as ignored; `scripts/test.sh` runs it as root.
#[test]
#[ignore = "needs root to mount a tmpfs (scripts/test.sh runs it as root)"]
fn a_full_disk_leaves_no_partial_files() {
    let case = Case::new("full", TINY);
    let disk = case.path("disk");
    std::fs::create_dir_all(&disk).unwrap();
    let mounted = Command::new("mount")
        .args([
            "-t",
            "tmpfs",
            "-o",
            "size=96k",
            "tmpfs",
            disk.to_str().unwrap(),
        ])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        mounted,
        "cannot mount a tmpfs here (needs root and `mount`)"
    );
    let out = disk.join("run");
    let res = mbrl(&["run", &case.file, "--out", out.to_str().unwrap()]);
    let err = stderr(&res);
    let leftovers = temporaries(&disk);
    let manifest = std::fs::read_to_string(out.join("manifest.ron"));
    let _ = Command::new("umount").arg(&disk).status();
    assert_eq!(res.status.code(), Some(2), "{err}");
    assert!(
        err.contains("No space left") || err.contains("space"),
        "{err}"
    );
    assert!(leftovers.is_empty(), "temporary files left: {leftovers:?}");
    assert!(
        manifest.is_ok_and(|m| m.contains("// crc32")),
        "the manifest is whole"
    );
    let _ = std::fs::remove_dir_all(&case.dir);
}

/// Limits instead of crashes: deep nesting and an oversized grid are coded
/// errors; a run that cannot fit in memory is refused before it allocates;
/// bad flags and a file without an experiment are refused; a closed stdout
/// ends quietly.
#[test]
fn limits_instead_of_crashes() {
    let case = Case::new("limits", TINY);
    let deep = case.path("deep.exp");
    std::fs::write(
        &deep,
        format!(
            "env e = procmaze {{ grid_size: {}4{} }}\n",
            "[".repeat(5000),
            "]".repeat(5000)
        ),
    )
    .unwrap();
    let res = mbrl(&["check", deep.to_str().unwrap()]);
    assert_eq!(res.status.code(), Some(1), "{}", stderr(&res));
    assert!(stderr(&res).contains("mbrl::syntax::too_deep"));
    let huge = TINY.replace("seeds: 2", "seeds: 100000");
    std::fs::write(&case.file, &huge).unwrap();
    let start = std::time::Instant::now();
    let res = case.run("huge", &[]);
    let err = stderr(&res);
    assert_eq!(res.status.code(), Some(2), "{err}");
    assert!(
        err.contains("mbrl::run::insufficient_memory") && err.contains("GiB"),
        "{err}"
    );
    assert!(start.elapsed().as_secs() < 20, "refused before allocating");
    assert!(!case.path("huge").exists(), "nothing written");
    std::fs::write(&case.file, TINY).unwrap();
    let res = case.run("tight", &["--memory", "0.001"]);
    assert!(
        stderr(&res).contains("allowed by `--memory`"),
        "{}",
        stderr(&res)
    );
    for flags in [["--threads", "0"], ["--scale", "inf"], ["--scale", "-1"]] {
        let res = case.run("flags", &flags);
        assert_eq!(res.status.code(), Some(2), "{flags:?}");
    }
    let empty = case.path("empty.exp");
    std::fs::write(&empty, "use young2022::*\n").unwrap();
    let res = mbrl(&["run", empty.to_str().unwrap()]);
    assert_eq!(res.status.code(), Some(2));
    assert!(
        stderr(&res).contains("mbrl::run::no_experiment"),
        "{}",
        stderr(&res)
    );
    let mut child = Command::new(crate::bin())
        .args(["describe", "dqn"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!String::from_utf8_lossy(&out.stderr).contains("panicked"));
    let _ = std::fs::remove_dir_all(&case.dir);
}

/// `mbrl plot` verifies the metrics before it draws, and says what it leaves out.
#[test]
fn plot_verifies_and_reports() {
    let case = Case::new("plot", TINY);
    let res = case.run("run", &[]);
    assert_eq!(res.status.code(), Some(0), "{}", stderr(&res));
    let metrics = case.path("run/metrics.csv");
    let good = read(&metrics);
    let mut bad = good.clone();
    let at = bad.len() - 3;
    bad[at] = if bad[at] == b'1' { b'2' } else { b'1' };
    std::fs::write(&metrics, &bad).unwrap();
    let res = mbrl(&["plot", case.path("run").to_str().unwrap()]);
    let err = stderr(&res);
    assert_eq!(res.status.code(), Some(2), "{err}");
    assert!(
        err.contains("mbrl::run::damaged_file") && err.contains("metrics.csv"),
        "{err}"
    );
    // Rerunning rewrites the metrics from the checkpoints.
    let res = case.run("run", &[]);
    assert_eq!(res.status.code(), Some(0), "{}", stderr(&res));
    assert_eq!(read(&metrics), good);
    assert!(temporaries(&case.path("run")).is_empty());
    let _ = std::fs::remove_dir_all(&case.dir);
}

/// `precision: bf16` on a machine without a bf16 matrix unit (here one
/// whose AMX `MBRL_HIDE_AMX=1` hides) is refused at the start of the run,
/// coded and naming the cell, before anything is written; `check` accepts
/// the file (another machine may run it) and `graph` shows the precision;
/// `bench --precision bf16` is refused too.
#[test]
fn bf16_without_a_matrix_unit_is_refused_at_start() {
    let text = TINY.replace(
        "eval_every: 100 steps",
        "eval_every: 100 steps, precision: bf16",
    );
    assert_ne!(text, TINY, "the fixture sets a precision");
    let case = Case::new("bf16-refused", &text);
    let hide = [("MBRL_HIDE_AMX", Path::new("1"))];
    let res = super::cli::mbrl_with(&["check", &case.file], &hide);
    assert_eq!(
        res.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&res.stderr)
    );
    let res = super::cli::mbrl_with(&["graph", &case.file], &hide);
    assert!(
        stdout(&res).contains("products in bf16"),
        "{}",
        stdout(&res)
    );
    let out = case.path("run");
    let res = super::cli::mbrl_with(&["run", &case.file, "--out", out.to_str().unwrap()], &hide);
    let err = String::from_utf8_lossy(&res.stderr).to_string();
    assert_eq!(res.status.code(), Some(2), "{err}");
    assert!(
        err.contains("mbrl::run::bf16_unavailable")
            && err.contains("cell 0")
            && err.contains("MBRL_HIDE_AMX"),
        "{err}"
    );
    assert!(!out.exists(), "nothing written");
    let res = super::cli::mbrl_with(
        &[
            "bench",
            "--precision",
            "bf16",
            "--seeds",
            "1",
            "--updates",
            "1",
        ],
        &hide,
    );
    let err = String::from_utf8_lossy(&res.stderr).to_string();
    assert_eq!(res.status.code(), Some(2), "{err}");
    assert!(err.contains("bf16"), "{err}");
    let _ = std::fs::remove_dir_all(&case.dir);
}
