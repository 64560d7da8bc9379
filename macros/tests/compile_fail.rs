//! Misuse of `#[main]`/`#[test]` fails to compile with a readable message, spanned on the
//! offending tokens.
//!
//! A small harness of our own rather than `trybuild` (which would add `serde`, `toml`,
//! `glob` and a cargo project per run): one `rustc` invocation compiles `ui/misuse.rs`,
//! where every function is one misuse, against this crate's proc-macro library, and the
//! normalized diagnostics are compared with `ui/misuse.stderr`. `WEFT_BLESS=1` rewrites
//! the expected file.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The proc-macro library cargo built for this test (the newest `libweft_macros-*.so`
/// next to the test binary).
fn proc_macro_lib() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let deps = exe.parent().unwrap();
    let suffix = std::env::consts::DLL_SUFFIX;
    let prefix = format!("{}weft_macros-", std::env::consts::DLL_PREFIX);
    std::fs::read_dir(deps)
        .unwrap()
        .filter_map(Result::ok)
        .filter(|e| {
            let name = e.file_name();
            let name = name.to_string_lossy();
            name.starts_with(&prefix) && name.ends_with(suffix)
        })
        .max_by_key(|e| e.metadata().and_then(|m| m.modified()).ok())
        .map(|e| e.path())
        .unwrap_or_else(|| panic!("no {prefix}*{suffix} in {}", deps.display()))
}

/// Keeps the lines a reader checks: errors, their `-->` locations (file name only) and the
/// source lines with their carets; drops rustc's summary lines.
fn normalize(stderr: &str, fixture: &Path) -> String {
    let fixture = fixture.to_string_lossy();
    stderr
        .lines()
        .filter(|l| !l.starts_with("error: aborting") && !l.contains("warning"))
        .map(|l| {
            l.replace(&*fixture, "$DIR/misuse.rs")
                .trim_end()
                .to_string()
        })
        .collect::<Vec<_>>()
        .join("\n")
        .trim()
        .to_string()
        + "\n"
}

#[test]
fn misuse_fails_with_readable_messages() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/ui");
    let fixture = dir.join("misuse.rs");
    let out_dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("compile_fail");
    std::fs::create_dir_all(&out_dir).unwrap();
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let out = Command::new(rustc)
        .args([
            "--edition",
            "2021",
            "--crate-type",
            "lib",
            "--emit",
            "metadata",
        ])
        .args([
            "--crate-name",
            "misuse",
            "--color",
            "never",
            "-A",
            "warnings",
        ])
        .arg("--extern")
        .arg(format!("weft_macros={}", proc_macro_lib().display()))
        .arg("--out-dir")
        .arg(&out_dir)
        .arg(&fixture)
        .output()
        .expect("run rustc");
    assert!(!out.status.success(), "the misuse fixture compiled");
    let got = normalize(&String::from_utf8_lossy(&out.stderr), &fixture);
    let expected_path = dir.join("misuse.stderr");
    if std::env::var_os("WEFT_BLESS").is_some() {
        std::fs::write(&expected_path, &got).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(&expected_path).unwrap_or_default();
    assert_eq!(
        got, expected,
        "diagnostics differ from tests/ui/misuse.stderr (rerun with WEFT_BLESS=1 to accept)"
    );
}
