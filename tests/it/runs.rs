//! Runs through the library: a run directory opened, a part of an
//! experiment run in pieces (stopped by the driver's stop mechanism and
//! resumed), another part run whole, and the parts merged, all with
//! `mbrl::runs` and no command line, end with what `mbrl run` and
//! `mbrl merge` write.

use std::path::Path;
use std::sync::atomic::AtomicBool;

use mbrl::runs::cells::{Quiet, Ran, Stop};
use mbrl::runs::{self, merge, Compiled, Opening};

use crate::cli::{mbrl, stderr, temp_dir};

/// Two cells, three seeds, the random agent's and the optimum's reference
/// lines in the manifest.
const SMALL: &str = "use young2022::*
experiment small {
  seeds: 3
  env: panflute(pipes: 3)
  vary agent: [
    er { lr: 1e-4, batch: 16, steps: 400 steps, eval_every: 100 steps, save_every: 100 steps, learning_starts: 100 steps, q: mlp { hidden: [16, 16] }, eval: greedy_eval { envs: 4, steps: 20 steps } },
    er { lr: 3e-4, batch: 16, steps: 400 steps, eval_every: 100 steps, save_every: 100 steps, learning_starts: 100 steps, q: mlp { hidden: [16, 16] }, eval: greedy_eval { envs: 4, steps: 20 steps } },
  ]
  report { lines: [random, optimum] }
}
";

/// Opens `out` for part `shard` of the experiment in `file` and runs it
/// with `stop_at`; how it ended, and whether it resumed.
fn run_part(file: &Path, out: &Path, shard: (usize, usize), stop_at: Option<u64>) -> (Ran, bool) {
    let checked = mbrl::check_file(file, &[]).unwrap();
    let exp = &checked.clean().experiments[0];
    let all = runs::compile_cells(exp, 1.0).unwrap();
    let compiled = Compiled::new(exp, all, Some(shard));
    runs::check_memory(exp, &compiled.running(), None).unwrap();
    let opening = Opening {
        out_dir: Some(out),
        threads: Some(1),
        source: file,
        scale: 1.0,
        recompute: false,
        hash: compiled.hash.clone(),
        part: compiled.part.clone(),
    };
    let extra = runs::references::manifest_extra(exp, &compiled.all);
    let run = runs::open(opening, &checked, exp, &compiled.all, extra, &Quiet).unwrap();
    let flag = AtomicBool::new(false);
    let stop = Stop {
        flag: &flag,
        at: stop_at,
    };
    let ran = run.run_cells(exp, &compiled.plans, stop, &Quiet).unwrap();
    (ran, run.resuming)
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap()
}

#[test]
fn library_runs_resumes_and_merges_as_the_cli_does() {
    let dir = temp_dir("runs-lib");
    let file = dir.join("small.exp");
    std::fs::write(&file, SMALL).unwrap();
    let s = |p: &Path| p.to_str().unwrap().to_string();
    let (whole, cli_part) = (dir.join("whole"), dir.join("cli-part-1"));
    let res = mbrl(&["run", &s(&file), "--out", &s(&whole), "--threads", "2"]);
    assert_eq!(res.status.code(), Some(0), "{}", stderr(&res));
    let args = [
        "run",
        &s(&file),
        "--out",
        &s(&cli_part),
        "--shard",
        "1/2",
        "--threads",
        "1",
    ];
    let res = mbrl(&args);
    assert_eq!(res.status.code(), Some(0), "{}", stderr(&res));

    // Part 0 (cell 0's three seeds) in pieces: stopped at step 150, resumed.
    let part0 = dir.join("part-0");
    let mut stops = 0;
    loop {
        let (ran, resuming) = run_part(&file, &part0, (0, 2), Some(150));
        assert_eq!(resuming, stops > 0, "a stopped part resumes");
        match ran {
            Ran::Stopped => stops += 1,
            Ran::Finished => break,
        }
        assert!(stops <= 1, "every stop makes progress");
    }
    assert_eq!(stops, 1, "stopped once, then resumed to the end");
    // Part 1 whole: the directory and manifest `mbrl run --shard 1/2` writes.
    let part1 = dir.join("part-1");
    assert_eq!(
        run_part(&file, &part1, (1, 2), None),
        (Ran::Finished, false)
    );
    for name in ["manifest.ron", "metrics.csv", "metrics.sum"] {
        assert_eq!(
            read(&part1.join(name)),
            read(&cli_part.join(name)),
            "{name}"
        );
    }
    assert!(read(&part1.join("manifest.ron")).contains("\"random\""));

    let (dirs, out) =
        merge::parts_and_out(&[part1.clone(), part0.clone()], Some(&dir.join("merged"))).unwrap();
    let merged = merge::merge_into(&dirs, &out).unwrap();
    assert_eq!((merged.parts, merged.checkpoints), (2, 6));
    let cli_merged = dir.join("cli-merged");
    let res = mbrl(&["merge", &s(&part0), &s(&part1), "--out", &s(&cli_merged)]);
    assert_eq!(res.status.code(), Some(0), "{}", stderr(&res));
    for name in ["metrics.csv", "metrics.sum"] {
        assert_eq!(read(&out.join(name)), read(&whole.join(name)), "{name}");
    }
    for name in ["manifest.ron", "metrics.csv", "metrics.sum"] {
        assert_eq!(
            read(&out.join(name)),
            read(&cli_merged.join(name)),
            "{name}"
        );
    }
    // A part alone is refused with the CLI's code.
    let half = merge::merge_into(std::slice::from_ref(&part0), &dir.join("half")).unwrap_err();
    let code = miette::Diagnostic::code(&half).map(|c| c.to_string());
    assert_eq!(code.as_deref(), Some("mbrl::merge::missing_part"), "{half}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// The quickstart's identity, pinned: what `mbrl run` hashes into every
/// checkpoint and `metrics.sum`. It may change only when what the
/// quickstart computes changes (see `mbrl::runs::identity`); a change that
/// moves it makes unfinished runs refuse to resume, so it is a decision to
/// write down in the commit, not a side effect.
#[test]
fn identity_of_the_quickstart_is_pinned() {
    let file = crate::root().join("experiments/quickstart.exp");
    let checked = mbrl::check_file(&file, &[]).unwrap();
    let exp = &checked.clean().experiments[0];
    let plans = runs::compile_cells(exp, 1.0).unwrap();
    let hash = runs::identity(exp, &plans);
    assert_eq!(hash, "20867a781c0b7a88", "the quickstart's identity moved");
    // Written differently, the same values are the same experiment; another
    // value is another experiment.
    let same = mbrl::check_file(&file, &["agent.temperature=0.1".into()]).unwrap();
    let exp2 = &same.clean().experiments[0];
    assert_eq!(
        runs::identity(exp2, &runs::compile_cells(exp2, 1.0).unwrap()),
        hash
    );
    let other = mbrl::check_file(&file, &["agent.gamma=0.8".into()]).unwrap();
    let exp3 = &other.clean().experiments[0];
    assert_ne!(
        runs::identity(exp3, &runs::compile_cells(exp3, 1.0).unwrap()),
        hash
    );
}
