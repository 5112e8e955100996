//! Claims (`expect`) as a user meets them: the quickstart's verdict at the
//! end of its run, reproduced byte for byte by `mbrl report`, the files it
//! writes, and `--strict`.

use crate::cli::{mbrl, stderr, stdout, temp_dir};

/// The claims block of a command's output: from `claims of` to the table's end.
fn claims_block(text: &str) -> String {
    let start = text.find("claims of `").expect("a claims table");
    text[start..]
        .lines()
        .take_while(|l| !l.starts_with("report: "))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The quickstart (at a tenth of its budget) ends with its claim's verdict,
/// and `mbrl report` on its run directory prints the same table and writes
/// `claims.csv` and `report.md`.
#[test]
fn the_quickstart_prints_its_verdict_and_report_reproduces_it() {
    let dir = temp_dir("claims-quickstart");
    let out_dir = dir.join("run");
    let dir_arg = out_dir.to_str().unwrap();
    let run = mbrl(&[
        "run",
        "experiments/quickstart.exp",
        "--scale",
        "0.1",
        "--threads",
        "2",
        "--out",
        dir_arg,
    ]);
    assert_eq!(
        run.status.code(),
        Some(0),
        "{}{}",
        stdout(&run),
        stderr(&run)
    );
    let ran = claims_block(&stdout(&run));
    assert!(
        ran.contains("`perfect_model > er by final(10%) at 95%`"),
        "{ran}"
    );
    assert!(
        ["holds", "fails", "inconclusive"]
            .iter()
            .any(|v| ran.contains(&format!("**{v}**"))),
        "{ran}"
    );
    let report = mbrl(&["report", dir_arg]);
    assert_eq!(report.status.code(), Some(0), "{}", stderr(&report));
    assert_eq!(claims_block(&stdout(&report)), ran);
    let csv = std::fs::read_to_string(out_dir.join("claims.csv")).unwrap();
    assert!(csv.starts_with("claim,verdict,"), "{csv}");
    assert_eq!(csv.lines().count(), 2, "{csv}");
    let md = std::fs::read_to_string(out_dir.join("report.md")).unwrap();
    assert!(md.contains("## Claims") && md.contains("## Cells"), "{md}");
    // PanFlute has both reference levels: the aggregates, as a table and plotted.
    assert!(
        md.contains("## Aggregates") && md.contains("| perfect_model | 1 |"),
        "{md}"
    );
    for f in ["aggregates.png", "aggregates.svg", "eval.png", "eval.svg"] {
        assert!(out_dir.join("plots").join(f).is_file(), "no plots/{f}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// A claim that cannot hold (a difference of reward rates above 1) fails,
/// and `--strict` makes that exit status 1; without it the run succeeds.
#[test]
fn strict_makes_a_failed_claim_a_failed_command() {
    let dir = temp_dir("claims-strict");
    let file = dir.join("strict.exp");
    std::fs::write(
        &file,
        "use young2022::*\n\
         regime tiny = overrides { steps: 400 steps, learning_starts: 200 steps, eval_every: 200 steps, batch: 32, \
         eval: greedy_eval { envs: 2, steps: 20 steps, metric: auto } }\n\
         experiment strict {\n  seeds: 3\n  env: flute\n  agent: er\n  vary agent.temperature: [0.1, 0.2]\n  \
         regime: tiny\n  expect 0.1 > 0.2 margin 1 by auc\n}\n",
    )
    .unwrap();
    let out_dir = dir.join("run");
    let (file_arg, dir_arg) = (file.to_str().unwrap(), out_dir.to_str().unwrap());
    let run = mbrl(&["run", file_arg, "--threads", "1", "--out", dir_arg]);
    assert_eq!(
        run.status.code(),
        Some(0),
        "{}{}",
        stdout(&run),
        stderr(&run)
    );
    assert!(stdout(&run).contains("**fails**"), "{}", stdout(&run));
    let strict = mbrl(&["report", dir_arg, "--strict"]);
    assert_eq!(strict.status.code(), Some(1), "{}", stderr(&strict));
    assert!(
        stderr(&strict).contains("1 claim(s) failed"),
        "{}",
        stderr(&strict)
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// `mbrl report` on a run that stopped part-way (as one being written looks
/// on disk): it says the run is unfinished, counts only seeds whose window
/// is complete (none yet: the claim needs 2 seeds a side), and leaves the
/// run resumable; once resumed to the end, `report` prints the verdict the
/// run printed.
#[test]
fn report_on_an_unfinished_run_uses_the_rows_so_far() {
    let dir = temp_dir("claims-unfinished");
    let file = dir.join("partial.exp");
    std::fs::write(
        &file,
        "use young2022::*\n\
         regime tiny = overrides { steps: 400 steps, learning_starts: 200 steps, eval_every: 100 steps, batch: 32, \
         eval: greedy_eval { envs: 2, steps: 20 steps, metric: auto } }\n\
         experiment partial {\n  seeds: 3\n  env: flute\n  agent: er\n  vary agent.temperature: [0.1, 0.2]\n  \
         regime: tiny\n  expect 0.1 >= 0.2 margin 1 by final(50%)\n}\n",
    )
    .unwrap();
    let out_dir = dir.join("run");
    let (file_arg, dir_arg) = (file.to_str().unwrap(), out_dir.to_str().unwrap());
    let run = |extra: &[&str]| {
        let mut args = vec!["run", file_arg, "--threads", "1", "--out", dir_arg];
        args.extend_from_slice(extra);
        mbrl(&args)
    };
    let stopped = run(&["--stop-at", "250"]);
    assert_eq!(stopped.status.code(), Some(130), "{}", stderr(&stopped));
    let report = mbrl(&["report", dir_arg]);
    assert_eq!(report.status.code(), Some(0), "{}", stderr(&report));
    let partial = claims_block(&stdout(&report));
    assert!(
        partial.contains("(unfinished: the seeds whose window is complete so far)"),
        "{partial}"
    );
    assert!(
        partial.contains("**inconclusive**") && partial.contains("needs 2 seeds a side"),
        "{partial}"
    );
    assert!(partial.contains("| 0, 0 of 3 |"), "{partial}");
    let md = std::fs::read_to_string(out_dir.join("report.md")).unwrap();
    assert!(md.contains("the run is unfinished"), "{md}");

    let resumed = run(&[]);
    assert_eq!(
        resumed.status.code(),
        Some(0),
        "{}{}",
        stdout(&resumed),
        stderr(&resumed)
    );
    let finished = claims_block(&stdout(&resumed));
    assert!(
        !finished.contains("unfinished") && finished.contains("| 3, 3 of 3 |"),
        "{finished}"
    );
    let report = mbrl(&["report", dir_arg]);
    assert_eq!(claims_block(&stdout(&report)), finished);
    let _ = std::fs::remove_dir_all(&dir);
}

/// A claim written after a run finished: the same `mbrl run` finds the
/// finished run (claims are not part of its identity), checks the file's
/// claims on its results without training, records them for `mbrl report`,
/// and says so.
#[test]
fn a_claim_added_after_the_run_is_checked_on_its_results() {
    let dir = temp_dir("claims-added");
    let file = dir.join("added.exp");
    let text = "use young2022::*\n\
         regime tiny = overrides { steps: 400 steps, learning_starts: 200 steps, eval_every: 200 steps, batch: 32, \
         eval: greedy_eval { envs: 2, steps: 20 steps, metric: auto } }\n\
         experiment added {\n  seeds: 2\n  env: flute\n  agent: er\n  vary agent.temperature: [0.1, 0.2]\n  \
         regime: tiny\n  expect 0.1 > 0.2 margin 1 by auc\n}\n";
    std::fs::write(&file, text).unwrap();
    let here = |args: &[&str]| {
        std::process::Command::new(crate::bin())
            .args(args)
            .current_dir(&dir)
            .env("NO_COLOR", "1")
            .output()
            .expect("run mbrl")
    };
    let first = here(&["run", "added.exp", "--threads", "1"]);
    assert_eq!(first.status.code(), Some(0), "{}", stderr(&first));
    let ran = claims_block(&stdout(&first));
    assert!(!ran.contains("by steps_to"), "{ran}");
    std::fs::write(
        &file,
        text.replace("by auc\n", "by auc\n  expect 0.1 <= 0.2 by steps_to(0.5)\n"),
    )
    .unwrap();
    let again = here(&["run", "added.exp", "--threads", "1"]);
    assert_eq!(again.status.code(), Some(0), "{}", stderr(&again));
    let out = stdout(&again);
    assert!(
        out.contains("is finished") && out.contains("its claims changed since it ran"),
        "{out}"
    );
    assert!(!out.contains("-> "), "nothing is trained again: {out}");
    let both = claims_block(&out);
    assert!(
        both.contains("`0.1 > 0.2 margin 1 by auc`")
            && both.contains("`0.1 <= 0.2 by steps_to(0.5)`"),
        "{both}"
    );
    let run_dir = std::fs::read_dir(dir.join("runs"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let report = mbrl(&["report", run_dir.to_str().unwrap()]);
    assert_eq!(claims_block(&stdout(&report)), both);
    // Unchanged claims: the verdicts again, nothing restated.
    let third = here(&["run", "added.exp", "--threads", "1"]);
    assert!(
        !stdout(&third).contains("changed since"),
        "{}",
        stdout(&third)
    );
    assert_eq!(claims_block(&stdout(&third)), both);
    let _ = std::fs::remove_dir_all(&dir);
}
