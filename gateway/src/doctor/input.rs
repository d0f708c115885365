//! What the user asked for, parsed once: the URL, the method, the credentials (kept as
//! [`Secret`]s) and extra headers.

use std::io::{BufRead, IsTerminal};

use anyhow::{anyhow, bail, Context, Result};
use authgate_proto::Secret;
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use http::{HeaderName, HeaderValue, Method, Uri};

use super::jwt::Jwt;
use super::tls::Tls;
use super::Args;

/// The credentials the user gave, by scheme.
#[derive(Debug)]
pub enum Credentials {
    /// `--user`: the password is a [`Secret`] and never printed.
    Basic { user: String, password: Secret },
    /// `--bearer`: the token is never printed; a JWT's claims are.
    Bearer { token: Secret, jwt: Option<Jwt> },
    /// `--header 'Authorization: ...'`: only the scheme is shown.
    Raw { scheme: String, value: Secret },
}

impl Credentials {
    /// The auth-scheme as the doctor sends it.
    pub fn scheme(&self) -> &str {
        match self {
            Self::Basic { .. } => "Basic",
            Self::Bearer { .. } => "Bearer",
            Self::Raw { scheme, .. } => scheme,
        }
    }

    /// The `Authorization` field value. `None` when it cannot be a header value (a control
    /// character in the password), which the verdict reports.
    pub fn authorization(&self) -> Option<HeaderValue> {
        let text = match self {
            // Not `encode_basic`, which refuses a ':' in the user-id: the doctor sends what
            // curl would send, so that it can show what the server makes of it.
            Self::Basic { user, password } => format!(
                "Basic {}",
                STANDARD.encode(format!("{user}:{}", password.expose()))
            ),
            Self::Bearer { token, .. } => format!("Bearer {}", token.expose()),
            Self::Raw { value, .. } => value.expose().to_owned(),
        };
        let mut v = HeaderValue::from_str(&text).ok()?;
        v.set_sensitive(true);
        Some(v)
    }
}

/// One cookie from a Netscape cookie jar. The value is a secret.
#[derive(Debug, Clone)]
pub struct Cookie {
    pub domain: String,
    pub include_subdomains: bool,
    pub path: String,
    pub secure: bool,
    /// Unix seconds; 0 means a session cookie.
    pub expires: i64,
    pub name: String,
    pub value: Secret,
}

impl Cookie {
    /// Whether a client would send this cookie to `host` and `path` (RFC 6265 §5.4,
    /// without the public-suffix check).
    pub fn matches(&self, host: &str, path: &str, https: bool) -> bool {
        let domain = self.domain.trim_start_matches('.').to_ascii_lowercase();
        let host = host.to_ascii_lowercase();
        let domain_ok =
            host == domain || (self.include_subdomains && host.ends_with(&format!(".{domain}")));
        let path_ok = path == self.path
            || (path.starts_with(&self.path)
                && (self.path.ends_with('/')
                    || path.as_bytes().get(self.path.len()) == Some(&b'/')));
        domain_ok && path_ok && (https || !self.secure)
    }
}

/// The whole request to diagnose.
#[derive(Debug)]
pub struct Request {
    pub url: Uri,
    pub method: Method,
    pub credentials: Option<Credentials>,
    /// Extra headers other than Authorization; values may be secrets (cookies, API keys).
    pub headers: Vec<(HeaderName, HeaderValue)>,
    pub cookies: Vec<Cookie>,
    pub cookie_jar: Option<String>,
    /// Trust anchors and `--insecure`.
    pub tls: Tls,
}

impl Request {
    /// Parses the arguments and reads the password or token. Errors are usage errors.
    pub fn from_args(args: &Args) -> Result<Request> {
        let url: Uri = args
            .url
            .parse()
            .with_context(|| format!("{:?} is not a URL", args.url))?;
        match url.scheme_str() {
            Some("http") | Some("https") => {}
            Some(other) => bail!("{:?}: the scheme {other:?} is not http or https", args.url),
            None => bail!(
                "{:?} has no scheme; write http://{}",
                args.url,
                args.url.trim_start_matches('/')
            ),
        }
        if url.host().is_none() {
            bail!("{:?} has no host", args.url);
        }
        let method = Method::from_bytes(args.method.to_ascii_uppercase().as_bytes())
            .map_err(|_| anyhow!("{:?} is not an HTTP method", args.method))?;

        let mut credentials = None;
        let mut headers = Vec::new();
        for h in &args.headers {
            let (name, value) = h
                .split_once(':')
                .ok_or_else(|| anyhow!("--header {h:?}: expected `Name: value`"))?;
            let name = HeaderName::from_bytes(name.trim().as_bytes())
                .map_err(|_| anyhow!("--header: {:?} is not a header name", name.trim()))?;
            let value = value.trim();
            if name == http::header::AUTHORIZATION {
                let scheme = value.split(' ').next().unwrap_or_default().to_owned();
                credentials = Some(Credentials::Raw {
                    scheme,
                    value: Secret::new(value),
                });
                continue;
            }
            let mut v = HeaderValue::from_str(value)
                .map_err(|_| anyhow!("--header {}: the value has a control character", name))?;
            v.set_sensitive(true);
            headers.push((name, v));
        }

        if let Some(user) = &args.user {
            let password = read_password(user, args.password_stdin)?;
            credentials = Some(Credentials::Basic {
                user: user.clone(),
                password,
            });
        } else if let Some(b) = &args.bearer {
            let token = match b.strip_prefix('@') {
                Some(path) => std::fs::read_to_string(path)
                    .with_context(|| format!("--bearer @{path}: cannot read the token file"))?,
                None => b.clone(),
            };
            let token = token.trim().to_owned();
            if token.is_empty() {
                bail!("--bearer: the token is empty");
            }
            let jwt = Jwt::decode(&token);
            credentials = Some(Credentials::Bearer {
                token: Secret::new(token),
                jwt,
            });
        }

        let mut cookies = Vec::new();
        let mut cookie_jar = None;
        if let Some(path) = &args.cookie_jar {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("--cookie-jar {}: cannot read", path.display()))?;
            cookies = parse_cookie_jar(&text);
            cookie_jar = Some(path.display().to_string());
        }
        let tls = Tls::new(args.cacert.as_deref(), args.insecure)?;
        Ok(Request {
            tls,
            url,
            method,
            credentials,
            headers,
            cookies,
            cookie_jar,
        })
    }
}

/// The password for `user`: a prompt without echo on a terminal, else one line of stdin.
fn read_password(user: &str, from_stdin: bool) -> Result<Secret> {
    let line = if !from_stdin && std::io::stdin().is_terminal() {
        rpassword::prompt_password(format!("Password for {user}: "))
            .context("cannot read the password")?
    } else {
        let mut line = String::new();
        std::io::stdin()
            .lock()
            .read_line(&mut line)
            .context("cannot read the password from stdin")?;
        line.trim_end_matches(['\n', '\r']).to_owned()
    };
    Ok(Secret::new(line))
}

/// Netscape cookie-jar lines (curl's `-c` format): seven TAB-separated fields; `#HttpOnly_`
/// prefixes a domain; other `#` lines are comments. Bad lines are skipped.
pub fn parse_cookie_jar(text: &str) -> Vec<Cookie> {
    text.lines()
        .filter_map(|line| {
            let line = line.strip_prefix("#HttpOnly_").unwrap_or(line);
            if line.starts_with('#') || line.trim().is_empty() {
                return None;
            }
            let f: Vec<&str> = line.split('\t').collect();
            let [domain, sub, path, secure, expires, name, value] = f.as_slice() else {
                return None;
            };
            Some(Cookie {
                domain: (*domain).to_owned(),
                include_subdomains: sub.eq_ignore_ascii_case("TRUE"),
                path: (*path).to_owned(),
                secure: secure.eq_ignore_ascii_case("TRUE"),
                expires: expires.parse().unwrap_or(0),
                name: (*name).to_owned(),
                value: Secret::new(*value),
            })
        })
        .collect()
}
