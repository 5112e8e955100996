//! Sharded runs: `mbrl run --shard I/N` parts merged by `mbrl merge` are the
//! run one machine writes, and `mbrl slurm` runs them as a job array on a
//! real Slurm cluster (the tests that need one run when `MBRL_SLURM=1`;
//! `scripts/test.sh` starts a one-node cluster with `scripts/slurm-cluster.sh`).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use crate::cli::{mbrl, stderr, stdout, temp_dir};

/// Two cells, three seeds: six (cell, seed) units.
const SMALL: &str = "use young2022::*
experiment small {
  seeds: 3
  env: panflute(pipes: 3)
  vary agent: [
    er { lr: 1e-4, batch: 16, steps: 400 steps, eval_every: 100 steps, save_every: 100 steps, learning_starts: 100 steps, q: mlp { hidden: [16, 16] }, eval: greedy_eval { envs: 4, steps: 20 steps } },
    er { lr: 3e-4, batch: 16, steps: 400 steps, eval_every: 100 steps, save_every: 100 steps, learning_starts: 100 steps, q: mlp { hidden: [16, 16] }, eval: greedy_eval { envs: 4, steps: 20 steps } },
  ]
}
";

fn setup(name: &str, text: &str) -> (PathBuf, String) {
    let dir = temp_dir(name);
    let file = dir.join("small.exp");
    std::fs::write(&file, text).unwrap();
    let file = file.to_str().unwrap().to_string();
    (dir, file)
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn ok(out: &Output, what: &str) {
    assert!(
        out.status.success(),
        "{what} failed:\n{}\n{}",
        stdout(out),
        stderr(out)
    );
}

fn refused(out: &Output, code: &str) {
    assert!(!out.status.success(), "expected `{code}`, but it succeeded");
    assert!(
        stderr(out).contains(code),
        "expected `{code}`:\n{}",
        stderr(out)
    );
}

fn run_whole(dir: &Path, file: &str) -> PathBuf {
    let whole = dir.join("whole");
    ok(
        &mbrl(&["run", file, "--out", s(&whole), "--threads", "2"]),
        "the whole run",
    );
    whole
}

fn run_part(dir: &Path, file: &str, i: usize, n: usize, extra: &[&str]) -> (PathBuf, Output) {
    let part = dir.join(format!("part-{i}-of-{n}"));
    let shard = format!("{i}/{n}");
    let mut args = vec![
        "run",
        file,
        "--out",
        s(&part),
        "--shard",
        &shard,
        "--threads",
        "1",
    ];
    args.extend(extra);
    let out = mbrl(&args);
    (part, out)
}

fn same_results(whole: &Path, merged: &Path) {
    for file in ["metrics.csv", "metrics.sum"] {
        assert_eq!(
            std::fs::read_to_string(whole.join(file)).unwrap(),
            std::fs::read_to_string(merged.join(file)).unwrap(),
            "{file} of the merged run differs from the whole run's"
        );
    }
}

/// Parts run apart and merged give the whole run's metrics byte for byte
/// (and its checksum); the merged directory resumes as a finished run.
#[test]
fn merged_parts_are_the_whole_run() {
    let (dir, file) = setup("merge", SMALL);
    let whole = run_whole(&dir, &file);
    let mut parts = Vec::new();
    for i in 0..4 {
        let (part, out) = run_part(&dir, &file, i, 4, &[]);
        ok(&out, "a part");
        assert!(stdout(&out).contains(&format!("part {i} of 4 finished")));
        parts.push(part);
    }
    let merged = dir.join("merged");
    let mut args = vec!["merge"];
    args.extend(parts.iter().rev().map(|p| s(p)));
    args.extend(["--out", s(&merged)]);
    let out = mbrl(&args);
    ok(&out, "merge");
    assert!(stdout(&out).contains("merged 4 parts"), "{}", stdout(&out));
    same_results(&whole, &merged);
    assert!(merged.join("plots/eval.svg").exists());
    for cell in 0..2 {
        for seed in 0..3 {
            let ckpt = merged.join(format!("checkpoints/cell-{cell}/seed-{seed}.bin"));
            assert!(ckpt.exists(), "{} missing", ckpt.display());
        }
    }
    // A finished run resumed changes nothing.
    let out = mbrl(&["run", &file, "--out", s(&merged)]);
    ok(&out, "resuming the merged run");
    same_results(&whole, &merged);
}

/// Every way a set of parts can be wrong is refused with its code, and
/// nothing is written.
#[test]
fn bad_sets_of_parts_are_refused() {
    let (dir, file) = setup("merge-bad", SMALL);
    let parts: Vec<PathBuf> = (0..3)
        .map(|i| {
            let (part, out) = run_part(&dir, &file, i, 3, &[]);
            ok(&out, "a part");
            part
        })
        .collect();
    let out_dir = dir.join("out");
    let merge = |dirs: &[&Path]| {
        let mut args = vec!["merge"];
        args.extend(dirs.iter().map(|d| s(d)));
        args.extend(["--out", s(&out_dir)]);
        mbrl(&args)
    };
    let (p0, p1, p2) = (parts[0].as_path(), parts[1].as_path(), parts[2].as_path());
    refused(&merge(&[p0, p2]), "mbrl::merge::missing_part");
    refused(&merge(&[p0, p1, p1, p2]), "mbrl::merge::overlapping_parts");
    let (other_cut, out) = run_part(&dir, &file, 1, 2, &[]);
    ok(&out, "a part of another cut");
    refused(&merge(&[p0, &other_cut, p2]), "mbrl::merge::foreign_part");
    let other = SMALL.replace("seeds: 3", "seeds: 2");
    let other_file = dir.join("other.exp");
    std::fs::write(&other_file, other).unwrap();
    let (foreign, out) = run_part(&dir.join("other"), s(&other_file), 1, 3, &[]);
    ok(&out, "a part of another experiment");
    refused(&merge(&[p0, &foreign, p2]), "mbrl::merge::foreign_part");
    let whole = run_whole(&dir, &file);
    refused(&merge(&[p0, p1, p2, &whole]), "mbrl::merge::not_a_part");
    // A part stopped halfway (as by a killed job) is not finished.
    let (stopped, out) = run_part(&dir.join("stopped"), &file, 1, 3, &["--stop-at", "200"]);
    assert_eq!(out.status.code(), Some(130), "{}", stderr(&out));
    refused(&merge(&[p0, &stopped, p2]), "mbrl::merge::unfinished_part");
    // A damaged checkpoint.
    let ckpt = std::fs::read_dir(p1.join("checkpoints/cell-0"))
        .or_else(|_| std::fs::read_dir(p1.join("checkpoints/cell-1")))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let mut bytes = std::fs::read(&ckpt).unwrap();
    let at = bytes.len() - 10;
    bytes[at] ^= 0x40;
    std::fs::write(&ckpt, bytes).unwrap();
    let out = merge(&[p0, p1, p2]);
    refused(&out, "mbrl::merge::damaged_part");
    assert!(stderr(&out).contains(ckpt.file_name().unwrap().to_str().unwrap()));
    assert!(
        !out_dir.join("manifest.ron").exists(),
        "a refused merge wrote a manifest"
    );
    assert!(
        !out_dir.join("metrics.csv").exists(),
        "a refused merge wrote metrics"
    );
}

/// A job written for one experiment refuses to run another.
#[test]
fn a_job_refuses_a_changed_experiment() {
    let (dir, file) = setup("expect-hash", SMALL);
    let out = mbrl(&[
        "run",
        &file,
        "--out",
        s(&dir.join("p")),
        "--shard",
        "0/2",
        "--expect-hash",
        "0123456789abcdef",
    ]);
    refused(&out, "mbrl::run::changed_experiment");
    assert!(!dir.join("p/manifest.ron").exists());
}

/// Without `sbatch` the script is still written, and the error says how to
/// submit it; it states the rates table its time request comes from.
#[test]
fn slurm_without_sbatch_writes_the_script() {
    let (dir, file) = setup("no-sbatch", SMALL);
    let job = dir.join("job");
    let out = Command::new(crate::bin())
        .args([
            "slurm",
            &file,
            "--shards",
            "2",
            "--out",
            s(&job),
            "--submit",
        ])
        .env("PATH", dir.join("no-bin"))
        .env("NO_COLOR", "1")
        .env_remove("MBRL_RATES")
        .env("XDG_CONFIG_HOME", dir.join("no-config"))
        .output()
        .unwrap();
    refused(&out, "mbrl::slurm::no_sbatch");
    let script = std::fs::read_to_string(job.join("job.sh")).unwrap();
    assert!(script.contains("#SBATCH --array=0-1"), "{script}");
    assert!(
        script.contains("at the rates of the built-in table (stdlib/rates.ron)")
            && script.contains("the time asked for is 3 x that + 15 min")
            && script.contains("#SBATCH --time=00:1"),
        "{script}"
    );
    assert!(
        script.contains("--shard \"$SLURM_ARRAY_TASK_ID/2\""),
        "{script}"
    );
}

/// The tests that need a Slurm cluster are `#[ignore]`d, so that a run
/// without one reports them as ignored, never as passed; asked to run
/// (`--ignored`), they fail without one.
fn require_slurm() {
    assert!(
        std::env::var("MBRL_SLURM").is_ok_and(|v| v == "1"),
        "this test needs a Slurm cluster: run scripts/slurm-cluster.sh and set MBRL_SLURM=1"
    );
}

fn command(program: &str, args: &[&str]) -> Output {
    Command::new(program)
        .args(args)
        .env("NO_COLOR", "1")
        .output()
        .unwrap_or_else(|e| panic!("cannot run {program}: {e}"))
}

/// On a real cluster: a job array of the parts, waited for and merged,
/// equals the whole run run here.
#[test]
#[ignore = "needs a Slurm cluster: MBRL_SLURM=1 after scripts/slurm-cluster.sh (scripts/test.sh runs it with one)"]
fn slurm_job_array_equals_the_whole_run() {
    require_slurm();
    let (dir, file) = setup("slurm", SMALL);
    let whole = run_whole(&dir, &file);
    let job = dir.join("job");
    let out = mbrl(&[
        "slurm",
        &file,
        "--shards",
        "3",
        "--cpus-per-task",
        "1",
        "--out",
        s(&job),
        "--wait",
    ]);
    ok(&out, "mbrl slurm --wait");
    assert!(stdout(&out).contains("array tasks 0-2"), "{}", stdout(&out));
    same_results(&whole, &job.join("merged"));
    // Nothing is left to submit.
    let out = mbrl(&[
        "slurm",
        &file,
        "--shards",
        "3",
        "--out",
        s(&job),
        "--submit",
    ]);
    ok(&out, "resubmitting a finished job");
    assert!(
        stdout(&out).contains("every part has finished"),
        "{}",
        stdout(&out)
    );
}

/// On a real cluster: a task killed mid-run (`scancel -s KILL` after its
/// first checkpoint) is resubmitted alone, resumes from its checkpoints,
/// and the merged run equals the whole run.
#[test]
#[ignore = "needs a Slurm cluster: MBRL_SLURM=1 after scripts/slurm-cluster.sh (scripts/test.sh runs it with one)"]
fn a_killed_slurm_task_resumes_and_merges_into_the_whole_run() {
    require_slurm();
    // Long enough per seed (seconds) to be killed between checkpoints.
    let text = SMALL
        .replace("steps: 400 steps", "steps: 6000 steps")
        .replace("hidden: [16, 16]", "hidden: [64, 64]")
        .replace("seeds: 3", "seeds: 2");
    let (dir, file) = setup("slurm-kill", &text);
    let job = dir.join("job");
    let slurm = |mode: &str| {
        mbrl(&[
            "slurm",
            &file,
            "--shards",
            "2",
            "--cpus-per-task",
            "1",
            "--out",
            s(&job),
            mode,
        ])
    };
    let out = slurm("--submit");
    ok(&out, "mbrl slurm --submit");
    let id = stdout(&out)
        .lines()
        .find_map(|l| l.strip_prefix("submitted job "))
        .and_then(|l| l.split_whitespace().next())
        .expect("a job id")
        .to_string();
    // Part 1 runs cell 1; kill it once it has a checkpoint.
    let ckpts = job.join("part-1/checkpoints/cell-1");
    let start = Instant::now();
    while !std::fs::read_dir(&ckpts).is_ok_and(|mut d| d.next().is_some()) {
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "part 1 never checkpointed"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    ok(
        &command("scancel", &["-s", "KILL", &format!("{id}_1")]),
        "scancel",
    );
    // Wait for the job to leave the queue.
    let start = Instant::now();
    loop {
        let q = command("squeue", &["-h", "-j", &id]);
        if stdout(&q).trim().is_empty() {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(300),
            "the job never ended"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let manifest = std::fs::read_to_string(job.join("part-1/manifest.ron")).unwrap();
    assert!(
        manifest.contains("finished: false"),
        "part 1 finished before the kill; make it longer"
    );
    let out = mbrl(&["merge", s(&job)]);
    refused(&out, "mbrl::merge::unfinished_part");
    // Resubmitted: only part 1, which resumes.
    let out = slurm("--wait");
    ok(&out, "resubmitting");
    assert!(stdout(&out).contains("array tasks 1)"), "{}", stdout(&out));
    let log = std::fs::read_to_string(job.join("logs/part-1.log")).unwrap();
    assert!(log.contains("resuming"), "part 1 did not resume:\n{log}");
    let whole = run_whole(&dir, &file);
    same_results(&whole, &job.join("merged"));
}

/// SLBO and the random agent shard and merge like the DQN agents.
#[test]
fn slbo_and_random_parts_merge_into_the_whole_run() {
    let text = "use slbo::*
agent toy_mle = slbo_mle {
    stages: 2 stages, steps_per_stage: 200 steps, iters: 1 iterations
    model_iters: 3 updates, policy_iters: 2 updates, value_refit_every: 2 updates
    model: dynamics { hidden: [16] }
    planner: virtual_rollouts { envs: 2, length: 200 steps }
    eval: policy_eval { envs: 2, steps: 200 steps }
}
agent toy_random = random { eval: policy_eval { envs: 2, steps: 200 steps }, steps: 400 steps, eval_every: 200 steps }
experiment toy {
  seeds: 3
  env: mbbl_pendulum
  vary agent: [toy_mle, toy_random]
}
";
    let (dir, file) = setup("merge-slbo", text);
    let whole = run_whole(&dir, &file);
    let parts: Vec<PathBuf> = (0..2)
        .map(|i| {
            let (part, out) = run_part(&dir, &file, i, 2, &[]);
            ok(&out, "a part");
            part
        })
        .collect();
    let merged = dir.join("merged");
    ok(
        &mbrl(&["merge", s(&parts[0]), s(&parts[1]), "--out", s(&merged)]),
        "merge",
    );
    same_results(&whole, &merged);
}
