//! JWT bearer tokens from independent issuers (issue 4): keys are made and tokens signed at
//! test time by PyJWT (with `cryptography`) and by node's `jose`, through the scripts in
//! `tests/jwt/`; authgate sees only the JWKS (a file, or a URL served by a small local server)
//! and the tokens. Every refusal is checked to have reached nothing behind the gateway.

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde_json::{json, Value};

use crate::kit::{Gateway, Upstream};
use crate::tokens::{assert_denied, assert_reached, bearer_error, eventually, get, Reply};

const ISSUER: &str = "https://idp.test";
/// The scripts, and jose's node_modules (`npm ci` there; scripts/test does it).
const SCRIPTS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/jwt");

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tool {
    PyJwt,
    Jose,
}

/// Runs an issuer script with `args` and `stdin`; returns stdout, panicking with stderr.
fn issuer(tool: Tool, args: &[&str], stdin: &str) -> String {
    let (program, script) = match tool {
        Tool::PyJwt => ("python3", "issuer.py"),
        Tool::Jose => {
            assert!(
                PathBuf::from(SCRIPTS).join("node_modules/jose").is_dir(),
                "run `npm ci` in {SCRIPTS} (scripts/test does)"
            );
            ("node", "issuer.mjs")
        }
    };
    let mut child = Command::new(program)
        .arg(PathBuf::from(SCRIPTS).join(script))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{program} must be installed: {e}"));
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(stdin.as_bytes())
        .expect("write stdin");
    let out = child.wait_with_output().expect("issuer");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{program} {script} {args:?} failed (pip install pyjwt cryptography; npm ci in {SCRIPTS}):\n{}\ninput: {stdin}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// A signing key made by one of the issuers: its private half stays in a file of the issuer's
/// format, its public half is a JWK with `kid`, `alg` and `use`.
struct Key {
    tool: Tool,
    alg: String,
    kid: String,
    private: PathBuf,
    public: Value,
}

impl Key {
    fn generate(dir: &tempfile::TempDir, tool: Tool, alg: &str, kid: &str) -> Key {
        let private = dir.path().join(format!("{kid}.private"));
        let out = issuer(
            tool,
            &["keygen", alg, kid, private.to_str().expect("utf8 path")],
            "",
        );
        let public: Value = serde_json::from_str(out.trim()).expect("a public JWK");
        assert!(
            public.get("d").is_none(),
            "the public JWK has no private part"
        );
        Key {
            tool,
            alg: alg.into(),
            kid: kid.into(),
            private,
            public,
        }
    }

    /// Signs each (extra header, claims); the header always has `alg` and `kid`.
    fn sign_all(&self, tokens: &[(Value, Value)]) -> Vec<String> {
        let requests: Vec<Value> = tokens
            .iter()
            .map(|(header, claims)| {
                let mut h = json!({ "kid": self.kid });
                merge(&mut h, header);
                json!({ "key": self.private, "alg": self.alg, "header": h, "claims": claims })
            })
            .collect();
        let out = issuer(self.tool, &["sign"], &Value::from(requests).to_string());
        let signed: Vec<String> = out.lines().map(str::to_owned).collect();
        assert_eq!(signed.len(), tokens.len(), "one token per request:\n{out}");
        signed
    }

    fn sign_with(&self, header: Value, claims: Value) -> String {
        self.sign_all(&[(header, claims)]).remove(0)
    }

    fn sign(&self, claims: Value) -> String {
        self.sign_with(json!({}), claims)
    }
}

/// Sets each member of `extra` in `base`; a `null` member removes it.
fn merge(base: &mut Value, extra: &Value) {
    let (Some(base), Some(extra)) = (base.as_object_mut(), extra.as_object()) else {
        return;
    };
    for (k, v) in extra {
        if v.is_null() {
            base.remove(k);
        } else {
            base.insert(k.clone(), v.clone());
        }
    }
}

fn jwks(keys: &[&Key]) -> String {
    json!({ "keys": keys.iter().map(|k| k.public.clone()).collect::<Vec<_>>() }).to_string()
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("time")
        .as_secs()
}

/// Valid claims for `sub` (issuer, audience "api", ten minutes to live), changed by `extra`.
fn claims(sub: &str, extra: Value) -> Value {
    let t = now();
    let mut c = json!({ "iss": ISSUER, "aud": "api", "sub": sub, "iat": t, "exp": t + 600 });
    merge(&mut c, &extra);
    c
}

/// A gateway with `[jwt]` (issuer, audience "api", `algorithms`, the JWKS file `jwks.json`
/// unless `jwt_extra` names a source) and a bearer route at /api, realm "api".
fn config(upstream: &Upstream, algorithms: &str, jwt_extra: &str, route_extra: &str) -> String {
    let source = if jwt_extra.contains("jwks_url") {
        ""
    } else {
        "jwks_file = \"jwks.json\"\n"
    };
    format!(
        "[jwt]\nissuer = \"{ISSUER}\"\naudience = \"api\"\nalgorithms = {algorithms}\n{source}{jwt_extra}\n\
         [[route]]\npath = \"/api\"\nupstream = \"{}\"\nrealm = \"api\"\nauth = [\"bearer\"]\n{route_extra}\n",
        upstream.url()
    )
}

fn send(gw: &Gateway, token: &str) -> Reply {
    get(
        &gw.url("/api/x"),
        &[("authorization", &format!("Bearer {token}"))],
    )
}

/// Asserts an RFC 6750 `invalid_token` refusal with `description` (any when `None`).
#[track_caller]
fn assert_invalid(r: &Reply, description: Option<&str>, upstream: &Upstream) {
    match description {
        Some(d) => assert_denied(
            r,
            401,
            "invalid_token",
            Some(&bearer_error("api", "invalid_token", d)),
            upstream,
        ),
        None => {
            assert_denied(
                r,
                401,
                "invalid_token",
                r.header("www-authenticate"),
                upstream,
            );
            let c = r.header("www-authenticate").unwrap_or_default();
            assert!(
                c.starts_with("Bearer realm=\"api\", error=\"invalid_token\", error_description="),
                "{r}"
            );
        }
    }
}

/// A JWK Set over HTTP on 127.0.0.1:0 that can be changed while it runs and counts its
/// fetches. Stops when dropped.
struct JwksServer {
    addr: SocketAddr,
    body: Arc<Mutex<String>>,
    hits: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
}

impl JwksServer {
    fn start(body: String) -> JwksServer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.set_nonblocking(true).expect("nonblocking");
        let addr = listener.local_addr().expect("addr");
        let body = Arc::new(Mutex::new(body));
        let hits = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (b, h, s) = (body.clone(), hits.clone(), stop.clone());
        std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                let Ok((mut conn, _)) = listener.accept() else {
                    std::thread::sleep(Duration::from_millis(10));
                    continue;
                };
                let _ = conn.set_nonblocking(false);
                let _ = conn.set_read_timeout(Some(Duration::from_secs(5)));
                let mut request = Vec::new();
                let mut chunk = [0u8; 1024];
                while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                    match conn.read(&mut chunk) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => request.extend_from_slice(&chunk[..n]),
                    }
                }
                h.fetch_add(1, Ordering::SeqCst);
                let body = b.lock().expect("lock").clone();
                let _ = conn.write_all(
                    format!(
                        "HTTP/1.1 200 OK\r\nContent-Type: application/jwk-set+json\r\n\
                         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
                        body.len()
                    )
                    .as_bytes(),
                );
            }
        });
        JwksServer {
            addr,
            body,
            hits,
            stop,
        }
    }

    fn url(&self) -> String {
        format!("http://{}/jwks.json", self.addr)
    }

    fn set(&self, body: String) {
        *self.body.lock().expect("lock") = body;
    }

    fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }
}

impl Drop for JwksServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

const ALL_ALGS: &str = "[\"RS256\", \"PS256\", \"ES256\", \"ES384\", \"EdDSA\"]";

#[test]
fn tokens_from_pyjwt_and_jose_are_accepted_with_user_and_groups_forwarded() {
    let dir = tempfile::tempdir().expect("tempdir");
    let keys = [
        Key::generate(&dir, Tool::PyJwt, "RS256", "py-rs256"),
        Key::generate(&dir, Tool::PyJwt, "PS256", "py-ps256"),
        Key::generate(&dir, Tool::PyJwt, "ES256", "py-es256"),
        Key::generate(&dir, Tool::PyJwt, "EdDSA", "py-eddsa"),
        Key::generate(&dir, Tool::Jose, "RS256", "jose-rs256"),
        Key::generate(&dir, Tool::Jose, "ES256", "jose-es256"),
        Key::generate(&dir, Tool::Jose, "ES384", "jose-es384"),
        Key::generate(&dir, Tool::Jose, "EdDSA", "jose-eddsa"),
    ];
    let upstream = Upstream::start();
    let gw = Gateway::start(
        &config(&upstream, ALL_ALGS, "", ""),
        &[("jwks.json", &jwks(&keys.iter().collect::<Vec<_>>()))],
    );
    for key in &keys {
        let user = format!("user-{}", key.kid);
        let tokens = key.sign_all(&[
            (
                json!({}),
                claims(&user, json!({ "groups": ["ops", "dev"] })),
            ),
            // One group as a string; `aud` as an array naming this service among others.
            (
                json!({}),
                claims(
                    &user,
                    json!({ "groups": "admins", "aud": ["other", "api"] }),
                ),
            ),
        ]);
        for _ in 0..2 {
            // Twice: the second time from the verified-token cache.
            let r = send(&gw, &tokens[0]);
            let seen = assert_reached(&r, &upstream, &user, "bearer");
            assert_eq!(seen.header_all("x-authgate-groups"), vec!["dev,ops"], "{r}");
        }
        let r = send(&gw, &tokens[1]);
        let seen = assert_reached(&r, &upstream, &user, "bearer");
        assert_eq!(seen.header_all("x-authgate-groups"), vec!["admins"], "{r}");
    }
}

#[test]
fn an_expired_jwt_is_refused_and_exp_is_checked_again_on_the_test_clock() {
    let dir = tempfile::tempdir().expect("tempdir");
    let py = Key::generate(&dir, Tool::PyJwt, "RS256", "py");
    let jose = Key::generate(&dir, Tool::Jose, "EdDSA", "jose");
    let upstream = Upstream::start();
    let gw = Gateway::start(
        &config(&upstream, ALL_ALGS, "leeway = \"60s\"", ""),
        &[("jwks.json", &jwks(&[&py, &jose])), ("clock", "0")],
    );
    let expired = bearer_error("api", "invalid_token", "The access token expired");
    let t = now();
    let mut accepted = Vec::new();
    for key in [&py, &jose] {
        let tokens = key.sign_all(&[
            (json!({}), claims("alice", json!({ "exp": t - 120 }))),
            // Within the leeway.
            (json!({}), claims("alice", json!({ "exp": t - 20 }))),
            (json!({}), claims("alice", json!({ "exp": t + 600 }))),
        ]);
        let r = send(&gw, &tokens[0]);
        assert_denied(&r, 401, "expired_credentials", Some(&expired), &upstream);
        assert_reached(&send(&gw, &tokens[1]), &upstream, "alice", "bearer");
        assert_reached(&send(&gw, &tokens[2]), &upstream, "alice", "bearer");
        accepted.push(tokens[2].clone());
    }
    let audit = gw.audit();
    assert!(
        audit
            .iter()
            .any(|a| a["reason"] == "expired_credentials" && a["detail"] == "token"),
        "{audit:#?}"
    );

    // 700 s later, past exp + leeway: the tokens accepted above (and cached) are refused.
    gw.set_clock(700);
    for token in &accepted {
        let r = send(&gw, token);
        assert_denied(&r, 401, "expired_credentials", Some(&expired), &upstream);
    }
}

#[test]
fn jwts_not_yet_valid_for_another_audience_or_issuer_or_missing_claims_are_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let py = Key::generate(&dir, Tool::PyJwt, "ES256", "py");
    let jose = Key::generate(&dir, Tool::Jose, "RS256", "jose");
    let upstream = Upstream::start();
    let gw = Gateway::start(
        &config(&upstream, ALL_ALGS, "", ""),
        &[("jwks.json", &jwks(&[&py, &jose]))],
    );
    let t = now();
    let cases: &[(&str, Value, Option<&str>)] = &[
        (
            "nbf in the future",
            json!({ "nbf": t + 600 }),
            Some("The access token is not valid yet"),
        ),
        ("nbf within the leeway", json!({ "nbf": t + 20 }), None),
        ("nbf in the past", json!({ "nbf": t - 20 }), None),
        (
            "another audience",
            json!({ "aud": "other" }),
            Some("The access token is not meant for this service"),
        ),
        (
            "other audiences",
            json!({ "aud": ["other", "api2"] }),
            Some("The access token is not meant for this service"),
        ),
        (
            "no audience",
            json!({ "aud": null }),
            Some("The access token lacks a required claim"),
        ),
        (
            "another issuer",
            json!({ "iss": "https://evil.test" }),
            Some("The access token comes from an untrusted issuer"),
        ),
        (
            "the issuer with a trailing slash",
            json!({ "iss": "https://idp.test/" }),
            Some("The access token comes from an untrusted issuer"),
        ),
        (
            "no issuer",
            json!({ "iss": null }),
            Some("The access token lacks a required claim"),
        ),
        (
            "no exp",
            json!({ "exp": null }),
            Some("The access token lacks a required claim"),
        ),
        (
            "exp as a string",
            json!({ "exp": (t + 600).to_string() }),
            None,
        ),
        (
            "no sub",
            json!({ "sub": null }),
            Some("The access token lacks a required claim"),
        ),
    ];
    for key in [&py, &jose] {
        let signed = key.sign_all(
            &cases
                .iter()
                .map(|(_, extra, _)| (json!({}), claims("alice", extra.clone())))
                .collect::<Vec<_>>(),
        );
        for ((what, _, refusal), token) in cases.iter().zip(&signed) {
            let r = send(&gw, token);
            match (*what, refusal) {
                ("exp as a string", _) => {
                    // RFC 7519 §2: NumericDate is a number; any refusal will do.
                    assert_invalid(&r, None, &upstream);
                }
                (_, Some(description)) => {
                    assert_invalid(&r, Some(description), &upstream);
                }
                (_, None) => {
                    assert_reached(&r, &upstream, "alice", "bearer");
                }
            }
        }
    }

    // A payload changed after signing, and a signature by another key under this kid.
    let token = py.sign(claims("alice", json!({})));
    let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
    parts[1] = URL_SAFE_NO_PAD.encode(claims("root", json!({})).to_string());
    let bad = "The access token signature is invalid";
    assert_invalid(&send(&gw, &parts.join(".")), Some(bad), &upstream);
    let impostor = Key::generate(&dir, Tool::PyJwt, "ES256", "impostor");
    let forged = impostor.sign_with(json!({ "kid": "py" }), claims("alice", json!({})));
    assert_invalid(&send(&gw, &forged), Some(bad), &upstream);
    assert_reached(&send(&gw, &token), &upstream, "alice", "bearer");
}

/// RFC 8725 §2.1 and §3.1: `alg: none`, and the HS256/RS256 confusion where the RSA public
/// key (which anyone has) is used as the HMAC secret (CVE-2015-9235, CVE-2022-29217 in
/// libraries that let the token choose).
#[test]
fn alg_none_and_hs256_signed_with_the_public_key_are_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let rsa = Key::generate(&dir, Tool::PyJwt, "RS256", "rsa");
    let upstream = Upstream::start();
    let not_accepted = "The access token is signed with an algorithm that is not accepted";

    let unsigned = |header: Value| {
        let req = json!([{ "header": header, "claims": claims("alice", json!({})) }]);
        issuer(Tool::PyJwt, &["none"], &req.to_string())
            .trim()
            .to_string()
    };
    let confused = |format: &str| {
        let req = json!([{ "key": rsa.private, "format": format, "header": { "kid": "rsa" },
                           "claims": claims("alice", json!({})) }]);
        issuer(Tool::PyJwt, &["hs256-public-pem"], &req.to_string())
            .trim()
            .to_string()
    };
    let mut none_tokens = vec![
        unsigned(json!({})),
        unsigned(json!({ "kid": "rsa" })),
        unsigned(json!({ "alg": "None", "kid": "rsa" })),
        unsigned(json!({ "alg": "NONE" })),
    ];
    // `alg: none` with a signature copied from a real token.
    let real = rsa.sign(claims("alice", json!({})));
    let signature = real.rsplit('.').next().expect("signature");
    none_tokens.push(format!("{}{signature}", unsigned(json!({ "kid": "rsa" }))));
    let hs256 = [confused("spki"), confused("pkcs1")];

    // Without HS256 configured.
    let gw = Gateway::start(
        &config(&upstream, "[\"RS256\"]", "", ""),
        &[("jwks.json", &jwks(&[&rsa]))],
    );
    for token in &none_tokens {
        assert_invalid(&send(&gw, token), Some(not_accepted), &upstream);
    }
    for token in &hs256 {
        assert_invalid(&send(&gw, token), Some(not_accepted), &upstream);
    }
    assert_reached(&send(&gw, &real), &upstream, "alice", "bearer");
    drop(gw);

    // With HS256 and its own secret next to the RSA key: the public key is still no secret.
    let secret = "a shared secret of at least 32 bytes, for HS256 only";
    let gw = Gateway::start(
        &config(
            &upstream,
            "[\"RS256\", \"HS256\"]",
            "hs256_secret_file = \"hs256.secret\"",
            "",
        ),
        &[("jwks.json", &jwks(&[&rsa])), ("hs256.secret", secret)],
    );
    for token in none_tokens.iter().chain(&hs256) {
        assert_invalid(&send(&gw, token), None, &upstream);
    }
    // Both sides: HS256 with the configured secret, and RS256, are accepted.
    let req = json!([{ "secret": secret, "alg": "HS256", "claims": claims("bob", json!({})) }]);
    let good_hs256 = issuer(Tool::PyJwt, &["sign"], &req.to_string());
    assert_reached(&send(&gw, good_hs256.trim()), &upstream, "bob", "bearer");
    assert_reached(&send(&gw, &real), &upstream, "alice", "bearer");
}

#[test]
fn an_unknown_kid_is_refused_and_a_key_added_to_the_jwks_url_is_picked_up() {
    let dir = tempfile::tempdir().expect("tempdir");
    let k1 = Key::generate(&dir, Tool::Jose, "ES256", "k1");
    let k2 = Key::generate(&dir, Tool::PyJwt, "RS256", "k2");
    let k3 = Key::generate(&dir, Tool::Jose, "EdDSA", "k3");
    let upstream = Upstream::start();
    let unknown = "The access token is signed with an unknown key";
    let t1 = k1.sign(claims("alice", json!({})));
    let t2 = k2.sign(claims("bob", json!({})));
    let t3 = k3.sign(claims("carol", json!({})));

    // A JWKS file: a key that is not in it is unknown.
    let gw = Gateway::start(
        &config(&upstream, ALL_ALGS, "", ""),
        &[("jwks.json", &jwks(&[&k1]))],
    );
    assert_reached(&send(&gw, &t1), &upstream, "alice", "bearer");
    assert_invalid(&send(&gw, &t2), Some(unknown), &upstream);
    let no_kid = k2.sign_with(json!({ "kid": null }), claims("bob", json!({})));
    assert_invalid(&send(&gw, &no_kid), None, &upstream);
    drop(gw);

    // A JWKS URL: an unknown kid makes the gateway fetch it again, at most once a second.
    let server = JwksServer::start(jwks(&[&k1]));
    let gw = Gateway::start(
        &config(
            &upstream,
            ALL_ALGS,
            &format!("jwks_url = \"{}\"\njwks_min_refetch = \"1s\"", server.url()),
            "",
        ),
        &[],
    );
    assert_reached(&send(&gw, &t1), &upstream, "alice", "bearer");
    let before = server.hits();
    let started = Instant::now();
    for _ in 0..20 {
        assert_invalid(&send(&gw, &t2), Some(unknown), &upstream);
    }
    let fetches = server.hits() - before;
    let allowed = started.elapsed().as_secs() as usize + 2;
    assert!(
        fetches <= allowed,
        "20 unknown-kid tokens in {:?} made {fetches} JWKS fetches (rate limit: 1 s)",
        started.elapsed()
    );

    server.set(jwks(&[&k1, &k2]));
    let r = eventually("the added key", || send(&gw, &t2), |r| r.status == 200);
    assert_reached(&r, &upstream, "bob", "bearer");

    // A key removed from the JWKS stops working once the JWKS is fetched again (here: because
    // of another unknown kid), even for a token that was verified and cached before.
    server.set(jwks(&[&k2]));
    let r = eventually(
        "the removed key refused",
        || {
            let _ = send(&gw, &t3);
            send(&gw, &t1)
        },
        |r| r.status != 200,
    );
    upstream.clear();
    assert_invalid(&r, Some(unknown), &upstream);
    assert_reached(&send(&gw, &t2), &upstream, "bob", "bearer");
}

/// RFC 8725 §3.10 / RFC 7515 §4.1.2-4.1.5: `jwk`, `jku` and `x5u` in a token header are the
/// attacker's choice; the keys come from the configured JWKS only, and nothing is fetched.
#[test]
fn keys_named_in_the_token_header_are_not_trusted() {
    let dir = tempfile::tempdir().expect("tempdir");
    let legit = Key::generate(&dir, Tool::PyJwt, "RS256", "legit");
    let attacker_rsa = Key::generate(&dir, Tool::PyJwt, "RS256", "attacker-rsa");
    let attacker_ed = Key::generate(&dir, Tool::Jose, "EdDSA", "attacker-ed");
    // The attacker's keys, served where a `jku`/`x5u` header points.
    let evil = JwksServer::start(jwks(&[&attacker_rsa, &attacker_ed]));
    let upstream = Upstream::start();
    let gw = Gateway::start(
        &config(&upstream, ALL_ALGS, "", ""),
        &[("jwks.json", &jwks(&[&legit]))],
    );
    let c = || claims("root", json!({}));
    let mut tokens = attacker_rsa.sign_all(&[
        (json!({ "kid": null, "jwk": attacker_rsa.public }), c()),
        (json!({ "jwk": attacker_rsa.public }), c()),
        (json!({ "kid": "legit", "jwk": attacker_rsa.public }), c()),
        (json!({ "jku": evil.url() }), c()),
        (json!({ "kid": "legit", "jku": evil.url() }), c()),
        (json!({ "kid": null, "jku": evil.url() }), c()),
        (json!({ "x5u": evil.url() }), c()),
    ]);
    tokens.extend(attacker_ed.sign_all(&[
        (json!({ "kid": null, "jwk": attacker_ed.public }), c()),
        (json!({ "jwk": attacker_ed.public }), c()),
        (json!({ "kid": "legit", "jku": evil.url() }), c()),
    ]));
    for token in &tokens {
        assert_invalid(&send(&gw, token), None, &upstream);
    }
    assert_eq!(evil.hits(), 0, "the gateway fetched a URL named in a token");
    // The legitimate key still works, with or without such headers.
    let ok = legit.sign_with(json!({ "jku": evil.url() }), claims("alice", json!({})));
    assert_reached(&send(&gw, &ok), &upstream, "alice", "bearer");
    assert_eq!(evil.hits(), 0, "the gateway fetched a URL named in a token");
}

#[test]
fn scopes_come_from_the_scope_claim() {
    let dir = tempfile::tempdir().expect("tempdir");
    let py = Key::generate(&dir, Tool::PyJwt, "EdDSA", "py");
    let jose = Key::generate(&dir, Tool::Jose, "ES256", "jose");
    let upstream = Upstream::start();
    let gw = Gateway::start(
        &config(&upstream, ALL_ALGS, "", "scopes = [\"read\"]"),
        &[("jwks.json", &jwks(&[&py, &jose]))],
    );
    let insufficient = "Bearer realm=\"api\", error=\"insufficient_scope\", error_description=\"The access token does not have the scope this resource requires\", scope=\"read\"";
    for key in [&py, &jose] {
        let tokens = key.sign_all(&[
            (json!({}), claims("alice", json!({ "scope": "read write" }))),
            (json!({}), claims("alice", json!({ "scope": "write" }))),
            (json!({}), claims("alice", json!({}))),
            (json!({}), claims("alice", json!({ "scope": "reader" }))),
            (
                json!({}),
                claims("alice", json!({ "scp": ["write", "read"] })),
            ),
        ]);
        assert_reached(&send(&gw, &tokens[0]), &upstream, "alice", "bearer");
        for token in &tokens[1..4] {
            let r = send(&gw, token);
            assert_denied(&r, 403, "insufficient_scope", Some(insufficient), &upstream);
        }
        assert_reached(&send(&gw, &tokens[4]), &upstream, "alice", "bearer");
    }
}

#[test]
fn a_comma_in_a_group_name_reaches_the_upstream_encoded() {
    let dir = tempfile::tempdir().expect("tempdir");
    let key = Key::generate(&dir, Tool::PyJwt, "RS256", "py");
    let upstream = Upstream::start();
    let gw = Gateway::start(
        &config(&upstream, ALL_ALGS, "", ""),
        &[("jwks.json", &jwks(&[&key]))],
    );
    // An identity provider that lets users name groups: `dev,admins` is one group, and an
    // upstream splitting the header on ',' must not read it as `admins`.
    let tokens = key.sign_all(&[(
        json!({}),
        claims("mallory", json!({ "groups": ["dev,admins", "100%"] })),
    )]);
    let r = send(&gw, &tokens[0]);
    let seen = assert_reached(&r, &upstream, "mallory", "bearer");
    assert_eq!(
        seen.header_all("x-authgate-groups"),
        vec!["100%25,dev%2Cadmins"],
        "{r}"
    );
}
