//! Loading as a whole: defaults, the shipped file, the environment, and errors that name their key.

use std::path::PathBuf;
use std::time::Duration;

use toml::Value;

use super::auth::DEV_SECRET;
use super::*;
use crate::resilience::WindowKind;

fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn defaults_match_spec() {
    let s = Settings::from_sources("", &[]).unwrap();
    assert_eq!(s.server.listen.to_string(), "127.0.0.1:8080");
    assert_eq!(s.storage.sqlite_path, PathBuf::from("data/parley.db"));
    assert_eq!(s.payments.initial_balance, 10_000);
    assert!(!s.auth.using_dev_secret);
    assert!(s.auth.secret_from_data_dir);
    assert!(!s.faults_enabled);
    assert_eq!(s.trace_sample_percent, 0.0);
    assert_eq!(s.trace_recent_bytes, 8 << 20);
    assert_eq!(s.trace_keep_slow, Duration::from_millis(100));
}

#[test]
fn the_development_secret_is_used_only_when_allowed() {
    let s = Settings::from_sources("[auth]\nallow_dev_secret = true\n", &[]).unwrap();
    assert!(s.auth.using_dev_secret && !s.auth.secret_from_data_dir);
    let dev = String::from_utf8(DEV_SECRET.to_vec()).unwrap();
    let e =
        Settings::from_sources(&format!("[auth]\ntoken_secret = \"{dev}\"\n"), &[]).unwrap_err();
    assert!(
        e.to_string().contains("published development secret"),
        "{e}"
    );
    let e = Settings::from_sources("[storage]\nbackend = \"redis\"\n", &[]).unwrap_err();
    assert!(e.to_string().contains("auth.token_secret"), "{e}");
    let s = Settings::from_sources(
        "[storage]\nbackend = \"redis\"\n[auth]\ntoken_secret = \"0123456789abcdef0123456789abcdef\"\n",
        &[],
    )
    .unwrap();
    assert!(!s.auth.using_dev_secret && !s.auth.secret_from_data_dir);
}

#[test]
fn the_shipped_config_toml_is_valid_and_holds_every_key() {
    let text = include_str!("../../config.toml");
    Settings::from_sources(text, &[]).unwrap();
    let file: Value = toml::from_str(text).unwrap();
    let defaults = Value::try_from(Raw::default()).unwrap();
    for (section, keys) in defaults.as_table().unwrap() {
        for key in keys.as_table().unwrap().keys() {
            assert!(
                file.get(section).and_then(|s| s.get(key)).is_some(),
                "config.toml lacks {section}.{key}"
            );
        }
    }
}

#[test]
fn environment_overrides_file() {
    let s = Settings::from_sources(
        "[server]\nlisten = \"127.0.0.1:9000\"\n",
        &env(&[
            ("PARLEY__SERVER__LISTEN", "127.0.0.1:9001"),
            ("PARLEY__AUTH__ADMINS", "alice, bob"),
            ("PARLEY__FAULTS__ENABLED", "true"),
            ("PARLEY__SESSION__OUTBOUND_QUEUE", "7"),
        ]),
    )
    .unwrap();
    assert_eq!(s.server.listen.port(), 9001);
    assert_eq!(s.auth.admins.len(), 2);
    assert!(s.faults_enabled);
    assert_eq!(s.session.outbound_queue, 7);
}

#[test]
fn errors_name_the_setting() {
    let e = Settings::from_sources("[server]\nlisten = \"nope\"\n", &[]).unwrap_err();
    assert!(e.to_string().contains("server.listen"), "{e}");
    let e = Settings::from_sources("[server]\nlisen = \"x\"\n", &[]).unwrap_err();
    assert!(e.to_string().contains("server.lisen"), "{e}");
    let e = Settings::from_sources("", &env(&[("PARLEY__SESSION__OUTBOUND_QUEUE", "many")]))
        .unwrap_err();
    assert!(
        e.to_string().contains("PARLEY__SESSION__OUTBOUND_QUEUE"),
        "{e}"
    );
    let e = Settings::from_sources("[session]\noutbound_queue = 0\n", &[]).unwrap_err();
    assert!(e.to_string().contains("session.outbound_queue"), "{e}");
    let e = Settings::from_sources("[auth]\ntoken_secret = \"short\"\n", &[]).unwrap_err();
    assert!(e.to_string().contains("auth.token_secret"), "{e}");
    let e = Settings::from_sources("[storage]\nbackend = \"mongo\"\n", &[]).unwrap_err();
    assert!(e.to_string().contains("storage.backend"), "{e}");
    let e = Settings::from_sources("[telemetry]\ntrace_recent_mib = 4096\n", &[]).unwrap_err();
    assert!(e.to_string().contains("telemetry.trace_recent_mib"), "{e}");
    let e = Settings::from_sources("[telemetry]\ntrace_keep_slow_ms = 100000\n", &[]).unwrap_err();
    assert!(
        e.to_string().contains("telemetry.trace_keep_slow_ms"),
        "{e}"
    );
}

#[test]
fn a_value_outside_its_choices_names_the_key_and_the_choices() {
    for (text, key, choices) in [
        (
            "[storage]\nbackend = \"mongo\"\n",
            "storage.backend",
            ["sqlite", "redis"],
        ),
        (
            "[storage]\nsqlite_synchronous = \"sometimes\"\n",
            "storage.sqlite_synchronous",
            ["full", "normal"],
        ),
        (
            "[telemetry]\nlog_format = \"xml\"\n",
            "telemetry.log_format",
            ["pretty", "json"],
        ),
        (
            "[breaker_webhook]\nwindow = \"calls\"\n",
            "breaker_webhook.window",
            ["count", "time"],
        ),
    ] {
        let e = Settings::from_sources(text, &[]).unwrap_err().to_string();
        assert!(e.contains(key), "{e}");
        for choice in choices {
            assert!(e.contains(choice), "{e} lacks {choice}");
        }
    }
    // From the environment too, and beside other values that are fine.
    let e = Settings::from_sources(
        "[storage]\nsqlite_synchronous = \"normal\"\n",
        &env(&[
            ("PARLEY__SESSION__OUTBOUND_QUEUE", "7"),
            ("PARLEY__TELEMETRY__LOG_FORMAT", "XML"),
        ]),
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("telemetry.log_format") && e.contains("pretty"),
        "{e}"
    );
}

#[test]
fn each_choice_is_read_as_written() {
    let s = Settings::from_sources(
        "[storage]\nsqlite_synchronous = \"normal\"\n[telemetry]\nlog_format = \"json\"\n\
         [breaker_webhook]\nwindow = \"time\"\nwindow_size = 30\n",
        &[],
    )
    .unwrap();
    assert_eq!(s.storage.backend, StorageBackend::Sqlite);
    assert_eq!(s.storage.synchronous, Synchronous::Normal);
    assert_eq!(s.log_format, LogFormat::Json);
    let webhook = s.breakers.iter().find(|b| b.name == "webhook").unwrap();
    assert_eq!(webhook.config.window, WindowKind::Time(30));
    let defaults = Settings::from_sources("", &[]).unwrap();
    assert_eq!(defaults.storage.synchronous, Synchronous::Full);
    assert_eq!(defaults.log_format, LogFormat::Pretty);
    assert_eq!(defaults.breakers[0].config.window, WindowKind::Count(20));
}

#[test]
fn the_redis_breaker_keeps_its_own_defaults() {
    let s = Settings::from_sources("", &[]).unwrap();
    let names: Vec<_> = s.breakers.iter().map(|b| b.name).collect();
    assert_eq!(names, ["payment_provider", "webhook", "redis"]);
    let redis = &s.breakers[2];
    assert_eq!(redis.config.wait_open, Duration::from_millis(1000));
    assert_eq!(redis.config.max_wait, Duration::from_millis(10_000));
    assert_eq!(redis.call_timeout, Duration::from_millis(2000));
    let webhook = &s.breakers[1];
    assert_eq!(webhook.config.wait_open, Duration::from_millis(5000));
    assert_eq!(webhook.call_timeout, Duration::from_millis(3000));
}
