//! UI tests: every `tests/ui/**/*.exp` fixture is checked, its expected codes
//! asserted and its rendered diagnostics snapshot-tested.
//!
//! A fixture's first lines declare what it expects:
//! `// expect: mbrl::check::unknown_field` (or `// expect: ok`), and
//! optionally `// set: path=value` overrides and `// pad: N` (N bytes of
//! comment appended, for size limits). Regenerate snapshots with
//! `cargo insta review` (or `INSTA_UPDATE=always cargo test`).

use std::path::{Path, PathBuf};

use mbrl::diagnostics::{render, Code};
use mbrl::resolve::FsLoader;
use mbrl::source::Origin;

struct Header {
    expect: Vec<String>,
    overrides: Vec<String>,
    /// Bytes of comment appended to the fixture (for size limits).
    pad: usize,
}

fn header(text: &str) -> Header {
    let mut header = Header {
        expect: Vec::new(),
        overrides: Vec::new(),
        pad: 0,
    };
    for line in text.lines().take_while(|l| l.starts_with("//")) {
        if let Some(code) = line.strip_prefix("// expect: ") {
            header.expect.push(code.trim().to_string());
        }
        if let Some(ov) = line.strip_prefix("// set: ") {
            header.overrides.push(ov.trim().to_string());
        }
        if let Some(n) = line.strip_prefix("// pad: ") {
            header.pad = n.trim().parse().expect("a byte count");
        }
    }
    header
}

fn relative(path: &Path) -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    path.strip_prefix(root).unwrap_or(path).to_path_buf()
}

#[test]
fn ui_fixtures() {
    insta::glob!("../ui", "**/*.exp", |path| {
        let rel = relative(path);
        // Bytes, as `mbrl check` reads a file (a fixture may hold bytes that are not UTF-8).
        let mut bytes = std::fs::read(path).unwrap();
        let header = header(&String::from_utf8_lossy(&bytes));
        if header.pad > 0 {
            bytes.extend_from_slice(b"//");
            bytes.extend(std::iter::repeat_n(b' ', header.pad));
            bytes.push(b'\n');
        }
        assert!(
            !header.expect.is_empty(),
            "{} declares no `// expect:`",
            rel.display()
        );
        let out = mbrl::check_bytes(
            Origin::Path(rel.clone()),
            bytes,
            &header.overrides,
            &FsLoader,
        );
        let codes: Vec<&str> = out.diags.iter().map(|d| d.code.as_str()).collect();
        for expected in &header.expect {
            match expected.as_str() {
                "ok" => assert!(
                    out.diags.is_empty(),
                    "{}: expected no diagnostics, got {codes:?}",
                    rel.display()
                ),
                code => assert!(
                    codes.contains(&code),
                    "{}: expected {code}, got {codes:?}",
                    rel.display()
                ),
            }
        }
        let rendered = render(&out.diags, &out.sources, 80, false);
        insta::assert_snapshot!(rendered);
    });
}

/// One diagnostic code, one fixture: `tests/ui/<stage>/<name>.exp` expects it.
#[test]
fn every_code_has_a_fixture() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/ui");
    for code in Code::ALL {
        let parts: Vec<&str> = code.as_str().split("::").collect();
        let path = root.join(parts[1]).join(format!("{}.exp", parts[2]));
        let bytes = std::fs::read(&path)
            .unwrap_or_else(|_| panic!("no fixture {} for {code}", path.display()));
        assert!(
            header(&String::from_utf8_lossy(&bytes))
                .expect
                .iter()
                .any(|e| e == code.as_str()),
            "{} does not expect {code}",
            path.display()
        );
    }
}
