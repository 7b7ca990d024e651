//! Locating the `cadre` binary the tests run, and warning when it is older
//! than the sources.

use std::path::{Path, PathBuf};

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The `cadre` binary: `$CARGO_TARGET_DIR/debug/cadre`, else
/// `<workspace>/target/debug/cadre`, else next to this test executable's
/// target directory. Panics when none exists.
pub fn cadre_bin() -> PathBuf {
    let mut candidates = Vec::new();
    if let Some(dir) = std::env::var_os("CARGO_TARGET_DIR") {
        let dir = PathBuf::from(dir);
        let dir = if dir.is_absolute() {
            dir
        } else {
            workspace_root().join(dir)
        };
        candidates.push(dir.join("debug").join("cadre"));
    }
    candidates.push(workspace_root().join("target").join("debug").join("cadre"));
    // target/debug/deps/<test exe> -> target/debug/cadre
    if let Ok(exe) = std::env::current_exe()
        && let Some(profile_dir) = exe.parent().and_then(Path::parent)
    {
        candidates.push(profile_dir.join("cadre"));
    }
    let Some(found) = candidates.iter().find(|c| c.is_file()) else {
        panic!(
            "the cadre binary was not found (looked at {candidates:?}): run `cargo build -p cadre-cli` first"
        )
    };
    static WARNED: std::sync::Once = std::sync::Once::new();
    WARNED.call_once(|| warn_if_stale(found));
    found.clone()
}

/// Says so (in the test's captured output) when a source file of the
/// workspace is newer than the binary: the tests would exercise old code.
fn warn_if_stale(binary: &Path) {
    fn newest(dir: &Path, newest_seen: &mut Option<(std::time::SystemTime, PathBuf)>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let Ok(meta) = entry.metadata() else { continue };
            if meta.is_dir() {
                newest(&path, newest_seen);
            } else if path
                .extension()
                .is_some_and(|e| e == "rs" || e == "toml" || e == "sql")
                && let Ok(modified) = meta.modified()
                && newest_seen.as_ref().is_none_or(|(t, _)| modified > *t)
            {
                *newest_seen = Some((modified, path));
            }
        }
    }
    let Ok(built) = std::fs::metadata(binary).and_then(|m| m.modified()) else {
        return;
    };
    let mut newest_seen = None;
    for dir in ["crates", "config", "migrations"] {
        newest(&workspace_root().join(dir), &mut newest_seen);
    }
    if let Some((modified, path)) = newest_seen
        && modified > built
    {
        eprintln!(
            "warning: {} is older than {}; rebuild it with `cargo build -p cadre-cli` or these tests run old code",
            binary.display(),
            path.display()
        );
    }
}
