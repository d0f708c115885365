//! From what was seen to one verdict: the most likely cause, its fix, and the evidence.
//!
//! The order of the checks is the order of likelihood: a request that never reached the
//! server, then redirects that drop credentials, then what the server's 401 itself says
//! (no or malformed challenge), then what was sent against what was asked (no credentials,
//! another scheme, an encoding problem), then token times and audiences, then refused
//! credentials: first whether they pass at a related URL (another realm, or another user
//! list under the same realm name), else simply wrong. The first match is the cause;
//! everything else seen stays evidence.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use authgate_proto::{Challenge, Problem};

use super::challenge::{self, Issue};
use super::input::{Credentials, Request};
use super::jwt::Jwt;
use super::probe::{
    origin, Answer, DigestUse, FetchError, Findings, Hop, Probe, RedirectNote, Related, Trace,
};
use super::tls::TlsProblem;

/// Clock differences below this are normal (RFC 7519 §4.1.4 "some small leeway").
const SKEW: i64 = 60;

/// The cause of the outcome, with a stable machine code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cause {
    Ok,
    Unreachable,
    DnsFailure,
    TlsError,
    RedirectLoop,
    RedirectDropsCredentials,
    HttpsDowngrade,
    NoChallenge,
    MalformedChallenge,
    UnanswerableScheme,
    NoCredentials,
    SchemeMismatch,
    UserContainsColon,
    CharsetMismatch,
    MalformedCredentials,
    WrongCredentials,
    WrongRealm,
    CredentialsNotValidHere,
    InvalidToken,
    TokenExpired,
    TokenNotYetValid,
    WrongAudience,
    WrongIssuer,
    ClockSkew,
    InsufficientScope,
    StaleCookie,
    StaleNonce,
    Forbidden,
    NotFound,
    ProxyAuthRequired,
    ServerError,
    Denied,
}

impl Cause {
    /// The stable code printed in `--json` as `verdict.cause`.
    pub fn code(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::Unreachable => "unreachable",
            Self::DnsFailure => "dns_failure",
            Self::TlsError => "tls_error",
            Self::RedirectLoop => "redirect_loop",
            Self::RedirectDropsCredentials => "redirect_drops_credentials",
            Self::HttpsDowngrade => "https_downgrade",
            Self::NoChallenge => "no_challenge",
            Self::MalformedChallenge => "malformed_challenge",
            Self::UnanswerableScheme => "unanswerable_scheme",
            Self::NoCredentials => "no_credentials",
            Self::SchemeMismatch => "scheme_mismatch",
            Self::UserContainsColon => "user_contains_colon",
            Self::CharsetMismatch => "charset_mismatch",
            Self::MalformedCredentials => "malformed_credentials",
            Self::WrongCredentials => "wrong_credentials",
            Self::WrongRealm => "wrong_realm",
            Self::CredentialsNotValidHere => "credentials_not_valid_here",
            Self::InvalidToken => "invalid_token",
            Self::TokenExpired => "token_expired",
            Self::TokenNotYetValid => "token_not_yet_valid",
            Self::WrongAudience => "wrong_audience",
            Self::WrongIssuer => "wrong_issuer",
            Self::ClockSkew => "clock_skew",
            Self::InsufficientScope => "insufficient_scope",
            Self::StaleCookie => "stale_cookie",
            Self::StaleNonce => "stale_nonce",
            Self::Forbidden => "forbidden",
            Self::NotFound => "not_found",
            Self::ProxyAuthRequired => "proxy_auth_required",
            Self::ServerError => "server_error",
            Self::Denied => "denied",
        }
    }
}

/// The doctor's answer.
#[derive(Debug, Clone)]
pub struct Verdict {
    pub cause: Cause,
    /// One sentence: what went wrong.
    pub sentence: String,
    /// What to do about it.
    pub fix: String,
    /// What was seen, most relevant first.
    pub evidence: Vec<String>,
    /// The final status of the decisive attempt.
    pub status: Option<u16>,
    /// The challenges of the decisive attempt's final answer.
    pub challenges: challenge::Report,
}

impl Verdict {
    /// 0 access works, 1 denied with a diagnosis, 2 could not connect.
    pub fn exit_code(&self) -> u8 {
        match self.cause {
            Cause::Ok => 0,
            Cause::Unreachable | Cause::DnsFailure | Cause::TlsError => 2,
            _ => 1,
        }
    }
}

/// What the server said about the refusal, gathered from every place it can say it.
#[derive(Debug, Default)]
struct Said {
    /// authgate's `reason` (problem body or plain-text body).
    reason: Option<String>,
    problem: Option<Problem>,
    /// RFC 6750 §3 `error`, `error_description`, `scope` of a Bearer challenge.
    bearer_error: Option<String>,
    bearer_description: Option<String>,
    bearer_scope: Option<String>,
}

impl Said {
    fn of(answer: &Answer, challenges: &challenge::Report) -> Said {
        let mut said = Said::default();
        let content_type = answer.header("content-type").unwrap_or_default();
        if content_type.contains("json") {
            if let Ok(p) = Problem::parse(&answer.body) {
                said.reason = p
                    .extensions
                    .get("reason")
                    .and_then(|r| r.as_str())
                    .map(str::to_owned)
                    .or_else(|| {
                        p.type_uri
                            .strip_prefix(crate::respond::PROBLEM_TYPE_BASE)
                            .map(str::to_owned)
                    });
                said.problem = Some(p);
            }
        } else if content_type.starts_with("text/plain") {
            // authgate's plain-text body has a `reason: <code>` line.
            let body = String::from_utf8_lossy(&answer.body);
            said.reason = body
                .lines()
                .find_map(|l| l.strip_prefix("reason: "))
                .map(|r| r.trim().to_owned());
        }
        if let Some(b) = challenges.find("Bearer") {
            said.bearer_error = b.get("error").map(str::to_owned);
            said.bearer_description = b.get("error_description").map(str::to_owned);
            said.bearer_scope = b.get("scope").map(str::to_owned);
        }
        said
    }

    /// Every free text the server gave, lower-case, for keyword matching.
    fn text(&self) -> String {
        let mut t = String::new();
        for s in [
            self.bearer_description.as_deref(),
            self.bearer_error.as_deref(),
        ]
        .into_iter()
        .flatten()
        {
            t.push_str(s);
            t.push(' ');
        }
        if let Some(p) = &self.problem {
            t.push_str(&p.title);
            t.push(' ');
            t.push_str(p.detail.as_deref().unwrap_or_default());
        }
        t.to_ascii_lowercase()
    }
}

struct Builder {
    evidence: Vec<String>,
}

impl Builder {
    fn say(&mut self, line: impl Into<String>) {
        let line = line.into();
        if !self.evidence.contains(&line) {
            self.evidence.push(line);
        }
    }
}

/// Decides the cause for `findings`.
pub fn decide(request: &Request, findings: &Findings) -> Verdict {
    let trace = findings.decisive();
    let answer = trace.answer();
    // RFC 9110 §15.5.8: a 407 carries the proxy's challenges in Proxy-Authenticate.
    let challenges = answer
        .map(|a| {
            if a.status == http::StatusCode::PROXY_AUTHENTICATION_REQUIRED {
                challenge::Report::proxy_of(a)
            } else {
                challenge::Report::of(a)
            }
        })
        .unwrap_or_default();
    let mut b = Builder {
        evidence: Vec::new(),
    };
    if request.tls.skipped.is_some() {
        let problems = request.tls.skipped_problems();
        b.say(if request.tls.unverified() == 0 {
            "WARNING: --insecure: TLS certificates are not verified (no server presented one)"
                .to_owned()
        } else if problems.is_empty() {
            "WARNING: --insecure: TLS certificates were NOT verified (they would have passed)".to_owned()
        } else {
            format!(
                "WARNING: --insecure: TLS certificates were NOT verified; a verifying client would refuse: {}",
                problems.join("; ")
            )
        });
    }
    let (cause, sentence, fix) = diagnose(request, findings, trace, &challenges, &mut b);
    general_evidence(request, findings, trace, &challenges, &mut b);
    Verdict {
        cause,
        sentence,
        fix,
        evidence: b.evidence,
        status: trace.status(),
        challenges,
    }
}

type Diagnosis = (Cause, String, String);

fn diagnose(
    request: &Request,
    findings: &Findings,
    trace: &Trace,
    challenges: &challenge::Report,
    b: &mut Builder,
) -> Diagnosis {
    let Some(last) = trace.last() else {
        return (
            Cause::Unreachable,
            "No request was sent.".into(),
            "Check the URL.".into(),
        );
    };
    let answer = match &last.outcome {
        Ok(a) => a,
        Err(e) => return unreachable(findings, trace, e, b),
    };
    let status = answer.status.as_u16();
    if trace.too_many_redirects {
        return (
            Cause::RedirectLoop,
            format!(
                "The server redirects more than {} times: the redirects loop (often a login page that redirects to itself, or http<->https and slash rules fighting).",
                super::probe::MAX_REDIRECTS
            ),
            "Open each Location below and fix the rule that sends the client back; clear the site's cookies if a login session is involved.".into(),
        );
    }

    if let Some(d) = stale_cookie(request, findings, b) {
        return d;
    }
    if answer.status.is_success() || answer.status.is_redirection() {
        let mut sentence = format!("Access works: the final answer is {status}");
        if let Some(c) = &request.credentials {
            if findings.anonymous.status().is_some_and(|s| s < 400) {
                sentence.push_str(", and the resource does not even need credentials");
            } else {
                sentence.push_str(&format!(" with the {} credentials given", c.scheme()));
            }
        }
        sentence.push('.');
        return (
            Cause::Ok,
            sentence,
            "Nothing to fix here; if a browser still fails, compare its request (URL, scheme, cookies) with this one.".into(),
        );
    }

    let denied = matches!(status, 401 | 403 | 407);
    // Redirects first: after a cross-origin or https->http hop, no careful client sends
    // the credentials, so whatever the last server says follows from that.
    if denied && trace.hops.len() > 1 {
        let start = origin(&request.url);
        let end = origin(&last.url);
        if trace
            .notes()
            .any(|(_, n)| matches!(n, RedirectNote::Downgrade))
        {
            b.say(format!(
                "the redirect chain goes from https to http before the {status}"
            ));
            return (
                Cause::HttpsDowngrade,
                format!("A redirect goes from https to http ({end}), so clients drop the credentials there and the server answers {status}."),
                "Make the server redirect to https (fix the Location it builds, often a proxy not passing X-Forwarded-Proto), or start from the final https URL.".into(),
            );
        }
        if start != end {
            b.say(format!(
                "the {status} comes from {end}, not from {start} where the request started; Authorization was {} there",
                if last.sent_credentials { "sent" } else { "not sent" }
            ));
            return (
                Cause::RedirectDropsCredentials,
                format!("The request is redirected from {start} to another origin, {end}, which answers {status}: browsers and curl drop the Authorization header on such a redirect."),
                format!("Use the final URL ({}) directly, or make the server redirect within its own origin; with curl, --location-trusted sends credentials across origins (only if you trust {end}).", last.url),
            );
        }
    }

    let said = Said::of(answer, challenges);
    match status {
        401 => diagnose_401(request, findings, last.sent_credentials, answer, challenges, &said, b),
        403 => {
            if said.bearer_error.as_deref() == Some("insufficient_scope")
                || said.reason.as_deref() == Some("insufficient_scope")
            {
                let needs = said.bearer_scope.clone().unwrap_or_else(|| "(not named)".into());
                b.say(format!("the Bearer challenge says error=\"insufficient_scope\", scope=\"{needs}\""));
                return (
                    Cause::InsufficientScope,
                    format!("The token is valid but lacks the scope this resource needs ({needs})."),
                    "Ask for a token with that scope (RFC 6750 §3.1); retrying with the same token will not help.".into(),
                );
            }
            let who = if last.sent_credentials {
                "The server accepted who you are but does not allow you here (403)"
            } else {
                "The server refuses the request outright (403) without asking for credentials: the rule is not about authentication (IP allow-lists, a WAF, CSRF or a missing permission)"
            };
            (
                Cause::Forbidden,
                format!("{who}."),
                "Ask the server's owner to grant access (for authgate: add the user or one of its groups to the route's `allow`); retrying with the same credentials will not help (RFC 9110 §15.5.4).".into(),
            )
        }
        407 => proxy_auth(request, last, challenges, b),
        404 => (
            Cause::NotFound,
            "The server answers 404: the URL is wrong, or the server hides a resource you may not see (RFC 9110 §11.4 allows that).".into(),
            "Check the path (case, trailing slash, prefix behind a proxy); if it should exist, check it with credentials that are allowed to see it.".into(),
        ),
        400 => match said.reason.as_deref() {
            Some(r @ ("malformed_authorization_header" | "duplicate_authorization" | "malformed_credentials")) => (
                Cause::MalformedCredentials,
                format!("The server cannot read the Authorization header ({}).", plain_reason(r)),
                "Send exactly one Authorization header with a scheme from WWW-Authenticate and a correctly encoded value.".into(),
            ),
            _ => (
                Cause::Denied,
                "The server rejects the request itself (400), before any authentication.".into(),
                "Read the body below; check the URL, headers and method.".into(),
            ),
        },
        s if s >= 500 => (
            Cause::ServerError,
            format!("The server fails ({s}): this is not an authentication problem."),
            "Fix or start the server (or the upstream behind the proxy); credentials are not the issue.".into(),
        ),
        s => (
            Cause::Denied,
            format!("The server answers {s}."),
            "Read the evidence below.".into(),
        ),
    }
}

/// A 407 (RFC 9110 §15.5.8): a proxy, not the server, wants credentials, and says how in
/// `Proxy-Authenticate` (§11.7.1). The fix is the client's proxy settings.
fn proxy_auth(
    request: &Request,
    last: &Hop,
    challenges: &challenge::Report,
    b: &mut Builder,
) -> Diagnosis {
    let here = origin(&last.url);
    b.say(format!(
        "the doctor connects to {here} directly (it uses no proxy settings), so the 407 comes from {here} itself or from a proxy that intercepts the connection"
    ));
    if challenges.raw.is_empty() {
        b.say("the 407 carries no Proxy-Authenticate field, which a proxy MUST send with it (RFC 9110 §15.5.8)");
    }
    for i in challenges.significant() {
        b.say(format!("Proxy-Authenticate: {}", i.text()));
    }
    if last.sent_credentials {
        b.say("the Authorization header sent is for the server; a proxy reads only Proxy-Authorization (RFC 9110 §11.7.2)");
    }
    let asks = match challenges.challenges.first() {
        Some(c) => format!(
            ": it asks for {}{} in Proxy-Authenticate",
            c.scheme,
            c.realm()
                .map(|r| format!(" (realm \"{r}\")"))
                .unwrap_or_default()
        ),
        None => String::new(),
    };
    let scheme_flag = match challenges.challenges.first() {
        Some(c) if c.is_scheme("Digest") => " --proxy-digest",
        Some(c) if c.is_scheme("Negotiate") => " --proxy-negotiate",
        Some(c) if c.is_scheme("NTLM") => " --proxy-ntlm",
        _ => "",
    };
    // curl reads only the lower-case `http_proxy` (HTTP_PROXY is left alone since
    // "httpoxy", CVE-2016-5385); `HTTPS_PROXY` works in either case.
    let env = if request.url.scheme_str() == Some("https") {
        "HTTPS_PROXY"
    } else {
        "http_proxy"
    };
    (
        Cause::ProxyAuthRequired,
        format!("A proxy wants its own credentials (407 Proxy Authentication Required){asks}; these are the proxy's credentials, not the server's."),
        format!("Configure the client's proxy credentials, not the server's: `curl --proxy http://PROXY:PORT --proxy-user NAME{scheme_flag} URL`, or `{env}=http://NAME:PASSWORD@PROXY:PORT` in the environment; ask your network admin for the proxy account, or set NO_PROXY for hosts that should bypass it."),
    )
}

fn unreachable(findings: &Findings, trace: &Trace, e: &FetchError, b: &mut Builder) -> Diagnosis {
    let last_url = trace.last().map(|h| h.url.to_string()).unwrap_or_default();
    let via = if trace.hops.len() > 1 {
        format!(" (reached through {} redirect(s))", trace.hops.len() - 1)
    } else {
        String::new()
    };
    match e {
        FetchError::Tls { problem, detail } => {
            b.say(format!("TLS with {last_url}: {detail}"));
            let host = trace
                .last()
                .and_then(|h| super::probe::host_port(&h.url))
                .map(|(h, _)| h)
                .unwrap_or_default();
            let (what, fix) = match problem {
                TlsProblem::UnknownIssuer => (
                    "is not issued by an authority this machine trusts (a self-signed certificate, a private CA, or a server that does not send its intermediate certificates)".to_owned(),
                    "If the CA is yours, trust it: `authgate doctor URL --cacert ca.pem` (curl --cacert ca.pem), or install it in the system store (update-ca-certificates); for a public site, make the server send the full chain (nginx: ssl_certificate fullchain.pem).".to_owned(),
                ),
                TlsProblem::CaAsServerCert => (
                    "is a CA certificate (basicConstraints CA:TRUE, as `openssl req -x509` makes by default), which rustls and other webpki-based clients refuse as a server's own certificate even when it is trusted (curl with OpenSSL accepts it with --cacert)".to_owned(),
                    "Issue the server a leaf certificate (CA:FALSE, extendedKeyUsage serverAuth, the host in subjectAltName) signed by a CA, and trust that CA with --cacert; `mkcert` or `openssl x509 -req -CA` do this.".to_owned(),
                ),
                TlsProblem::Expired { not_after } => {
                    let now = unix(findings.local_time);
                    match not_after.and_then(|n| i64::try_from(n).ok()) {
                        Some(n) => {
                            b.say(format!(
                                "the certificate's notAfter is {} ({} by this machine's clock)",
                                time(n),
                                relative(n - now)
                            ));
                            (
                                format!("expired on {} ({} ago)", time(n), signed_duration(now - n)),
                                format!("Renew the certificate, which expired on {} (certbot renew, or reissue it; then reload the server); if that date should still be in the future, check this machine's clock (timedatectl).", time(n)),
                            )
                        }
                        None => (
                            "has expired".to_owned(),
                            "Renew the certificate (certbot renew, then reload the server); if it should still be valid, check this machine's clock.".to_owned(),
                        ),
                    }
                }
                TlsProblem::NotYetValid => (
                    "is not valid yet".to_owned(),
                    "Check this machine's clock (timedatectl); if the clock is right, the server was given a certificate issued for later.".to_owned(),
                ),
                TlsProblem::NameMismatch => (
                    format!("does not name the host {host}"),
                    format!("Use the host name the certificate was issued for, or reissue it with {host} in its subjectAltName; an IP address must be listed as an IP SAN."),
                ),
                TlsProblem::Revoked => (
                    "is revoked".to_owned(),
                    "Install a new certificate on the server.".to_owned(),
                ),
                TlsProblem::NotTls => {
                    return (
                        Cause::TlsError,
                        format!("{last_url}{via} does not speak TLS on this port: the answer to the TLS handshake is not TLS (often plain HTTP)."),
                        "Use http:// for this port, or the server's https port.".into(),
                    )
                }
                TlsProblem::Refused | TlsProblem::Other => {
                    return (
                        Cause::TlsError,
                        format!("TLS with {last_url}{via} fails: {detail}."),
                        "Compare with `curl -v` or `openssl s_client -connect HOST:PORT -servername HOST`: the server may need a newer TLS version, another cipher, the right SNI name, or a client certificate.".into(),
                    )
                }
            };
            (
                Cause::TlsError,
                format!("The server's TLS certificate {what}, so a verifying client stops before sending the request ({last_url}{via})."),
                fix,
            )
        }
        FetchError::Connect(detail) => {
            let host = trace.last().and_then(|h| super::probe::host_port(&h.url));
            let dns = host.as_ref().and_then(|(h, p)| {
                findings
                    .resolved
                    .iter()
                    .find(|r| &r.host == h && r.port == *p)
                    .and_then(|r| r.addresses.as_ref().err())
            });
            if let (Some((h, _)), Some(err)) = (&host, dns) {
                b.say(format!("{h} does not resolve: {err}"));
                return (
                    Cause::DnsFailure,
                    format!("The host {h} does not resolve, so no request reached any server."),
                    "Check the host name for typos and your DNS/VPN settings (`getent hosts` shows what the system resolves).".into(),
                );
            }
            b.say(format!("connecting to {last_url}: {detail}"));
            (
                Cause::Unreachable,
                format!("Nothing answers at {last_url}{via}: the connection failed ({}).", short(detail)),
                "Start the server or fix the host and port; the addresses your host resolves to are listed below.".into(),
            )
        }
        FetchError::Timeout | FetchError::Protocol(_) => (
            Cause::Unreachable,
            format!("{last_url}{via}: {e}."),
            "Check that the port speaks plain HTTP and the server is not overloaded or firewalled."
                .into(),
        ),
    }
}

/// The last, most specific part of an error chain ("Connection refused (os error 111)").
fn short(chain: &str) -> &str {
    chain.rsplit(": ").next().unwrap_or(chain)
}

/// With a cookie jar: the cookies fail where the same request without them works.
fn stale_cookie(request: &Request, findings: &Findings, b: &mut Builder) -> Option<Diagnosis> {
    let with = findings.cookies.as_ref()?;
    let with_status = with.status()?;
    let without = findings.credentials.as_ref().unwrap_or(&findings.anonymous);
    let without_status = without.status()?;
    let now = unix(findings.local_time);
    let expired: Vec<&str> = request
        .cookies
        .iter()
        .filter(|c| c.expires != 0 && c.expires < now)
        .map(|c| c.name.as_str())
        .collect();
    if !expired.is_empty() {
        b.say(format!(
            "cookies past their expiry date in the jar: {}",
            expired.join(", ")
        ));
    }
    b.say(format!(
        "with the cookies from the jar: {with_status}; without them: {without_status}"
    ));
    if with_status >= 400 && without_status < 400 {
        return Some((
            Cause::StaleCookie,
            format!("An old cookie is what fails: with the jar's cookies the server answers {with_status}, without them {without_status}."),
            format!(
                "Clear the site's cookies (the browser's \"clear site data\" for this host){}.",
                request
                    .cookie_jar
                    .as_deref()
                    .map(|j| format!(", or delete the stale lines from {j}"))
                    .unwrap_or_default()
            ),
        ));
    }
    None
}

#[allow(clippy::too_many_arguments)]
fn diagnose_401(
    request: &Request,
    findings: &Findings,
    sent: bool,
    answer: &Answer,
    challenges: &challenge::Report,
    said: &Said,
    b: &mut Builder,
) -> Diagnosis {
    if let Some(r) = &said.reason {
        b.say(format!("the server's reason: {r} ({})", plain_reason(r)));
    }
    if let Some(e) = &said.bearer_error {
        b.say(format!(
            "the Bearer challenge says error=\"{e}\" ({}){}",
            plain_bearer_error(e),
            said.bearer_description
                .as_deref()
                .map(|d| format!(", error_description=\"{d}\""))
                .unwrap_or_default()
        ));
    }
    if challenges.issues.contains(&Issue::Missing) {
        let sent_words = if sent {
            "; the credentials sent were refused, but the client cannot tell which scheme the server wants"
        } else {
            ""
        };
        return (
            Cause::NoChallenge,
            format!("The server answers 401 without a WWW-Authenticate challenge, so browsers never prompt and clients cannot tell how to authenticate{sent_words} (RFC 9110 §15.5.2)."),
            "Make the server send a challenge with every 401, e.g. `WWW-Authenticate: Basic realm=\"site\", charset=\"UTF-8\"` (nginx: auth_basic \"site\"; instead of `return 401`); or send credentials with the scheme its documentation names.".into(),
        );
    }

    let creds = request.credentials.as_ref();
    if !sent || creds.is_none() {
        let schemes = challenges.schemes().join(", ");
        if let (false, Some(form)) = (challenges.any_known(), challenges.sign_in_form()) {
            return (
                Cause::NoCredentials,
                format!("The request carried no credentials, and this URL wants a browser session: sign in on the form at {form}."),
                format!("Open the URL in a browser and sign in at {form}; to check a session from here, export the browser's cookies and pass them with --cookie-jar FILE."),
            );
        }
        if !challenges.challenges.is_empty() && !challenges.any_known() {
            return (
                Cause::UnanswerableScheme,
                format!("The server only offers the scheme(s) {schemes}, which browsers, curl and common clients cannot answer."),
                "Make the server offer Basic or Bearer first (RFC 9110 §11.6.1), or use the client library its documentation names.".into(),
            );
        }
        let significant: Vec<&Issue> = challenges.significant().collect();
        if let Some(first) = significant.first() {
            for i in &significant {
                b.say(format!("challenge: {}", i.text()));
            }
            return (
                Cause::MalformedChallenge,
                format!("The request carried no credentials, and the server's challenge ({schemes}) breaks the rules: {}; strict clients may not prompt or may not answer it.", first.text()),
                format!("Fix the server's WWW-Authenticate (e.g. `{}`), and send credentials: {}.", example_challenge(challenges), how_to_send(challenges)),
            );
        }
        return (
            Cause::NoCredentials,
            format!("The request carried no credentials, and the server asks for {schemes} authentication."),
            format!("Send credentials: {}.", how_to_send(challenges)),
        );
    }
    let Some(creds) = creds else {
        return (
            Cause::Denied,
            "The server answers 401.".into(),
            "Read the evidence below.".into(),
        );
    };
    let sent_scheme = findings.sent_scheme().unwrap_or_else(|| creds.scheme());
    match &findings.digest {
        Some(DigestUse::Answered {
            realm,
            algorithm,
            stale_renewed,
        }) => {
            b.say(format!("the server asks for Digest, so the doctor answered it with the password given (algorithm {algorithm}, realm \"{realm}\"); the password itself is never sent"));
            if *stale_renewed {
                b.say("the first Digest answer came back with stale=true: the nonce had expired, not the password; the doctor retried with the server's new nonce, as browsers and curl do without asking (a harmless renewal, RFC 7616 §3.3)");
            }
        }
        Some(DigestUse::Unanswerable(why)) => {
            b.say(format!(
                "the server asks for Digest, which the doctor cannot answer here: {why}"
            ));
        }
        None => {}
    }

    // authgate says exactly why; trust it over any heuristic.
    match said.reason.as_deref() {
        Some("unsupported_scheme") => return scheme_mismatch(sent_scheme, challenges),
        Some("malformed_credentials") => {
            if let Some(d) = basic_encoding(creds, challenges, b) {
                return d;
            }
            return (
                Cause::MalformedCredentials,
                "The server cannot decode the credentials (not canonical base64 of user:password in UTF-8, or a control character).".into(),
                "Check the user name and password for control characters; let the client encode them (curl -u user).".into(),
            );
        }
        Some("missing_credentials") => {
            return (
                Cause::NoCredentials,
                "The credentials did not reach the server: it saw no Authorization header (a proxy in between may strip it).".into(),
                "Check proxies between you and the server (nginx: proxy_set_header Authorization; Apache: CGIPassAuth On).".into(),
            )
        }
        _ => {}
    }

    if !challenges.challenges.is_empty() && challenges.find(sent_scheme).is_none() {
        return scheme_mismatch(sent_scheme, challenges);
    }
    if sent_scheme.eq_ignore_ascii_case("Basic") {
        if let Some(d) = basic_encoding(creds, challenges, b) {
            return d;
        }
    }
    if let Credentials::Bearer { jwt, .. } = creds {
        return diagnose_token(jwt.as_ref(), findings, answer, said, request, b);
    }
    if let Some(d) = digest_stale(findings, challenges, b) {
        return d;
    }
    if let Some(related) = &findings.related {
        probe_evidence(related, b);
        if let Some(d) = other_protection_space(creds, related) {
            return d;
        }
    }
    let (user_words, fix) = match creds {
        Credentials::Basic { user, .. } => (
            format!("for user \"{user}\""),
            "Check the user name and password (retype the password; check Caps Lock and keyboard layout); on an authgate server, `authgate check` shows whether the user is in the loaded htpasswd file.".to_owned(),
        ),
        _ => (
            format!("({sent_scheme})"),
            "Check the credentials' value and whether they have expired or been revoked.".to_owned(),
        ),
    };
    (
        Cause::WrongCredentials,
        format!("The server refused the credentials {user_words}: the password is wrong, the user is unknown, or the credentials expired."),
        fix,
    )
}

/// The refused credentials work at a related URL of the same origin: they belong to another
/// realm (RFC 9110 §11.5: each realm is its own protection space), or the server keeps
/// another user list for this path under the same realm name.
fn other_protection_space(creds: &Credentials, related: &Related) -> Option<Diagnosis> {
    let hit = related.probes.iter().find(|p| p.accepted())?;
    let path = hit.url.path();
    let here = quoted(related.realm.as_deref());
    let there = quoted(hit.realm.as_deref());
    let user = match creds {
        Credentials::Basic { user, .. } => format!("user \"{user}\""),
        _ => "this user".to_owned(),
    };
    let rfc = if related.scheme == "Basic" {
        "RFC 7617 §2.2"
    } else {
        "RFC 9110 §11.5"
    };
    if hit.realm != related.realm {
        return Some((
            Cause::WrongRealm,
            format!("Your credentials work in realm {there} (at {path}) but this URL is in realm {here}: they belong to another protection space ({rfc})."),
            format!("Use the credentials for realm {here}, or ask the server's admin to give {user} access there."),
        ));
    }
    Some((
        Cause::CredentialsNotValidHere,
        format!("Your credentials work at {path} but not here, though both answer with realm {here}: the server checks a different user list for this path under the same realm name."),
        format!("Ask the server's admin to add {user} to the user list that protects this path, or to give the two areas different realm names so that clients keep their credentials apart (nginx: two locations with the same `auth_basic {here}` but different `auth_basic_user_file`s is the usual cause)."),
    ))
}

/// `"realm"`, or `(none)` when the challenge had no realm.
fn quoted(realm: Option<&str>) -> String {
    realm.map_or_else(|| "(none)".to_owned(), |r| format!("\"{r}\""))
}

/// One evidence line per related URL tried.
fn probe_evidence(related: &Related, b: &mut Builder) {
    let realm = quoted(related.realm.as_deref());
    b.say(format!(
        "this URL's {} realm is {realm}; {} related URL(s) of the same origin tried with the same credentials (at most {})",
        related.scheme,
        related.probes.len(),
        super::probe::MAX_RELATED
    ));
    for p in &related.probes {
        b.say(probe_line(p));
    }
}

fn probe_line(p: &Probe) -> String {
    let status = |r: &Result<u16, FetchError>| match r {
        Ok(s) => s.to_string(),
        Err(e) => e.to_string(),
    };
    let realm = p
        .realm
        .as_deref()
        .map(|r| format!(", realm \"{r}\""))
        .unwrap_or_default();
    let with = match (&p.with_credentials, &p.skipped) {
        (Some(w), _) => format!("with the credentials: {}", status(w)),
        (None, Some(why)) => format!("credentials not sent: {why}"),
        (None, None) => "credentials not sent".to_owned(),
    };
    format!(
        "probe {} ({}): without credentials: {}{realm}; {with}",
        p.url.path(),
        p.relation.code().replace('_', " "),
        status(&p.anonymous)
    )
}

fn scheme_mismatch(sent: &str, challenges: &challenge::Report) -> Diagnosis {
    let schemes = challenges.schemes().join(", ");
    let asked = if schemes.is_empty() {
        "another scheme".to_owned()
    } else {
        schemes
    };
    (
        Cause::SchemeMismatch,
        format!("The request sent {sent} credentials, but the server asks for {asked}."),
        format!(
            "Send credentials with a scheme the server offers: {}.",
            how_to_send(challenges)
        ),
    )
}

/// Basic user names that cannot be sent as given (RFC 7617 §2, §2.1).
fn basic_encoding(
    creds: &Credentials,
    challenges: &challenge::Report,
    b: &mut Builder,
) -> Option<Diagnosis> {
    let Credentials::Basic { user, password } = creds else {
        return None;
    };
    if user.contains(':') {
        return Some((
            Cause::UserContainsColon,
            "The user name contains ':', which Basic cannot carry: the server reads everything after the first ':' as the password (RFC 7617 §2).".into(),
            "Pass only the user name to --user (the password is asked for separately), or choose a user name without ':'.".into(),
        ));
    }
    let non_ascii = !user.is_ascii() || !password.expose().is_ascii();
    let utf8 = challenges
        .find("Basic")
        .and_then(|c| c.get("charset"))
        .is_some_and(|c| c.eq_ignore_ascii_case("UTF-8"));
    if non_ascii && !utf8 {
        b.say("the user name or password has non-ASCII characters and the Basic challenge has no charset=\"UTF-8\"");
        return Some((
            Cause::CharsetMismatch,
            "The user name or password has non-ASCII characters, and the server does not say it reads them as UTF-8 (no charset=\"UTF-8\" in its Basic challenge, RFC 7617 §2.1): it may decode them as Latin-1 and refuse.".into(),
            "Try credentials in plain ASCII, or make the server advertise and use UTF-8 (authgate does).".into(),
        ));
    }
    None
}

/// Digest `stale=true` (RFC 7616 §3.3): the response was right for the password, only the
/// nonce had expired. A client that computes Digest itself retries with the new nonce (the
/// doctor did); a Digest header given with `--header` was computed once, for an old nonce.
fn digest_stale(
    findings: &Findings,
    challenges: &challenge::Report,
    b: &mut Builder,
) -> Option<Diagnosis> {
    let d = challenges.find("Digest")?;
    if !d
        .get("stale")
        .is_some_and(|s| s.eq_ignore_ascii_case("true"))
    {
        return None;
    }
    b.say("the Digest challenge says stale=true: the credentials were right but the nonce expired; clients retry with the new nonce without asking (RFC 7616 §3.3)");
    if findings.digest.is_some() {
        // The doctor computed Digest itself and retried once: still stale means the
        // server expires nonces faster than a request round trip.
        return Some((
            Cause::StaleNonce,
            "The server calls every nonce stale (stale=true), even one used right after it was issued: its nonce lifetime is shorter than a round trip or its clock jumps.".into(),
            "Raise the server's nonce lifetime (Apache: AuthDigestNonceLifetime, default 300 s) and check its clock.".into(),
        ));
    }
    Some((
        Cause::StaleNonce,
        "The Digest Authorization header was computed for a nonce that has since expired (stale=true): the password was right, and the server only asks for its new nonce, a harmless renewal that browsers and curl --digest do by themselves; a Digest header copied from another request stops working this way.".into(),
        "Let the client compute Digest for each request (`curl --digest -u NAME URL`, or `authgate doctor URL --user NAME`) instead of replaying an Authorization: Digest header.".into(),
    ))
}

fn diagnose_token(
    jwt: Option<&Jwt>,
    findings: &Findings,
    answer: &Answer,
    said: &Said,
    request: &Request,
    b: &mut Builder,
) -> Diagnosis {
    let local = unix(findings.local_time);
    let server = answer.date().map(unix);
    let skew = server.map(|s| s - local);
    if let Some(s) = skew {
        if s.abs() > SKEW {
            b.say(format!(
                "the server's clock (Date header) is {} {} this machine's",
                signed_duration(s.abs()),
                if s > 0 { "ahead of" } else { "behind" }
            ));
        }
    }
    let text = said.text();
    if let Some(jwt) = jwt {
        let server_now = server.unwrap_or(local);
        if let Some(exp) = jwt.time("exp") {
            b.say(format!(
                "the token's exp is {} ({} by this machine's clock{})",
                time(exp),
                relative(exp - local),
                server
                    .map(|s| format!(", {} by the server's Date", relative(exp - s)))
                    .unwrap_or_default()
            ));
            if exp <= local {
                return (
                    Cause::TokenExpired,
                    format!(
                        "The token expired {} ago (exp {}).",
                        signed_duration(local - exp),
                        time(exp)
                    ),
                    "Get a new token (refresh it, or sign in again).".into(),
                );
            }
            if exp <= server_now && skew.is_some_and(|s| s > SKEW) {
                return clock_skew(skew.unwrap_or_default(), "has already expired", exp);
            }
        }
        if let Some(nbf) = jwt.time("nbf") {
            b.say(format!(
                "the token's nbf is {} ({})",
                time(nbf),
                relative(nbf - local)
            ));
            if nbf > local + SKEW {
                return (
                    Cause::TokenNotYetValid,
                    format!(
                        "The token is not valid yet: its nbf is {} from now ({}).",
                        signed_duration(nbf - local),
                        time(nbf)
                    ),
                    "Use the token after its nbf time, or ask the issuer for one valid now.".into(),
                );
            }
            if nbf > server_now && skew.is_some_and(|s| s < -SKEW) {
                return clock_skew(skew.unwrap_or_default(), "is not valid yet", nbf);
            }
        }
        if let Some(iat) = jwt.time("iat") {
            if iat > server_now + SKEW && skew.is_some_and(|s| s < -SKEW) {
                return clock_skew(skew.unwrap_or_default(), "was issued in the future", iat);
            }
        }
        let aud = jwt.strings("aud");
        if !aud.is_empty() {
            b.say(format!("the token's aud is {}", aud.join(", ")));
        }
        if let Some(iss) = jwt.claims.get("iss").and_then(|v| v.as_str()) {
            b.say(format!("the token's iss is {iss}"));
        }
        let scopes = jwt.scopes();
        if !scopes.is_empty() {
            b.say(format!("the token's scope is {}", scopes.join(" ")));
        }
        if text.contains("audience") || text.contains("aud ") || text.contains("\"aud\"") {
            return wrong_audience(&aud, request);
        }
        if text.contains("issuer") || text.contains("iss ") {
            return (
                Cause::WrongIssuer,
                "The server does not accept tokens from this token's issuer (iss).".into(),
                "Get a token from the issuer the server trusts.".into(),
            );
        }
        if !aud.is_empty() && !audience_matches(&aud, request) && text.contains("invalid_token") {
            return wrong_audience(&aud, request);
        }
    } else {
        b.say("the bearer token is not a JWT, so its times and audience cannot be checked locally");
    }
    if text.contains("expired") {
        return (
            Cause::TokenExpired,
            "The server says the token expired.".into(),
            "Get a new token (refresh it, or sign in again).".into(),
        );
    }
    if text.contains("not yet valid") || text.contains("nbf") {
        return (
            Cause::TokenNotYetValid,
            "The server says the token is not valid yet.".into(),
            "Check this machine's clock and the token's nbf; ask for a token valid now.".into(),
        );
    }
    (
        Cause::InvalidToken,
        "The server refused the bearer token (error=\"invalid_token\": expired, revoked, malformed, or for another audience or issuer).".into(),
        "Get a fresh token for this API and check its audience and issuer against the server's documentation.".into(),
    )
}

fn clock_skew(skew: i64, what: &str, at: i64) -> Diagnosis {
    (
        Cause::ClockSkew,
        format!(
            "The clocks disagree: the server's clock is {} {} this machine's, so by the server's clock the token {what} (at {}), though it is fine by yours.",
            signed_duration(skew.abs()),
            if skew > 0 { "ahead of" } else { "behind" },
            time(at)
        ),
        "Synchronise the clocks (NTP: `timedatectl set-ntp true` on the machine that is wrong), or ask the issuer/verifier for a leeway.".into(),
    )
}

fn wrong_audience(aud: &[String], request: &Request) -> Diagnosis {
    let aud = if aud.is_empty() {
        "(none)".to_owned()
    } else {
        aud.join(", ")
    };
    (
        Cause::WrongAudience,
        format!(
            "The token was issued for another audience ({aud}), not for {}.",
            origin(&request.url)
        ),
        "Ask the issuer for a token whose aud names this API.".into(),
    )
}

/// Whether some `aud` value names the request's host.
fn audience_matches(aud: &[String], request: &Request) -> bool {
    let host = request.url.host().unwrap_or_default().to_ascii_lowercase();
    aud.iter().any(|a| a.to_ascii_lowercase().contains(&host))
}

fn general_evidence(
    request: &Request,
    findings: &Findings,
    trace: &Trace,
    challenges: &challenge::Report,
    b: &mut Builder,
) {
    for (i, note) in trace.notes() {
        b.say(format!("hop {}: {note}", i + 1));
    }
    let statuses: Vec<String> = findings
        .traces()
        .map(|t| {
            format!(
                "{}: {}",
                t.attempt.label(),
                t.status()
                    .map_or_else(|| "no answer".to_owned(), |s| s.to_string())
            )
        })
        .collect();
    b.say(statuses.join("; "));
    for i in &challenges.issues {
        b.say(format!("challenge: {}", i.text()));
    }
    if let Some(c) = &request.credentials {
        let sent = trace.hops.iter().filter(|h| h.sent_credentials).count();
        b.say(format!(
            "{} credentials sent on {sent} of {} hop(s) (only to {})",
            findings.sent_scheme().unwrap_or_else(|| c.scheme()),
            trace.hops.len(),
            origin(&request.url)
        ));
    }
    if let Some(r) = &findings.related {
        probe_evidence(r, b);
    }
    if let Some(a) = trace.answer() {
        if let Some(p) = Said::of(a, challenges).problem {
            b.say(format!(
                "problem details: type={} title=\"{}\"{}",
                p.type_uri,
                p.title,
                p.detail
                    .map(|d| format!(" detail=\"{d}\""))
                    .unwrap_or_default()
            ));
        }
        if let Some(server) = a.header("server") {
            b.say(format!("the server identifies as {server}"));
        }
    }
    for r in &findings.resolved {
        match &r.addresses {
            Ok(list) => b.say(format!(
                "{} resolves to {}",
                r.host,
                list.iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
            Err(e) => b.say(format!("{} does not resolve: {e}", r.host)),
        }
    }
}

/// How to send credentials for the first challenge a client can answer.
fn how_to_send(challenges: &challenge::Report) -> String {
    let first: Option<&Challenge> = challenges.challenges.first();
    match first {
        Some(c) if c.is_scheme("Basic") => format!(
            "`authgate doctor URL --user NAME` or `curl -u NAME URL`{}",
            c.realm()
                .map(|r| format!(" (realm \"{r}\")"))
                .unwrap_or_default()
        ),
        Some(c) if c.is_scheme("Bearer") => {
            "`authgate doctor URL --bearer TOKEN` or `curl -H 'Authorization: Bearer TOKEN' URL`"
                .into()
        }
        Some(c) if c.is_scheme("Digest") => format!(
            "`authgate doctor URL --user NAME` (answers Digest) or `curl --digest -u NAME URL`{}",
            c.realm()
                .map(|r| format!(" (realm \"{r}\")"))
                .unwrap_or_default()
        ),
        Some(c) if c.is_scheme("Negotiate") => "`kinit` then `curl --negotiate -u : URL`".into(),
        Some(c) => format!("the {} scheme", c.scheme),
        None => "the scheme the server's documentation names".into(),
    }
}

/// The first challenge re-rendered as a sender should write it (quoted realm, no
/// duplicates), for the fix line.
fn example_challenge(challenges: &challenge::Report) -> String {
    match challenges.challenges.first() {
        Some(c) => {
            let mut fixed = Challenge::new(c.scheme.clone());
            for p in &c.params {
                fixed = fixed.param(p.name.clone(), p.value.clone());
            }
            if fixed.realm().is_none()
                && (c.is_scheme("Basic") || c.is_scheme("Digest") || c.is_scheme("Bearer"))
            {
                fixed = fixed.param("realm", "site");
            }
            format!("WWW-Authenticate: {fixed}")
        }
        None => "WWW-Authenticate: Basic realm=\"site\", charset=\"UTF-8\"".into(),
    }
}

/// authgate's reason codes in plain words (README "Why did I get a 401?").
fn plain_reason(code: &str) -> &'static str {
    match code {
        "missing_credentials" => "the request carried no Authorization header",
        "invalid_credentials" => "wrong password or unknown user",
        "malformed_credentials" => {
            "the credentials are not canonical base64 of user:password in UTF-8"
        }
        "unsupported_scheme" => "the client used a scheme this route does not accept",
        "forbidden" => "authenticated, but not allowed on this route",
        "malformed_authorization_header" => "the Authorization field is not valid HTTP syntax",
        "duplicate_authorization" => "two Authorization fields (RFC 9110 §5.3)",
        "no_route" => "no route matches the host and path",
        "upstream_unavailable" => "the upstream behind the gateway is down",
        "upstream_timeout" => "the upstream behind the gateway is too slow",
        "upstream_busy" => "the gateway has no free connection to its upstream (overloaded)",
        "client_closed" => "the client gave up before the answer",
        "shutdown" => "the gateway was shutting down",
        _ => "see the server's documentation",
    }
}

/// RFC 6750 §3.1 and RFC 9470 error codes in plain words.
fn plain_bearer_error(code: &str) -> &'static str {
    match code {
        "invalid_request" => "the request is malformed: a missing or repeated parameter",
        "invalid_token" => {
            "the token is expired, revoked, malformed or for another audience or issuer"
        }
        "insufficient_scope" => "the token lacks the scope this resource needs",
        "insufficient_user_authentication" => {
            "the sign-in was not strong or recent enough (RFC 9470)"
        }
        _ => "not an RFC 6750 code",
    }
}

fn unix(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        Err(e) => -i64::try_from(e.duration().as_secs()).unwrap_or(i64::MAX),
    }
}

fn time(secs: i64) -> String {
    u64::try_from(secs)
        .ok()
        .and_then(|s| UNIX_EPOCH.checked_add(Duration::from_secs(s)))
        .map(|t| humantime::format_rfc3339_seconds(t).to_string())
        .unwrap_or_else(|| format!("{secs} (Unix seconds)"))
}

fn signed_duration(secs: i64) -> String {
    let d = humantime::format_duration(Duration::from_secs(secs.unsigned_abs())).to_string();
    if secs < 0 {
        format!("-{d}")
    } else {
        d
    }
}

/// "in 5m" / "3h ago".
fn relative(delta: i64) -> String {
    let d = humantime::format_duration(Duration::from_secs(delta.unsigned_abs()));
    if delta >= 0 {
        format!("in {d}")
    } else {
        format!("{d} ago")
    }
}
