//! Fault injection on `mbrl run`'s directory and what it says (issue 22):
//! an `--out` that holds someone's files, a file, a path too long; a file
//! with two experiments and one `--out`; the temporaries a killed writer
//! left; a lock file deleted under a running run; the default directory run
//! again; messages that named the wrong cause or left out a count; progress
//! lines and `--help`.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use super::cli::{mbrl, stdout, temp_dir};

/// ER on PanFlute with 3 pipes: two seeds, checkpoints every 100 steps,
/// learning from step 100.
const TINY: &str = "use young2022::*
experiment tiny {
  seeds: 2
  env: panflute(pipes: 3)
  agent: er { lr: 1e-4, batch: 16, steps: 400 steps, eval_every: 100 steps, save_every: 100 steps, learning_starts: 100 steps, q: mlp { hidden: [16, 16] }, eval: greedy_eval { envs: 4, steps: 20 steps } }
}
";

/// Stderr with miette's line wrapping and frame undone, for matching phrases.
fn stderr(out: &Output) -> String {
    let text = super::cli::stderr(out);
    let mut flat = String::new();
    for line in text.lines() {
        let line = line.trim_start();
        let line = line
            .strip_prefix('│')
            .or_else(|| line.strip_prefix('×'))
            .unwrap_or(line)
            .trim_start();
        if !flat.is_empty() && !flat.ends_with('-') && !flat.ends_with('/') {
            flat.push(' ');
        }
        flat.push_str(line);
    }
    flat
}

/// A temporary directory holding `tiny.exp`.
struct Case {
    dir: PathBuf,
    file: String,
}

impl Case {
    fn new(name: &str, text: &str) -> Case {
        let dir = temp_dir(&format!("run-{name}"));
        let file = dir.join("tiny.exp");
        std::fs::write(&file, text).unwrap();
        Case {
            file: file.to_str().unwrap().to_string(),
            dir,
        }
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.join(rel)
    }

    /// `mbrl run FILE --out DIR EXTRA...`.
    fn run(&self, out: &str, extra: &[&str]) -> Output {
        let out = self.path(out);
        let mut args = vec!["run", &self.file, "--out", out.to_str().unwrap()];
        args.extend(extra);
        mbrl(&args)
    }

    /// `mbrl ARGS...` run in this case's directory (where `runs/` goes).
    fn here(&self, args: &[&str]) -> Output {
        Command::new(crate::bin())
            .args(args)
            .current_dir(&self.dir)
            .env("NO_COLOR", "1")
            .output()
            .expect("run mbrl")
    }
}

impl Drop for Case {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Every file under `dir`, relative, sorted.
fn files(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            match path.is_dir() {
                true => stack.push(path),
                false => out.push(path.strip_prefix(dir).unwrap().display().to_string()),
            }
        }
    }
    out.sort();
    out
}

/// The pid of a process that has ended.
fn dead_pid() -> u32 {
    let mut child = Command::new("true").spawn().unwrap();
    let pid = child.id();
    child.wait().unwrap();
    pid
}

/// Item 1: `run --out` refuses a directory that holds files and no run,
/// and changes nothing in it; a new or empty one is fine.
#[test]
fn run_refuses_an_out_that_holds_no_run() {
    let case = Case::new("occupied", TINY);
    let out = case.path("mine");
    std::fs::create_dir_all(out.join("plots")).unwrap();
    std::fs::write(out.join("metrics.csv"), "my,own,metrics\n").unwrap();
    std::fs::write(out.join("plots/eval.png"), "my plot").unwrap();
    std::fs::write(out.join("lock"), "my lock").unwrap();
    let res = case.run("mine", &[]);
    let err = stderr(&res);
    assert_eq!(res.status.code(), Some(2), "{err}");
    assert!(
        err.contains("mbrl::run::occupied_out")
            && err.contains(&format!(
                "`{}` is not empty and holds no run (it holds `lock`, `metrics.csv`, `plots`)",
                out.display()
            )),
        "{err}"
    );
    assert!(err.contains("choose another `--out`"), "{err}");
    assert_eq!(files(&out), ["lock", "metrics.csv", "plots/eval.png"]);
    assert_eq!(
        std::fs::read_to_string(out.join("lock")).unwrap(),
        "my lock"
    );
    assert_eq!(
        std::fs::read_to_string(out.join("metrics.csv")).unwrap(),
        "my,own,metrics\n"
    );
    std::fs::create_dir_all(case.path("empty")).unwrap();
    let res = case.run("empty", &["--stop-at", "100"]);
    assert_eq!(res.status.code(), Some(130), "{}", stderr(&res));
}

/// Item 3: a file with two experiments and one `--out` is refused before
/// anything runs, saying how to pick one; `--experiment` picks it, and the
/// same command then finishes (and runs again without a refusal).
#[test]
fn two_experiments_and_one_out_are_refused_before_anything_runs() {
    let two = format!(
        "{TINY}{}",
        TINY.replace("use young2022::*\n", "")
            .replace("experiment tiny", "experiment other")
    );
    let case = Case::new("two", &two);
    let res = case.run("te", &[]);
    let err = stderr(&res);
    assert_eq!(res.status.code(), Some(2), "{err}");
    assert!(
        err.contains("mbrl::run::several_experiments")
            && err.contains(
                "declares 2 experiments (`tiny`, `other`) and `--out` names one run directory"
            )
            && err.contains("pick one with `--experiment NAME`"),
        "{err}"
    );
    assert!(!case.path("te").exists(), "nothing ran");
    for _ in 0..2 {
        let res = case.run("te", &["--experiment", "other"]);
        assert_eq!(res.status.code(), Some(0), "{}", stderr(&res));
        assert!(stdout(&res).contains("run `other`"), "{}", stdout(&res));
    }
    let res = case.run("te", &["--experiment", "third"]);
    let err = stderr(&res);
    assert_eq!(res.status.code(), Some(2), "{err}");
    assert!(
        err.contains("mbrl::run::unknown_experiment") && err.contains("`tiny`, `other`"),
        "{err}"
    );
}

/// Item 4: the temporaries of a killed run or merge (`.NAME.PID.tmp`, their
/// writer gone) are removed by the next run or merge that takes the lock; a
/// live process's are left alone.
#[test]
fn temporaries_of_a_killed_writer_are_removed() {
    let case = Case::new("orphans", TINY);
    let res = case.run("run", &["--stop-at", "200"]);
    assert_eq!(res.status.code(), Some(130), "{}", stderr(&res));
    let dead = dead_pid();
    let live = std::process::id();
    let orphans = [
        format!("run/checkpoints/cell-0/.seed-0.bin.{dead}.tmp"),
        format!("run/.metrics.sum.{dead}.tmp"),
    ];
    let kept = format!("run/.metrics.csv.{live}.tmp");
    for f in orphans.iter().chain([&kept]) {
        std::fs::write(case.path(f), "half written").unwrap();
    }
    let res = case.run("run", &[]);
    assert_eq!(res.status.code(), Some(0), "{}", stderr(&res));
    for f in &orphans {
        assert!(!case.path(f).exists(), "{f} is left");
    }
    assert!(
        case.path(&kept).exists(),
        "a live writer's temporary was removed"
    );

    for i in 0..2 {
        let res = case.run(&format!("part-{i}"), &["--shard", &format!("{i}/2")]);
        assert_eq!(res.status.code(), Some(0), "{}", stderr(&res));
    }
    let merge = |out: &str| {
        mbrl(&[
            "merge",
            case.path("part-0").to_str().unwrap(),
            case.path("part-1").to_str().unwrap(),
            "--out",
            case.path(out).to_str().unwrap(),
        ])
    };
    let res = merge("merged");
    assert_eq!(res.status.code(), Some(0), "{}", stderr(&res));
    let orphan = case.path(&format!("merged/.metrics.sum.{dead}.tmp"));
    std::fs::write(&orphan, "half written").unwrap();
    let res = merge("merged");
    assert_eq!(res.status.code(), Some(0), "{}", stderr(&res));
    assert!(!orphan.exists(), "the killed merge's temporary is left");
    // A merge killed before its first file: only temporaries in its output.
    std::fs::create_dir_all(case.path("killed")).unwrap();
    std::fs::write(case.path(&format!("killed/.manifest.ron.{dead}.tmp")), "x").unwrap();
    let res = merge("killed");
    assert_eq!(res.status.code(), Some(0), "{}", stderr(&res));
    assert!(files(&case.path("killed"))
        .iter()
        .all(|f| !f.ends_with(".tmp")));
}

/// Item 7: the lock is the directory's, held by the OS for the run's
/// lifetime: deleting `RUN/lock` under a running run does not let a second
/// one in, the refusal says how to tell the holder is alive, and a run that
/// ended leaves no `lock` behind.
#[test]
fn the_lock_survives_its_file_and_leaves_nothing_stale() {
    let case = Case::new(
        "lock",
        &TINY.replace("steps: 400 steps", "steps: 20000 steps"),
    );
    let out = case.path("run");
    let mut first = super::faults::running(&case.file, &out);
    let holder = std::fs::read_to_string(out.join("lock")).unwrap();
    assert!(holder.contains(&format!("pid {}", first.id())), "{holder}");
    std::fs::remove_file(out.join("lock")).unwrap();
    let res = case.run("run", &["--stop-at", "100"]);
    first.kill().unwrap();
    first.wait().unwrap();
    let err = stderr(&res);
    assert_eq!(res.status.code(), Some(2), "{err}");
    assert!(err.contains("mbrl::run::locked"), "{err}");
    assert!(err.contains("goes with its holder"), "{err}");

    std::fs::write(case.file.as_str(), TINY).unwrap();
    let res = case.run("done", &[]);
    assert_eq!(res.status.code(), Some(0), "{}", stderr(&res));
    assert!(
        !case.path("done/lock").exists(),
        "a finished run leaves its lock file"
    );
}

/// Item 7, the message: a held lock names its live holder and how to see it.
#[test]
fn a_held_lock_says_how_to_see_its_holder() {
    let case = Case::new(
        "holder",
        &TINY.replace("steps: 400 steps", "steps: 20000 steps"),
    );
    let out = case.path("run");
    let mut first = super::faults::running(&case.file, &out);
    let res = case.run("run", &[]);
    first.kill().unwrap();
    first.wait().unwrap();
    let err = stderr(&res);
    assert_eq!(res.status.code(), Some(2), "{err}");
    let pid = first.id();
    assert!(
        err.contains(&format!("it means process {pid} on "))
            && err.contains(&format!("is alive (`ps -p {pid}` there shows it)")),
        "{err}"
    );
    // The killed run's file names a dead process and locks nothing.
    let res = case.run("run", &["--stop-at", "100"]);
    assert_eq!(res.status.code(), Some(130), "{}", stderr(&res));
}

/// Item 8: a run with more than 5 non-finite losses shows 5 and says the total.
#[test]
fn non_finite_losses_are_counted() {
    let case = Case::new("nan", &TINY.replace("lr: 1e-4", "lr: 1e30"));
    let res = case.run("nan", &[]);
    let err = stderr(&res);
    assert_eq!(res.status.code(), Some(0), "{err}");
    assert_eq!(
        err.matches("non-finite q_loss at env step").count(),
        5,
        "{err}"
    );
    assert!(
        err.contains("598 non-finite losses in all (the first 5 above)"),
        "{err}"
    );
}

/// Item 8: a checkpoint of this experiment swapped with another is called
/// what it is, not another experiment's.
#[test]
fn a_swapped_checkpoint_is_called_swapped() {
    let case = Case::new("swap", TINY);
    let res = case.run("swap", &[]);
    assert_eq!(res.status.code(), Some(0), "{}", stderr(&res));
    let cell = case.path("swap/checkpoints/cell-0");
    let (a, b) = (cell.join("seed-0.bin"), cell.join("seed-1.bin"));
    let tmp = cell.join("swapping");
    std::fs::rename(&a, &tmp).unwrap();
    std::fs::rename(&b, &a).unwrap();
    std::fs::rename(&tmp, &b).unwrap();
    let res = case.run("swap", &[]);
    let err = stderr(&res);
    assert_eq!(res.status.code(), Some(2), "{err}");
    assert!(
        err.contains("mbrl::run::foreign_checkpoint")
            && err.contains("seed-0.bin` is a checkpoint of this experiment's cell 0, seed-1, lying where cell 0, seed-0 belongs")
            && err.contains("moved, copied or swapped within this run"),
        "{err}"
    );
    assert!(!err.contains("another experiment's"), "{err}");
}

/// Item 8: `--out` on a file, a path through a file, a name too long and
/// (as a non-root user) a read-only directory are refused with a code
/// naming the path and the cause.
#[test]
fn an_unusable_out_is_refused_with_a_code() {
    let case = Case::new("unusable", TINY);
    std::fs::write(case.path("a-file"), "not a directory").unwrap();
    let long = "x".repeat(300);
    let mut cases = vec![
        ("a-file", "it is a file, not a directory"),
        (
            "a-file/run",
            "a part of the path is a file, not a directory",
        ),
        (long.as_str(), "a name in the path is too long"),
    ];
    let read_only = case.path("read-only");
    std::fs::create_dir_all(&read_only).unwrap();
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(&read_only, std::fs::Permissions::from_mode(0o555)).unwrap();
    // Root writes anywhere: the case needs another user.
    let writable = std::fs::write(read_only.join("probe"), "").is_ok();
    if !writable {
        cases.push(("read-only/run", "this user cannot write there"));
    }
    for (out, why) in cases {
        let res = case.run(out, &[]);
        let err = stderr(&res);
        assert_eq!(res.status.code(), Some(2), "{out}: {err}");
        // miette wraps a long path anywhere: compare without whitespace.
        let squash = |s: &str| s.split_whitespace().collect::<String>();
        let expected = format!(
            "cannot use `{}` as a run directory: {why}",
            case.path(out).display()
        );
        assert!(
            err.contains("mbrl::run::unusable_out") && squash(&err).contains(&squash(&expected)),
            "{out}: {err}"
        );
    }
    std::fs::set_permissions(&read_only, std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// Item 8: a changed experiment caused by a `--set` says to drop or change
/// the `--set`, not to restore the file.
#[test]
fn a_change_by_set_says_so() {
    let case = Case::new("set", TINY);
    let res = case.run("set", &["--stop-at", "100"]);
    assert_eq!(res.status.code(), Some(130), "{}", stderr(&res));
    let res = case.run("set", &["--set", "tiny.seeds=3"]);
    let err = stderr(&res);
    assert_eq!(res.status.code(), Some(1), "{err}");
    assert!(
        err.contains("mbrl::run::changed_experiment")
            && err.contains("`--set tiny.seeds=3` changed it (seeds were 2, now 3): drop or change the `--set` to resume this run"),
        "{err}"
    );
    assert!(!err.contains("restore the file"), "{err}");
}

/// Item 9: the README's command (no `--out`) run again resumes its
/// unfinished run, then says the run is finished and where; `--fresh`
/// starts another; `--help` states the default directory.
#[test]
fn the_default_directory_resumes_then_says_finished() {
    let case = Case::new("default", TINY);
    let res = case.here(&["run", "tiny.exp", "--stop-at", "200"]);
    assert_eq!(res.status.code(), Some(130), "{}", stderr(&res));
    let runs = || {
        files(&case.path("runs"))
            .iter()
            .map(|f| f.split('/').next().unwrap().to_string())
            .collect::<std::collections::BTreeSet<_>>()
    };
    let first = runs();
    assert_eq!(first.len(), 1, "{first:?}");
    let dir = first.iter().next().unwrap().clone();
    let res = case.here(&["run", "tiny.exp"]);
    assert_eq!(res.status.code(), Some(0), "{}", stderr(&res));
    assert!(
        stdout(&res).contains(&format!("-> runs/{dir} (resuming from its checkpoints)")),
        "{}",
        stdout(&res)
    );
    assert_eq!(runs(), first);
    let res = case.here(&["run", "tiny.exp"]);
    assert_eq!(res.status.code(), Some(0), "{}", stderr(&res));
    assert!(
        stdout(&res).contains(&format!(
            "run `tiny` is finished: its results are in `runs/{dir}` (`metrics.csv`, `plots/eval.png`); `--fresh` runs it again into a new directory"
        )),
        "{}",
        stdout(&res)
    );
    assert_eq!(runs(), first);
    let res = case.here(&["run", "tiny.exp", "--fresh", "--stop-at", "100"]);
    assert_eq!(res.status.code(), Some(130), "{}", stderr(&res));
    assert!(runs().contains(&format!("{dir}-2")), "{:?}", runs());
    // The unfinished fresh run is the one the command resumes now.
    let res = case.here(&["run", "tiny.exp"]);
    assert_eq!(res.status.code(), Some(0), "{}", stderr(&res));
    assert!(
        stdout(&res).contains(&format!("-> runs/{dir}-2 (resuming")),
        "{}",
        stdout(&res)
    );
    let help = stdout(&mbrl(&["run", "--help"]));
    let flat = help.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(
        flat.contains("Default `runs/EXPERIMENT-HASH`") && flat.contains("--fresh"),
        "{help}"
    );
}

/// Item 10: the first progress line, before learning starts, gives no ETA
/// from the cheap warm-up; the ETA after it comes from the steps since
/// learning started.
#[test]
fn no_eta_from_the_warm_up() {
    let case = Case::new("progress", TINY);
    let res = case.run("run", &["--stop-at", "200", "--threads", "2"]);
    assert_eq!(res.status.code(), Some(130), "{}", stderr(&res));
    let text = stdout(&res);
    let lines: Vec<&str> = text.lines().filter(|l| l.contains(" step ")).collect();
    assert_eq!(lines.len(), 2, "{text}");
    assert!(
        lines[0].contains("step 100/400: eval")
            && lines[0].contains("steps/s before learning starts at step 100; no ETA yet)"),
        "{text}"
    );
    assert!(lines[1].contains("steps/s, ETA "), "{text}");
}

/// Item 10: evaluations some seeds reached before a stop are printed.
#[test]
fn evaluations_before_a_stop_are_printed() {
    let case = Case::new("stopped", TINY);
    let res = case.run("run", &["--stop-at", "200", "--threads", "2"]);
    assert_eq!(res.status.code(), Some(130), "{}", stderr(&res));

    // Seed 1 starts again (its checkpoint damaged) and stops at step 200;
    // seed 0, resumed at 200, runs on to 400: evaluations one seed reached.
    let ckpt = case.path("run/checkpoints/cell-0/seed-1.bin");
    let mut bytes = std::fs::read(&ckpt).unwrap();
    bytes.truncate(bytes.len() - 100);
    std::fs::write(&ckpt, bytes).unwrap();
    let res = case.run("run", &["--recompute-damaged", "--stop-at", "150"]);
    assert_eq!(res.status.code(), Some(130), "{}", stderr(&res));
    let text = stdout(&res);
    for step in [100, 200, 300, 400] {
        assert!(
            text.lines()
                .any(|l| l.contains(&format!("step {step}/400: eval"))
                    && l.contains("(1 of 2 seeds, stopped before the others reached it)")),
            "step {step}: {text}"
        );
    }
}

/// Item 10: `--set` (run, graph, eval), `run`'s `FILE` and `explain`'s
/// `CODE` are described in `--help`.
#[test]
fn help_describes_every_argument() {
    let help = |args: &[&str]| {
        let out = mbrl(args);
        assert!(out.status.success());
        stdout(&out)
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
    };
    for cmd in ["run", "graph", "eval"] {
        assert!(
            help(&[cmd, "--help"]).contains("--set <PATH=VALUE> Override a field"),
            "{cmd}"
        );
    }
    assert!(help(&["run", "--help"]).contains("<FILE> The experiment file"));
    assert!(help(&["explain", "--help"]).contains("<CODE> A code in full"));
}
