//! Files on disk: writing and reading workspace files, and snapshots of a
//! directory tree to compare before and after.

use std::collections::BTreeMap;
use std::path::Path;

/// Writes `content` to `root/rel`, creating parent directories.
pub fn write_file(root: &Path, rel: &str, content: impl AsRef<[u8]>) {
    let target = root.join(rel);
    if let Some(parent) = target.parent() {
        std::fs::create_dir_all(parent)
            .unwrap_or_else(|e| panic!("creating {}: {e}", parent.display()));
    }
    std::fs::write(&target, content)
        .unwrap_or_else(|e| panic!("writing {}: {e}", target.display()));
}

/// Reads `root/rel` as text.
pub fn read_file(root: &Path, rel: &str) -> String {
    let target = root.join(rel);
    std::fs::read_to_string(&target).unwrap_or_else(|e| panic!("reading {}: {e}", target.display()))
}

/// Every regular file under `dir` (relative path -> bytes), symlinks not followed.
pub fn snapshot(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    fn walk(base: &Path, dir: &Path, out: &mut BTreeMap<String, Vec<u8>>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let Ok(meta) = std::fs::symlink_metadata(&path) else {
                continue;
            };
            let rel = path
                .strip_prefix(base)
                .map(|p| p.to_string_lossy().into_owned())
                .unwrap_or_default();
            if meta.is_dir() {
                walk(base, &path, out);
            } else if meta.file_type().is_symlink() {
                let target = std::fs::read_link(&path)
                    .map(|t| t.to_string_lossy().into_owned())
                    .unwrap_or_default();
                out.insert(rel, format!("symlink -> {target}").into_bytes());
            } else {
                out.insert(rel, std::fs::read(&path).unwrap_or_default());
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}
