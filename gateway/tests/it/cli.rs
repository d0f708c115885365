//! `authgate check` and `authgate serve` on broken configurations: loud, precise, exit 2.

use std::process::Command;

use crate::kit;

fn check(files: &[(&str, &str)]) -> (i32, String) {
    let dir = tempfile::tempdir().expect("tempdir");
    for (name, content) in files {
        let p = dir.path().join(name);
        std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
        std::fs::write(p, content).expect("write");
    }
    let out = Command::new(kit::bin())
        .args(["check", "--config"])
        .arg(dir.path().join("authgate.toml"))
        .output()
        .expect("run check");
    let text =
        String::from_utf8_lossy(&out.stderr).into_owned() + &String::from_utf8_lossy(&out.stdout);
    (out.status.code().unwrap_or(-1), text)
}

#[test]
fn check_names_file_line_column_and_key() {
    let config = "[server]\nlisten = \"127.0.0.1:0\"\n\n[users]\nhtpasswd = \"users.htpasswd\"\n\n[groups]\nadmins = [\"alice\", \"ghost\"]\n\n[[route]]\npath = \"/\"\nupstream = \"htp://nowhere\"\nauth = [\"basic\", \"magic\"]\nallow = { groups = [\"admins\", \"nobody\"] }\n";
    let users = "alice:$2y$04$ZpJ4O8N2XJ2HbW6wqlZFJe4yXr6Qv1t7vZ3CkqBZC5pY2c7fJzG7e\nbob:plaintext\ncarol:$2y$99$abc\n";
    let (code, out) = check(&[("authgate.toml", config), ("users.htpasswd", users)]);
    assert_eq!(code, 2, "{out}");
    // The htpasswd problems come with the htpasswd file's name and line.
    assert!(out.contains("users.htpasswd:2:"), "{out}");
    assert!(out.contains("users.htpasswd:3:"), "{out}");
    // The route problems name the config file, the line and the key.
    assert!(
        out.contains("authgate.toml:12:") && out.contains("route[0].upstream"),
        "{out}"
    );
    assert!(
        out.contains("authgate.toml:13:") && out.contains("route[0].auth") && out.contains("magic"),
        "{out}"
    );
}

#[test]
fn check_reports_unknown_keys_and_group_members() {
    let users = "alice:$2y$04$ZpJ4O8N2XJ2HbW6wqlZFJe4yXr6Qv1t7vZ3CkqBZC5pY2c7fJzG7e\n";
    let (code, out) = check(&[
        (
            "authgate.toml",
            "[server]\nlisten = \"127.0.0.1:0\"\nlsiten = 1\n",
        ),
        ("users.htpasswd", users),
    ]);
    assert_eq!(code, 2, "{out}");
    assert!(
        out.contains("authgate.toml:3:1") && out.contains("lsiten"),
        "{out}"
    );

    let config = "[users]\nhtpasswd = \"users.htpasswd\"\n[groups]\nadmins = [\"alice\", \"ghost\"]\n[[route]]\npath = \"/\"\nstatic = \"missing-dir\"\nauth = \"none\"\n";
    let (code, out) = check(&[("authgate.toml", config), ("users.htpasswd", users)]);
    assert_eq!(code, 2, "{out}");
    assert!(
        out.contains("authgate.toml:4:") && out.contains("ghost") && out.contains("groups.admins"),
        "{out}"
    );
    assert!(
        out.contains("authgate.toml:7:") && out.contains("route[0].static"),
        "{out}"
    );
}

#[test]
fn check_accepts_the_bundled_example() {
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/quickstart.toml");
    let out = Command::new(kit::bin())
        .args(["check", "--config", example])
        .output()
        .expect("run");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("ok (4 routes, 2 users)"));
}

#[test]
fn serve_refuses_to_start_on_errors() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = dir.path().join("authgate.toml");
    std::fs::write(&cfg, "[server]\nlisten = \"127.0.0.1:0\"\n[[route]]\npath = \"/\"\nupstream = \"http://127.0.0.1:1\"\nauth = [\"basic\"]\n").expect("write");
    let out = Command::new(kit::bin())
        .args(["serve", "--config"])
        .arg(&cfg)
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("[users]") && err.contains("not starting"),
        "{err}"
    );
}

#[test]
fn hash_prints_an_htpasswd_line_apache_can_verify() {
    for (args, prefix) in [
        (vec!["hash", "dora"], "dora:$argon2id$"),
        (
            vec!["hash", "dora", "--algorithm", "bcrypt", "--cost", "5"],
            "dora:$2y$05$",
        ),
    ] {
        let mut child = Command::new(kit::bin())
            .args(&args)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("spawn");
        use std::io::Write;
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(b"pa:ss word\n")
            .expect("write");
        let out = child.wait_with_output().expect("wait");
        let line = String::from_utf8(out.stdout).expect("utf8");
        assert!(
            out.status.success() && line.starts_with(prefix),
            "{args:?}: {line}"
        );
        if prefix.contains("$2y$") {
            // Apache's own htpasswd verifies authgate's bcrypt line.
            let dir = tempfile::tempdir().expect("tempdir");
            let f = dir.path().join("h");
            std::fs::write(&f, &line).expect("write");
            let ok = Command::new("htpasswd")
                .args(["-vb"])
                .arg(&f)
                .args(["dora", "pa:ss word"])
                .output()
                .expect("htpasswd");
            assert!(
                ok.status.success(),
                "{}",
                String::from_utf8_lossy(&ok.stderr)
            );
        }
    }
    let out = Command::new(kit::bin())
        .args(["hash", "bad:name"])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn explain_finds_a_decision_by_request_id_and_dry_runs_a_request() {
    let upstream = kit::Upstream::start();
    let config = kit::basic_config(
        &upstream,
        "[server]\nlisten = \"127.0.0.1:0\"\naudit_log = \"{dir}/audit.log\"",
    );
    let gw = kit::Gateway::start(
        &config,
        &[(
            "users.htpasswd",
            &kit::htpasswd(&["-B", "-C", "4"], "alice", "pw"),
        )],
    );
    let (status, h, _) = kit::get(&gw.url("/x"), Some(("mallory", "guess")), &[]);
    assert_eq!(status, 401);
    let id = h["x-request-id"].clone();
    // The audit writer writes every 5 ms (50 ms when idle); wait (bounded) for the line.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let out = loop {
        let out = Command::new(kit::bin())
            .args(["explain", &id, "--audit-log"])
            .arg(gw.path("audit.log"))
            .output()
            .expect("explain");
        if out.status.success() || std::time::Instant::now() > deadline {
            break out;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("`mallory`: no such user"), "{text}");
    assert!(text.contains("invalid_credentials"), "{text}");

    let missing = Command::new(kit::bin())
        .args(["explain", "no-such-id", "--audit-log"])
        .arg(gw.path("audit.log"))
        .output()
        .expect("explain");
    assert_eq!(missing.status.code(), Some(1));

    // Dry run: decided now, nothing sent anywhere.
    let out = Command::new(kit::bin())
        .args(["explain", "--config"])
        .arg(gw.path("authgate.toml"))
        .args([
            "--path",
            "/y",
            "-H",
            &format!("Authorization: Basic {}", "YWxpY2U6cHc="),
        ])
        .output()
        .expect("explain");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success()
            && text.contains("authenticated as `alice`")
            && text.contains("200 allowed"),
        "{text}"
    );
    assert_eq!(upstream.count(), 0, "a dry run forwards nothing");
}
