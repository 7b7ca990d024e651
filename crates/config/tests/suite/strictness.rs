//! Strictness: unknown keys, malformed overrides, wrong types and incomplete
//! new tables are errors that name the key and the layer.

use std::path::Path;

use cadre_config::Error;
use pretty_assertions::assert_eq;

use super::support::*;

#[test]
fn unknown_key_in_file_names_key_and_file() {
    let (_dir, path) = user_file("[limits]\nmax_concurency = 4\n");
    let err = load_with(Some(&path), &[], &[]).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "unknown config key \"limits.max_concurency\" in {}",
            path.display()
        )
    );
    assert!(matches!(&err, Error::UnknownKey { key, .. } if key == "limits.max_concurency"));

    let (_dir, path) = user_file("[limitz]\nmax_concurrency = 4\n");
    let err = load_with(Some(&path), &[], &[]).unwrap_err();
    assert!(
        matches!(&err, Error::UnknownKey { key, .. } if key == "limitz"),
        "{err}"
    );

    // Inside a free-key map the entry's fields are still checked.
    let (_dir, path) = user_file("[models.haiku]\nmodle = \"x\"\n");
    let err = load_with(Some(&path), &[], &[]).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "unknown config key \"models.haiku.modle\" in {}",
            path.display()
        )
    );

    // Inline tables too.
    let (_dir, path) =
        user_file("[routing]\nstart_tier = { mechanical = \"haiku\", creative = \"opus\" }\n");
    let err = load_with(Some(&path), &[], &[]).unwrap_err();
    assert!(
        matches!(&err, Error::UnknownKey { key, .. } if key == "routing.start_tier.creative"),
        "{err}"
    );
}

#[test]
fn unknown_env_key_names_the_variable() {
    let err = load_with(None, &[("CADRE_LIMITS__MAX_CONCURENCY", "4")], &[]).unwrap_err();
    assert_eq!(
        err.to_string(),
        "unknown config key \"limits.max_concurency\" in env CADRE_LIMITS__MAX_CONCURENCY"
    );
    let err = load_with(None, &[("CADRE_VERBOSE", "1")], &[]).unwrap_err();
    assert!(
        matches!(&err, Error::UnknownKey { key, origin } if key == "verbose" && origin == "env CADRE_VERBOSE")
    );
    // A path below a leaf is unknown too.
    let err = load_with(None, &[("CADRE_LIMITS__MAX_CONCURRENCY__X", "4")], &[]).unwrap_err();
    assert!(
        matches!(&err, Error::UnknownKey { key, .. } if key == "limits.max_concurrency.x"),
        "{err}"
    );
    // Malformed names.
    let err = load_with(None, &[("CADRE_LIMITS__", "4")], &[]).unwrap_err();
    assert!(
        matches!(&err, Error::BadOverride { origin, .. } if origin == "env CADRE_LIMITS__"),
        "{err}"
    );
}

#[test]
fn unknown_and_malformed_flags_are_errors() {
    let err = load_with(None, &[], &["limits.max_concurency=4"]).unwrap_err();
    assert!(
        matches!(&err, Error::UnknownKey { key, .. } if key == "limits.max_concurency"),
        "{err}"
    );
    assert!(
        err.to_string().contains("-c \"limits.max_concurency=4\""),
        "{err}"
    );
    let err = load_with(None, &[], &["limits.max_concurrency"]).unwrap_err();
    assert!(matches!(err, Error::BadOverride { .. }), "{err}");
    let err = load_with(None, &[], &["limits..max_concurrency=1"]).unwrap_err();
    assert!(matches!(err, Error::BadOverride { .. }), "{err}");
}

#[test]
fn type_errors_name_key_and_source() {
    let (_dir, path) = user_file("[limits]\nmax_concurrency = \"lots\"\n");
    let err = load_with(Some(&path), &[], &[]).unwrap_err();
    match &err {
        Error::InvalidValue {
            key,
            origin,
            message,
        } => {
            assert_eq!(key, "limits.max_concurrency");
            assert_eq!(origin, &path.display().to_string());
            assert!(message.contains("expected an integer"), "{message}");
        }
        other => panic!("unexpected {other:?}"),
    }

    let err = load_with(None, &[("CADRE_ROUTING__ADAPTIVE", "yes")], &[]).unwrap_err();
    assert!(
        matches!(&err, Error::InvalidValue { key, origin, .. }
            if key == "routing.adaptive" && origin == "env CADRE_ROUTING__ADAPTIVE"),
        "{err}"
    );

    let err = load_with(None, &[], &["tiers.order=haiku"]).unwrap_err();
    assert!(
        matches!(&err, Error::InvalidValue { key, message, .. } if key == "tiers.order" && message.contains("expected an array")),
        "{err}"
    );

    // Range errors come from serde and are mapped back to the key and layer.
    let err = load_with(None, &[], &["limits.max_concurrency=-1"]).unwrap_err();
    assert!(
        matches!(&err, Error::InvalidValue { key, origin, message }
            if key == "limits.max_concurrency" && origin == "-c" && message.contains("u32")),
        "{err}"
    );

    // Bad enum variant in a file.
    let (_dir, path) = user_file("[models.haiku]\nthinking = \"sometimes\"\n");
    let err = load_with(Some(&path), &[], &[]).unwrap_err();
    match &err {
        Error::InvalidValue {
            key,
            origin,
            message,
        } => {
            assert_eq!(key, "models.haiku.thinking");
            assert_eq!(origin, &path.display().to_string());
            assert!(message.contains("unknown variant"), "{message}");
        }
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn new_model_from_file_must_be_complete() {
    let complete = std::fs::read_to_string(repo_file("config/default.toml"))
        .unwrap()
        .split("[models.haiku]")
        .nth(1)
        .unwrap()
        .split("\n\n")
        .next()
        .unwrap()
        .to_owned();
    let text = format!(
        "[tiers]\norder = [\"mini\", \"sonnet\", \"opus\"]\n[routing]\nstart_tier = {{ mechanical = \"mini\" }}\n[models.mini]{}\n",
        complete.replace("claude-haiku-4-5", "claude-mini")
    );
    let (_dir, path) = user_file(&text);
    let loaded = load_with(Some(&path), &[], &[]).unwrap();
    assert_eq!(loaded.config.models["mini"].model, "claude-mini");
    assert_eq!(loaded.config.next_tier("mini"), Some("sonnet"));
    assert_eq!(
        loaded.source_of("models.mini.context_window"),
        Some(path.display().to_string().as_str())
    );

    let (_dir, path) =
        user_file("[models.mini]\nprovider = \"anthropic\"\nmodel = \"claude-mini\"\n");
    let err = load_with(Some(&path), &[], &[]).unwrap_err();
    match &err {
        Error::InvalidValue {
            key,
            origin,
            message,
        } => {
            assert_eq!(key, "models.mini");
            assert_eq!(origin, &path.display().to_string());
            assert!(message.contains("missing field"), "{message}");
        }
        other => panic!("unexpected {other:?}"),
    }

    // A new per-tier entry from -c is fine (free-key map of integers).
    let loaded = load_with(
        None,
        &[],
        &[
            "cascade.attempts.sonnet=3",
            "limits.per_tier_concurrency.haiku=2",
        ],
    )
    .unwrap();
    assert_eq!(loaded.config.attempts_for_tier("sonnet"), 3);
    assert_eq!(loaded.config.concurrency_for_tier("haiku"), 2);
}

#[test]
fn user_file_errors_name_the_file() {
    let missing = Path::new("/nonexistent/cadre/config.toml");
    let err = load_with(Some(missing), &[], &[]).unwrap_err();
    assert!(
        matches!(&err, Error::ReadFile { path, .. } if path == missing),
        "{err}"
    );
    assert!(err.to_string().contains("/nonexistent/cadre/config.toml"));

    let (_dir, path) = user_file("[limits\nmax_concurrency = 4\n");
    let err = load_with(Some(&path), &[], &[]).unwrap_err();
    assert!(
        matches!(&err, Error::Parse { origin, .. } if origin == &path.display().to_string()),
        "{err}"
    );
}

#[test]
fn provider_tool_and_sampling_keys_are_optional_and_typed() {
    // A provider table written before these keys existed still loads.
    let (_dir, path) = user_file(
        "[providers.local]\nkind = \"openai\"\nbase_url = \"http://127.0.0.1:8080/v1\"\n\
         api_key_env = \"\"\nbase_url_env = \"\"\ntimeout_secs = 60\nconnect_timeout_secs = 5\n\
         max_retries = 0\noverload_max_retries = 2\noverload_max_backoff_secs = 5.0\n",
    );
    let loaded = load_with(Some(&path), &[], &[]).unwrap();
    let local = &loaded.config.providers["local"];
    assert_eq!(
        (local.tool_choice, local.retry_timeouts),
        (cadre_config::ToolChoiceMode::Named, None)
    );
    assert!(local.sampling.is_empty() && local.extra_body.is_empty());

    let loaded = load_with(
        None,
        &[],
        &[
            "providers.openai.tool_choice=required",
            "providers.openai.extra_body={ repeat_penalty = 1.1 }",
            "providers.openai.sampling={ planner = { temperature = 0.2 } }",
        ],
    )
    .unwrap();
    let openai = &loaded.config.providers["openai"];
    assert_eq!(openai.tool_choice, cadre_config::ToolChoiceMode::Required);
    assert_eq!(openai.extra_body["repeat_penalty"], toml::Value::Float(1.1));
    assert_eq!(
        openai.sampling["planner"]["temperature"],
        toml::Value::Float(0.2)
    );
    assert_eq!(openai.retry_timeouts, Some(false));

    assert!(load_with(None, &[], &["providers.openai.tool_choice=forced"]).is_err());
    let err = load_with(
        None,
        &[],
        &["providers.openai.sampling={ judge = { temperature = 0.0 } }"],
    );
    assert!(err.is_err(), "{err:?}");
}
