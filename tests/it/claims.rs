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
