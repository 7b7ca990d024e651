//! Workspace path safety (docs/architecture.md section 11): every path from a model or a
//! client is relative, normalised, inside the root, not under `.git/`, and not
//! reached through a symlink that leaves the root.

use std::path::{Component, Path, PathBuf};

use crate::{Error, Result};

/// A path that passed [`validate_relative`]: relative, normalised, `/`-separated.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct WorkspacePath(String);

impl WorkspacePath {
    /// The normalised relative form (`src/lib.rs`).
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The absolute path under `root`.
    pub fn join_to(&self, root: &Path) -> PathBuf {
        root.join(&self.0)
    }
}

impl std::fmt::Display for WorkspacePath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

fn reject(path: &str, why: &str) -> Error {
    Error::PathRejected {
        path: path.chars().take(200).collect(),
        reason: why.to_owned(),
    }
}

/// Checks the lexical rules: non-empty, relative, no `..` escaping, no `.git`
/// component, no NUL or control characters. Returns the normalised form.
pub fn validate_relative(raw: &str) -> Result<WorkspacePath> {
    if raw.trim().is_empty() {
        return Err(reject(raw, "empty path"));
    }
    if raw.chars().any(|c| c == '\0' || c.is_control()) {
        return Err(reject(raw, "control character in path"));
    }
    if raw.starts_with('/') || raw.starts_with('\\') || Path::new(raw).is_absolute() {
        return Err(reject(raw, "absolute paths are not allowed"));
    }
    if raw.len() >= 2 && raw.as_bytes()[1] == b':' {
        return Err(reject(raw, "drive-qualified paths are not allowed"));
    }
    let mut parts: Vec<&str> = Vec::new();
    for component in Path::new(raw).components() {
        match component {
            Component::Normal(part) => {
                let Some(part) = part.to_str() else {
                    return Err(reject(raw, "path is not valid UTF-8"));
                };
                if part.eq_ignore_ascii_case(".git") {
                    return Err(reject(raw, "paths under .git/ are not allowed"));
                }
                parts.push(part);
            }
            Component::CurDir => {}
            Component::ParentDir => {
                if parts.pop().is_none() {
                    return Err(reject(raw, "path escapes the workspace with '..'"));
                }
            }
            Component::RootDir | Component::Prefix(_) => {
                return Err(reject(raw, "absolute paths are not allowed"));
            }
        }
    }
    if parts.is_empty() {
        return Err(reject(raw, "path names the workspace root, not a file"));
    }
    Ok(WorkspacePath(parts.join("/")))
}

/// [`validate_relative`] plus the filesystem rule: no existing component of the
/// path (including the file itself) may be a symlink that resolves outside
/// `root`. A path whose file does not exist yet is checked up to its deepest
/// existing ancestor.
pub fn validate_in_workspace(root: &Path, raw: &str) -> Result<WorkspacePath> {
    let rel = validate_relative(raw)?;
    let root = root
        .canonicalize()
        .map_err(|e| reject(raw, &format!("workspace root unreadable: {e}")))?;
    let mut current = root.clone();
    for part in rel.as_str().split('/') {
        current.push(part);
        match std::fs::symlink_metadata(&current) {
            Ok(meta) => {
                if meta.file_type().is_symlink() {
                    let resolved = current
                        .canonicalize()
                        .map_err(|_| reject(raw, "path goes through a dangling symlink"))?;
                    if !resolved.starts_with(&root) {
                        return Err(reject(
                            raw,
                            "path goes through a symlink that leaves the workspace",
                        ));
                    }
                    if resolved.strip_prefix(&root).ok().is_some_and(|p| {
                        p.components()
                            .any(|c| c.as_os_str().eq_ignore_ascii_case(".git"))
                    }) {
                        return Err(reject(raw, "path resolves under .git/"));
                    }
                }
            }
            Err(_) => break,
        }
    }
    Ok(rel)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lexical_rules() {
        assert_eq!(
            validate_relative("src/./lib.rs").unwrap().as_str(),
            "src/lib.rs"
        );
        assert_eq!(
            validate_relative("src/a/../lib.rs").unwrap().as_str(),
            "src/lib.rs"
        );
        for bad in [
            "",
            "/etc/passwd",
            "../x",
            "src/../../x",
            ".git/config",
            "a/.git/hooks/x",
            "a\0b",
            ".",
            "C:x",
        ] {
            assert!(
                validate_relative(bad).is_err(),
                "{bad:?} should be rejected"
            );
        }
    }

    #[test]
    fn symlink_escape_is_rejected() {
        let outside = tempfile::tempdir().unwrap();
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir(root.path().join("src")).unwrap();
        std::os::unix::fs::symlink(outside.path(), root.path().join("src/escape")).unwrap();
        std::os::unix::fs::symlink(root.path().join("src"), root.path().join("inside")).unwrap();
        let err = validate_in_workspace(root.path(), "src/escape/pwned.txt").unwrap_err();
        assert!(err.to_string().contains("symlink"), "{err}");
        assert!(validate_in_workspace(root.path(), "inside/new.rs").is_ok());
        assert!(validate_in_workspace(root.path(), "src/new/file.rs").is_ok());
    }

    proptest::proptest! {
        #[test]
        fn validated_paths_never_escape(raw in "[a-z./]{0,24}") {
            if let Ok(p) = validate_relative(&raw) {
                proptest::prop_assert!(!p.as_str().starts_with('/'));
                proptest::prop_assert!(!p.as_str().split('/').any(|c| c == ".." || c == "." || c.is_empty() || c == ".git"));
            }
        }
    }
}
