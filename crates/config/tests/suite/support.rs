//! Helpers shared by the loader tests: inputs built in memory, user files in
//! temporary directories, and the repository's own config files.

use std::path::{Path, PathBuf};

use cadre_config::{ConfigSources, Error, LoadedConfig, Problem, load};

pub(crate) fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

pub(crate) fn overrides(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| (*s).to_owned()).collect()
}

/// A user file in a temp dir; the dir lives as long as the returned guard.
pub(crate) fn user_file(text: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cadre.toml");
    std::fs::write(&path, text).unwrap();
    (dir, path)
}

pub(crate) fn load_with(
    file: Option<&Path>,
    env_pairs: &[(&str, &str)],
    over: &[&str],
) -> cadre_config::Result<LoadedConfig> {
    load(&ConfigSources {
        user_file: file.map(Path::to_path_buf),
        env: env(env_pairs),
        overrides: overrides(over),
    })
}

pub(crate) fn problems_for(over: &[&str]) -> Vec<Problem> {
    match load_with(None, &[], over) {
        Err(Error::Invalid { problems }) => problems,
        other => panic!("expected validation failure for {over:?}, got {other:?}"),
    }
}

pub(crate) fn repo_file(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(rel)
}
