//! No input panics: arbitrary bytes and mutated real files end in diagnostics or success.

use proptest::prelude::*;

use mbrl::resolve::FsLoader;
use mbrl::source::Origin;

const REAL: &[&str] = &[
    include_str!("../../experiments/fig4.exp"),
    include_str!("../../experiments/va_slbo.exp"),
    include_str!("../../stdlib/young2022.exp"),
    include_str!("../../stdlib/slbo.exp"),
    include_str!("../../experiments/va_slbo_losses.exp"),
    // Model losses written as expressions, given to a learner (so that every
    // mutation reaches the learner's checks of names, axes and gradients).
    "use slbo::*\nloss mine(horizon: int = 2) = let p = model(s, a); mean(sum_sq(p - s_next, state)) + 0.01 * mean(abs(V(s_next) - V(p)))\nloss roll(horizon: int = 2) = mean(l2((model(step(s, 0), step(a, 0)) - step(s_next, 0)) / diff_std, state)) + mean(huber(step(mask, 1) * sum(dV(s) * s, state), 1))\nexperiment e {\n  env: mbbl_pendulum\n  vary agent: [slbo_l2 { model_loss: mine }, slbo_l2 { model_loss: roll }, slbo_l2 { model_loss: vagram }]\n}\n",
];

const TOKENS: &[&str] = &[
    "{",
    "}",
    "[",
    "]",
    "(",
    ")",
    ":",
    ",",
    "=",
    ".",
    "::",
    "\"",
    "-1",
    "0",
    "1e999",
    "1M",
    "2.5k",
    "steps",
    "episodes",
    "agent",
    "env",
    "vary",
    "experiment",
    "use",
    "er",
    "dqn",
    "true",
    "//",
    "/*",
    "\n",
    " ",
    "lr",
    "x",
    "maze",
    "overrides {}",
    "tuned",
    "seeds: 0",
    "+",
    "-",
    "*",
    "/ 0",
    ">",
    "let q = s;",
    ";",
    "model(s, a)",
    "V(",
    "dV(a)",
    "step(s, 9)",
    "mean(",
    "sum(x, state)",
    "state",
    "horizon",
    "log(",
    "stop_gradient(",
    "mle_loss",
];

fn check(text: String) {
    let out = mbrl::check_source(Origin::Inline("fuzz.exp".into()), text, &[], &FsLoader);
    let rendered = mbrl::diagnostics::render(&out.diags, &out.sources, 80, false);
    assert!(out.diags.is_empty() || !rendered.is_empty());
}

#[derive(Debug, Clone)]
enum Mutation {
    Delete(usize, usize),
    Insert(usize, usize),
    Duplicate(usize, usize),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<usize>(), 0usize..40).prop_map(|(a, n)| Mutation::Delete(a, n)),
        (any::<usize>(), 0..TOKENS.len()).prop_map(|(a, t)| Mutation::Insert(a, t)),
        (any::<usize>(), 0usize..200).prop_map(|(a, n)| Mutation::Duplicate(a, n)),
    ]
}

fn apply(text: &str, m: &Mutation) -> String {
    let clamp = |i: usize| {
        let mut i = i % (text.len() + 1);
        while !text.is_char_boundary(i) {
            i -= 1;
        }
        i
    };
    match *m {
        Mutation::Delete(at, n) => {
            let (a, b) = (clamp(at), clamp(at.saturating_add(n).min(text.len())));
            let (a, b) = (a.min(b), a.max(b));
            format!("{}{}", &text[..a], &text[b..])
        }
        Mutation::Insert(at, t) => {
            let a = clamp(at);
            format!("{}{}{}", &text[..a], TOKENS[t], &text[a..])
        }
        Mutation::Duplicate(at, n) => {
            let (a, b) = (clamp(at), clamp(at.saturating_add(n).min(text.len())));
            let (a, b) = (a.min(b), a.max(b));
            format!("{}{}", &text[..b], &text[a..])
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
        check(String::from_utf8_lossy(&bytes).into_owned());
    }

    #[test]
    fn mutated_real_files_never_panic(file in 0..REAL.len(), muts in proptest::collection::vec(mutation(), 1..4)) {
        let mut text = REAL[file].to_string();
        for m in &muts {
            text = apply(&text, m);
        }
        check(text);
    }
}
