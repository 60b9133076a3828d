//! `tenure check` refuses the connector settings `serve` refuses, located by file and line:
//! every bad webhook configuration the connector's own tests cover, and more.

mod common;

use common::{BIN, describe};
use std::process::Command;

/// The system's lines before its settings; `[systems.settings]` is line 5.
const HEAD: &str = "[[systems]]\nid = \"itsm\"\nconnector = \"webhook\"\n\n[systems.settings]\n";

fn check(settings: &str) -> (bool, String, String) {
    let dir = tempfile::tempdir().expect("temporary folder");
    let path = dir.path().join("tenure.toml");
    std::fs::write(&path, format!("{HEAD}{settings}")).expect("writing tenure.toml");
    let out = Command::new(BIN)
        .args(["check", "--config"])
        .arg(&path)
        .env_remove("TENURE_CONFIG")
        .output()
        .expect("running tenure check");
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(!err.contains("panicked"), "{}", describe(&out));
    (out.status.success(), path.display().to_string(), err)
}

fn op(url: &str) -> String {
    format!("[systems.settings.operations.create_account]\nurl = \"{url}\"\n")
}

#[test]
fn check_refuses_every_bad_webhook_setting_with_file_and_line() {
    let ok = "allowed_hosts = [\"itsm.example.com\"]\nsecret_env = \"S\"\n";
    let host = |h: &str| format!("allowed_hosts = [\"{h}\"]\nsecret_env = \"S\"\n");
    let (good, _, err) = check(&format!(
        "{ok}{}",
        op("https://itsm.example.com/u/{{person.id}}")
    ));
    assert!(good, "a good configuration passes: {err}");

    let cases: Vec<(String, &str)> = vec![
        (format!("{ok}{}", op("file:///etc/passwd")), "scheme `file`"),
        (
            format!("{ok}{}", op("ftp://itsm.example.com/u")),
            "scheme `ftp`",
        ),
        (
            format!("{}{}", host("127.0.0.1"), op("http://127.0.0.1/u")),
            "private",
        ),
        (
            format!("{}{}", host("localhost"), op("http://[::1]/u")),
            "not in allowed_hosts",
        ),
        (
            format!("{}{}", host("::1"), op("http://[::1]/u")),
            "private",
        ),
        (
            format!("{}{}", host("10.0.0.5"), op("http://10.0.0.5/u")),
            "private",
        ),
        (
            format!(
                "{}{}",
                host("169.254.169.254"),
                op("http://169.254.169.254/latest")
            ),
            "link-local",
        ),
        (
            format!(
                "{}{}",
                host("64:ff9b::a9fe:a9fe"),
                op("http://[64:ff9b::a9fe:a9fe]/")
            ),
            "private",
        ),
        (
            format!("{}{}", host("2002:a00:1::"), op("http://[2002:a00:1::]/")),
            "private",
        ),
        (
            format!("{ok}{}", op("https://evil.example.net/u")),
            "not in allowed_hosts",
        ),
        (
            format!("{ok}{}", op("https://{{person.department}}.example.com/u")),
            "scheme and host",
        ),
        (
            format!("{ok}{}", op("https://itsm.example.com/u/{{person.salary}}")),
            "operations.create_account",
        ),
        (
            format!(
                "{ok}{}[systems.settings.operations.create_account.headers]\nAuthorization = \"Bearer abc\"\n",
                op("https://itsm.example.com/u")
            ),
            "bearer_token_env",
        ),
        (
            format!(
                "{ok}{}method = \"GE T\"\n",
                op("https://itsm.example.com/u")
            ),
            "not an HTTP method",
        ),
        (
            format!(
                "{ok}{}",
                op("https://itsm.example.com/u").replace("create_account", "explode")
            ),
            "explode",
        ),
        (
            "allowed_hosts = [\"itsm.example.com\"]\nsecret = \"whsec_x\"\nsecret_env = \"S\"\n"
                .into(),
            "secret_env",
        ),
        (
            "allowed_hosts = []\nsecret_env = \"S\"\n[systems.settings.operations]\n".into(),
            "at least one host",
        ),
        (
            "allowed_hosts = [\"itsm.example.com\"]\n".into(),
            "secret_env",
        ),
        (
            format!(
                "{ok}health_url = \"http://127.0.0.1/health\"\n[systems.settings.operations]\n"
            ),
            "health_url",
        ),
        (
            format!("{ok}timeout = 5\n[systems.settings.operations]\n"),
            "timeout",
        ),
    ];
    for (settings, want) in &cases {
        let (passed, path, err) = check(settings);
        assert!(!passed, "tenure check passed:\n{settings}");
        let at = format!("{path}:5:");
        assert!(
            err.contains(&at) && err.contains("system `itsm`") && err.contains(want),
            "expected {at} … system `itsm` … {want} in:\n{err}\nfor:\n{settings}"
        );
    }
}

#[test]
fn check_reads_other_connectors_settings_without_their_secrets() {
    // The SCIM connector's secrets come from the environment at start; check only needs
    // them named.
    let scim = "[[systems]]\nid = \"peer\"\nconnector = \"scim\"\n[systems.settings]\nbase_url = \"https://peer.example.com/scim/v2\"\ntoken_env = \"TENURE_CHECK_UNSET_TOKEN\"\n";
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tenure.toml");
    std::fs::write(&path, scim).unwrap();
    let out = Command::new(BIN)
        .args(["check", "--config"])
        .arg(&path)
        .env_remove("TENURE_CHECK_UNSET_TOKEN")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", describe(&out));
    std::fs::write(&path, scim.replace("https://", "ftp://")).unwrap();
    let out = Command::new(BIN)
        .args(["check", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{}", describe(&out));
    assert!(
        err.contains(&format!("{}:4:", path.display())) && err.contains("base_url"),
        "{err}"
    );
}

/// `[audit.checkpoints]`'s `key_file` is read as `serve` reads it: a missing file, one others
/// can read, or one that holds no key is refused; a good one passes and its public key is
/// shown. A `key_env` is only named.
#[test]
fn check_reads_the_checkpoint_key_file_as_serve_would() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tenure.toml");
    let conf = |key: &str| {
        format!("[audit.checkpoints]\n{key}\nevery = \"5m\"\nsink = \"file:checkpoints.jsonl\"\n")
    };
    let run = |text: &str| {
        std::fs::write(&path, text).unwrap();
        Command::new(BIN)
            .args(["check", "--config"])
            .arg(&path)
            .env_remove("TENURE_CONFIG")
            .env_remove("TENURE_CHECK_UNSET_KEY")
            .output()
            .unwrap()
    };
    let missing = run(&conf("key_file = \"checkpoint.key\""));
    assert!(!missing.status.success(), "{}", describe(&missing));
    assert!(
        String::from_utf8_lossy(&missing.stderr).contains("key_file"),
        "{}",
        describe(&missing)
    );
    let made = Command::new(BIN)
        .args(["keys", "generate", "--out"])
        .arg(dir.path().join("checkpoint.key"))
        .output()
        .unwrap();
    assert!(made.status.success(), "{}", describe(&made));
    let good = run(&conf("key_file = \"checkpoint.key\""));
    assert!(good.status.success(), "{}", describe(&good));
    assert!(
        String::from_utf8_lossy(&good.stdout).contains("signing key ok, public key ed25519:"),
        "{}",
        describe(&good)
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let key = dir.path().join("checkpoint.key");
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
        let open = run(&conf("key_file = \"checkpoint.key\""));
        assert!(!open.status.success(), "{}", describe(&open));
        assert!(String::from_utf8_lossy(&open.stderr).contains("chmod 600"));
        std::fs::write(&key, "not a key").unwrap();
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
        let junk = run(&conf("key_file = \"checkpoint.key\""));
        assert!(!junk.status.success(), "{}", describe(&junk));
        assert!(
            !String::from_utf8_lossy(&junk.stderr).contains("not a key"),
            "the key file's text is never shown"
        );
    }
    let env = run(&conf("key_env = \"TENURE_CHECK_UNSET_KEY\""));
    assert!(env.status.success(), "{}", describe(&env));
}
