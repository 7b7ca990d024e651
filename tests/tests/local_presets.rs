//! The local-server presets in `config/presets/` load through the real
//! binary's config loader (`cadre --config PRESET config show`): every key
//! known, every value valid, and the settings each server needs resolved
//! from the preset.

use std::path::Path;

use cadre_e2e::{cadre_bin, clean_command, run_with_timeout};

fn show(preset: &str) -> String {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let path = root.join("config/presets").join(preset);
    let home = tempfile::tempdir().unwrap_or_else(|e| panic!("temp dir: {e}"));
    let mut cmd = clean_command(cadre_bin(), home.path());
    cmd.arg("--config").arg(&path).args(["config", "show"]);
    let out = run_with_timeout(cmd, std::time::Duration::from_secs(30));
    out.expect_code(0);
    out.stdout
}

fn has(shown: &str, key: &str, value: &str) -> bool {
    shown
        .lines()
        .any(|l| l.starts_with(key) && l.contains(value) && l.contains("presets"))
}

#[test]
fn every_preset_loads_with_the_settings_its_server_needs() {
    // llama-cpp-python streams only named tool calls: its preset does not stream.
    let cases = [
        ("llama-server.toml", "\"required\"", "8192", "true"),
        ("llama-cpp-python.toml", "\"named\"", "8192", "false"),
        ("ollama.toml", "\"auto\"", "16384", "true"),
        ("vllm.toml", "\"named\"", "32768", "true"),
    ];
    for (preset, tool_choice, window, stream) in cases {
        let shown = show(preset);
        assert!(
            has(&shown, "providers.local.tool_choice", tool_choice),
            "{preset}: tool_choice {tool_choice}\n{shown}"
        );
        assert!(
            has(&shown, "models.local.context_window", window),
            "{preset}: context_window {window}\n{shown}"
        );
        assert!(
            has(&shown, "providers.local.stream", stream),
            "{preset}: stream = {stream}\n{shown}"
        );
        assert!(
            has(&shown, "providers.local.retry_timeouts", "false"),
            "{preset}: timeouts not retried\n{shown}"
        );
    }
}
