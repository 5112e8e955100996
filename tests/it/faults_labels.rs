//! Faults of issue 22, round two (labels, merge and messages): `--set`
//! values in every label, a part whose checkpoints were deleted, a killed
//! merge, messages that named the wrong thing (the plot's non-finite count,
//! invisible characters, an underflowing number, a concurrent merge, a file
//! that is not UTF-8), a README that names no file outside the repository,
//! and a test command that stops the Slurm cluster it started.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::cli::{mbrl, stdout, temp_dir};
use super::faults::{stderr, TINY};

/// A directory with `tiny.exp` (or another text) in it.
fn case(name: &str, text: &str) -> (PathBuf, String) {
    let dir = temp_dir(name);
    let file = dir.join("tiny.exp");
    std::fs::write(&file, text).unwrap();
    let file = file.to_str().unwrap().to_string();
    (dir, file)
}

fn run(file: &str, out: &Path, extra: &[&str]) -> std::process::Output {
    let mut args = vec!["run", file, "--out", out.to_str().unwrap()];
    args.extend(extra);
    mbrl(&args)
}

/// Both parts of TINY cut in two, finished, in `dir/p0` and `dir/p1`.
fn two_parts(dir: &Path, file: &str) -> [PathBuf; 2] {
    [0, 1].map(|i| {
        let part = dir.join(format!("p{i}"));
        let out = run(file, &part, &["--shard", &format!("{i}/2")]);
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        part
    })
}

fn merge(parts: &[PathBuf], out: &Path) -> std::process::Output {
    let mut args = vec!["merge"];
    args.extend(parts.iter().map(|p| p.to_str().unwrap()));
    args.extend(["--out", out.to_str().unwrap()]);
    mbrl(&args)
}

/// `--set agent.lr=1e30` is what runs, and what every label says: the
/// progress, the summary, the manifest's coordinates and the plot's legend.
/// The run's losses are all non-finite and its evaluations are not:
/// `mbrl plot` leaves out nothing it would have drawn, and says nothing.
#[test]
fn set_overrides_are_in_the_labels_and_plot_counts_what_it_left_out() {
    let (dir, file) = case("labels-set", TINY);
    let out = dir.join("run");
    let res = run(&file, &out, &["--set", "agent.lr=1e30"]);
    let (text, err) = (stdout(&res), stderr(&res));
    assert_eq!(res.status.code(), Some(0), "{err}");
    let all = format!("{text}\n{err}");
    assert!(
        !all.contains("lr: 1e-4"),
        "a label shows the file's lr:\n{all}"
    );
    let label = "agent=er { lr: 1e30, batch: 16, steps: 400 steps,";
    assert!(
        text.contains(&format!("cell 0 [env=panflute(pipes: 3) {label}")),
        "{text}"
    );
    let manifest = std::fs::read_to_string(out.join("manifest.ron")).unwrap();
    assert!(
        manifest.contains("\"er { lr: 1e30, batch: 16,"),
        "{manifest}"
    );
    assert!(!manifest.contains("lr: 1e-4"), "{manifest}");
    let svg = std::fs::read_to_string(out.join("plots/eval.svg")).unwrap();
    assert!(
        svg.contains("lr: 1e30") && !svg.contains("lr: 1e-4"),
        "the legend"
    );

    let metrics = std::fs::read_to_string(out.join("metrics.csv")).unwrap();
    let bad = |metric: &str| {
        metrics
            .lines()
            .filter(|l| l.split(',').nth(3) == Some(metric))
            .filter(|l| {
                !l.rsplit(',')
                    .next()
                    .unwrap()
                    .parse::<f64>()
                    .unwrap()
                    .is_finite()
            })
            .count()
    };
    assert!(bad("q_loss") > 0, "the losses overflow:\n{metrics}");
    assert_eq!(bad("eval"), 0, "{metrics}");
    let plot = mbrl(&["plot", out.to_str().unwrap()]);
    assert_eq!(plot.status.code(), Some(0), "{}", stderr(&plot));
    assert!(!stderr(&plot).contains("non-finite"), "{}", stderr(&plot));
    // A `vary agent.FIELD` that `--set` replaces shows the value set.
    let varied = TINY.replace("  seeds: 2\n", "  seeds: 2\n  vary agent.batch: [8, 16]\n");
    let (_, file) = case("labels-vary", &varied);
    let res = mbrl(&[
        "check",
        &file,
        "--set",
        "agent.batch=4",
        "--set",
        "agent.gamma=0.9",
    ]);
    assert_eq!(res.status.code(), Some(0), "{}", stderr(&res));
    let out = dir.join("varied");
    let res = run(
        &file,
        &out,
        &["--set", "agent.batch=4", "--set", "agent.gamma=0.9"],
    );
    assert_eq!(res.status.code(), Some(0), "{}", stderr(&res));
    let text = stdout(&res);
    assert!(
        text.contains(
            "cell 1 [agent.batch=4 env=panflute(pipes: 3) agent=er { lr: 1e-4, batch: 4,"
        ) && text.contains("gamma: 0.9 }]"),
        "{text}"
    );
}

/// A part whose checkpoints were deleted is refused with the files named,
/// and nothing is written.
#[test]
fn merge_refuses_a_part_whose_checkpoints_were_deleted() {
    let (dir, file) = case("labels-lost", TINY);
    let parts = two_parts(&dir, &file);
    let lost = parts[1].join("checkpoints/cell-0/seed-1.bin");
    std::fs::remove_file(&lost).unwrap();
    let out = dir.join("merged");
    let res = merge(&parts, &out);
    let err = stderr(&res);
    assert_eq!(res.status.code(), Some(2), "{err}");
    assert!(err.contains("mbrl::merge::missing_checkpoint"), "{err}");
    let msg = format!(
        "`{}` lacks 1 of the checkpoints its manifest lists: checkpoints/cell-0/seed-1.bin",
        parts[1].display()
    );
    assert!(err.contains(&msg), "{err}");
    assert!(!out.join("manifest.ron").exists());
}

/// A merge killed halfway leaves a directory the next merge resumes, and
/// says so; the result is the one an uninterrupted merge writes.
#[test]
fn a_killed_merge_is_resumed_by_the_next() {
    let (dir, file) = case("labels-killed", TINY);
    let parts = two_parts(&dir, &file);
    let clean = dir.join("clean");
    assert_eq!(merge(&parts, &clean).status.code(), Some(0));
    let out = dir.join("merged");
    // Kill a merge as soon as it has begun writing, until one is caught
    // halfway (before its manifest).
    let mut caught = false;
    for _ in 0..40 {
        let _ = std::fs::remove_dir_all(&out);
        let mut child = Command::new(crate::bin())
            .args([
                "merge",
                parts[0].to_str().unwrap(),
                parts[1].to_str().unwrap(),
            ])
            .args(["--out", out.to_str().unwrap()])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        while !out.join("checkpoints").exists() {
            if child.try_wait().unwrap().is_some() {
                break;
            }
        }
        let _ = child.kill();
        let _ = child.wait();
        if out.join("checkpoints").exists() && !out.join("manifest.ron").exists() {
            caught = true;
            break;
        }
    }
    assert!(caught, "no merge was caught halfway in 40 tries");
    let res = merge(&parts, &out);
    let text = stdout(&res);
    assert_eq!(res.status.code(), Some(0), "{}", stderr(&res));
    assert!(
        text.contains(&format!(
            "resuming the merge into {} that was stopped halfway",
            out.display()
        )),
        "{text}"
    );
    for name in [
        "metrics.csv",
        "metrics.sum",
        "checkpoints/cell-0/seed-0.bin",
    ] {
        assert_eq!(
            std::fs::read(clean.join(name)).unwrap(),
            std::fs::read(out.join(name)).unwrap(),
            "{name}"
        );
    }
    assert!(!out.join("merging").exists());
}

/// A merge that loses the race for the parts to another merge is told so,
/// not that a part is still running. (The other merge is stood in for by
/// this process holding a finished part's lock, as a merge does.)
#[test]
fn a_concurrent_merge_is_named() {
    let (dir, file) = case("labels-concurrent", TINY);
    let parts = two_parts(&dir, &file);
    let held = mbrl::report::lock::lock(&parts[0]).unwrap();
    let res = merge(&parts, &dir.join("merged"));
    drop(held);
    let err = stderr(&res);
    assert_eq!(res.status.code(), Some(2), "{err}");
    let msg = format!(
        "`{}` is held by another merge (mbrl (pid {}",
        parts[0].display(),
        std::process::id()
    );
    assert!(err.contains(&msg), "{err}");
    assert!(
        err.contains("another `mbrl merge` is reading these parts"),
        "{err}"
    );
    assert!(!err.contains("still running"), "{err}");
}

/// Characters a message cannot show are named; a byte-order mark is
/// accepted; a number that underflows says so; a file that is not UTF-8
/// gets a coded diagnostic with the byte and its offset.
#[test]
fn invisible_characters_underflow_and_bad_encodings_are_named() {
    let dir = temp_dir("labels-bytes");
    let check = |name: &str, bytes: &[u8], extra: &[&str]| {
        let path = dir.join(name);
        std::fs::write(&path, bytes).unwrap();
        let mut args = vec!["check", path.to_str().unwrap()];
        args.extend(extra);
        mbrl(&args)
    };
    let bom = [b"\xef\xbb\xbf".as_slice(), TINY.as_bytes()].concat();
    let res = check("bom.exp", &bom, &[]);
    assert_eq!(res.status.code(), Some(0), "{}", stderr(&res));

    let nul = TINY.replace("seeds: 2", "seeds: 2 \0");
    let res = check("nul.exp", nul.as_bytes(), &[]);
    let err = stderr(&res);
    assert_eq!(res.status.code(), Some(1), "{err}");
    assert!(err.contains("mbrl::syntax::unexpected_token"), "{err}");
    assert!(err.contains("found a NUL byte (U+0000)"), "{err}");
    let bom_inside = TINY.replace("seeds: 2", "seeds: 2 \u{feff}");
    let err = stderr(&check("bom-inside.exp", bom_inside.as_bytes(), &[]));
    assert!(err.contains("found a byte-order mark (U+FEFF)"), "{err}");

    let msg = "number `1e-400` is too small for a 64-bit float: it underflows to 0";
    for (name, text, extra) in [
        (
            "tiny.exp",
            TINY.to_string(),
            vec!["--set", "agent.lr=1e-400"],
        ),
        ("under.exp", TINY.replace("lr: 1e-4", "lr: 1e-400"), vec![]),
    ] {
        let res = check(name, text.as_bytes(), &extra);
        let err = stderr(&res);
        assert_eq!(res.status.code(), Some(1), "{err}");
        assert!(
            err.contains("mbrl::syntax::invalid_number") && err.contains(msg),
            "{err}"
        );
    }

    let mut latin1 = TINY.as_bytes().to_vec();
    let at = TINY.find("tiny").unwrap();
    latin1[at] = 0xe9;
    let res = check("latin1.exp", &latin1, &[]);
    let err = stderr(&res);
    assert_eq!(res.status.code(), Some(1), "{err}");
    assert!(err.contains("mbrl::syntax::invalid_utf8"), "{err}");
    let msg = format!("the file is not UTF-8 text: byte 0xE9 at offset {at} is not valid UTF-8");
    assert!(err.contains(&msg), "{err}");
    assert!(!err.contains("stream did not contain"), "{err}");
}

/// The README and the scripts name no file a user of the repository does
/// not have: no team notes, no `shared/` folder, and every repository path
/// they name (`scripts/x.sh`, `src/y.rs`, ...) exists.
#[test]
fn the_readme_and_scripts_name_no_file_outside_the_repository() {
    let root = crate::root();
    let mut texts = vec![(
        "README.md".to_string(),
        std::fs::read_to_string(root.join("README.md")).unwrap(),
    )];
    for entry in std::fs::read_dir(root.join("scripts")).unwrap() {
        let path = entry.unwrap().path();
        if path.is_file() {
            let name = format!("scripts/{}", path.file_name().unwrap().to_string_lossy());
            texts.push((name, std::fs::read_to_string(&path).unwrap()));
        }
    }
    let mut wrong = Vec::new();
    for (name, text) in &texts {
        for outside in ["notes/", "shared/", "stack.md"] {
            if text.contains(outside) {
                wrong.push(format!("{name} names `{outside}`"));
            }
        }
        // Paths under the repository's own folders, as written in the text.
        for word in text.split(|c: char| c.is_whitespace() || "`'\"(),;:[]".contains(c)) {
            let word = word.trim_end_matches('.');
            let top = [
                "src/",
                "scripts/",
                "tests/",
                "stdlib/",
                "experiments/",
                "grammar/",
                "benches/",
            ];
            let placeholder = word
                .chars()
                .any(|c| c.is_ascii_uppercase() || "<{*$".contains(c));
            if top.iter().any(|t| word.starts_with(t)) && !placeholder && !root.join(word).exists()
            {
                wrong.push(format!(
                    "{name} names `{word}`, which the repository does not have"
                ));
            }
        }
    }
    assert!(wrong.is_empty(), "{wrong:#?}");
}

/// The test command's Slurm block (copied from `scripts/test.sh`, run in a
/// wrapper) starts a cluster with its files outside `/etc`, and when the
/// wrapper exits the daemons it started are gone and their directory with
/// them. Needs root (or sudo) to start daemons; uses its own directory and
/// ports, so a cluster already running here is left alone.
#[test]
#[ignore = "needs root or sudo to start Slurm's daemons (scripts/test.sh runs it where it can)"]
fn the_test_command_stops_the_slurm_cluster_it_started() {
    let root = crate::root();
    let script = std::fs::read_to_string(root.join("scripts/test.sh")).unwrap();
    let start = script
        .find("if cluster=")
        .expect("test.sh starts a cluster");
    let block = &script[start..];
    let end = block.find("\nfi\n").expect("the block ends") + 4;
    let block = &block[..end];
    let dir = temp_dir("labels-slurm");
    let cluster = dir.join("cluster");
    let wrapper = format!(
        "set -euo pipefail\ncd {root}\n{block}\n\
         test -n \"${{MBRL_SLURM_STARTED:-}}\"\n\
         echo \"conf=$SLURM_CONF\"\n\
         sinfo -h -o %T\n\
         for f in {cluster}/*.pid; do echo \"pid=$(cat \"$f\")\"; done\n",
        root = root.display(),
        cluster = cluster.display(),
    );
    let out = Command::new("bash")
        .arg("-c")
        .arg(&wrapper)
        .env("MBRL_SLURM_DIR", &cluster)
        .env("MBRL_SLURM_PORT", "26817")
        .output()
        .unwrap();
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{text}\n{}", stderr(&out));
    assert!(
        text.contains(&format!("conf={}/slurm.conf", cluster.display())),
        "{text}"
    );
    assert!(text.contains("idle") || text.contains("mixed"), "{text}");
    let pids: Vec<u32> = text
        .lines()
        .filter_map(|l| l.strip_prefix("pid="))
        .map(|p| p.trim().parse().unwrap())
        .collect();
    assert_eq!(pids.len(), 3, "munged, slurmctld and slurmd: {text}");
    for pid in pids {
        let alive = || {
            Path::new(&format!("/proc/{pid}")).exists()
                && !std::fs::read_to_string(format!("/proc/{pid}/stat"))
                    .unwrap_or_default()
                    .contains(") Z ")
        };
        assert!(
            !alive(),
            "process {pid} still runs after the wrapper exited"
        );
    }
    assert!(!cluster.exists(), "the cluster's directory was removed");
}

/// A typo in a field a regime sets names the regime where it was written,
/// and a unit error's headline names its field.
#[test]
fn a_regime_typo_and_a_unit_error_name_where_and_what() {
    let (dir, file) = case(
        "regime_typo",
        "use young2022::*\nregime quick = overrides { steps: 1000 steps, lerning_starts: 10 steps }\nexperiment e { seeds: 1, env: flute, agent: er, regime: quick }\n",
    );
    let out = mbrl(&["check", &file]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("regime `quick` sets `lerning_starts`, which `dqn` has no field of"),
        "{err}"
    );
    assert!(err.contains("did you mean `learning_starts`?"), "{err}");
    let units = dir.join("units.exp");
    std::fs::write(
        &units,
        "use young2022::*\nexperiment e { seeds: 1, env: flute, agent: er { steps: 1000 stages } }\n",
    )
    .unwrap();
    let out = mbrl(&["check", units.to_str().unwrap()]);
    let err = stderr(&out);
    assert!(
        err.contains("`steps` expects a count of steps, found stages"),
        "{err}"
    );
}
