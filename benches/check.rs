//! `mbrl check experiments/fig4.exp` end to end in memory: parse, resolve
//! (with the embedded stdlib), check all 30 cells. Target: well under 50 ms.

use criterion::{criterion_group, criterion_main, Criterion};

use mbrl::resolve::FsLoader;
use mbrl::source::Origin;

fn check_fig4(c: &mut Criterion) {
    let text = include_str!("../experiments/fig4.exp").to_string();
    c.bench_function("check fig4.exp", |b| {
        b.iter(|| {
            let out = mbrl::check_source(
                Origin::Inline("fig4.exp".into()),
                text.clone(),
                &[],
                &FsLoader,
            );
            assert!(!out.has_errors());
            out
        })
    });
}

criterion_group!(benches, check_fig4);
criterion_main!(benches);
