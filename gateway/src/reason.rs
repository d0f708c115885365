//! Why a request was refused: one enum, one stable code per variant.
//!
//! Every denial in authgate is a [`Reason`]. From it alone come the status code, whether a
//! challenge is sent, the problem-details `type` and `title`, the text shown to a person, and
//! the audit-log code. The response is built in exactly one place, [`crate::respond`].

use http::StatusCode;

/// A denial reason. `code()` is stable: it appears in problem bodies, the audit log and the
/// README's "Why did I get a 401?" table, so renaming one is a breaking change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reason {
    /// No `Authorization` header on a route that needs one.
    MissingCredentials,
    /// The `Authorization` header is present but its credentials do not decode (bad base64,
    /// no ':' in Basic, control characters, invalid UTF-8).
    MalformedCredentials(&'static str),
    /// The `Authorization` header uses a scheme this route does not accept.
    UnsupportedScheme,
    /// Wrong password or unknown user. The client is never told which; the audit log is.
    InvalidCredentials(CredentialFault),
    /// Authenticated, but the route's `allow` list does not include the user.
    Forbidden,
    /// The `Authorization` field itself is not valid HTTP syntax (RFC 9110 §11.6.2).
    MalformedAuthorizationHeader,
    /// More than one `Authorization` field (RFC 9110 §5.3: it is not a list).
    DuplicateAuthorization,
    /// A path that different servers would read differently (encoded '/', '\\', NUL,
    /// encoded dot-segments, invalid percent-encoding, ';' parameters).
    AmbiguousPath(&'static str),
    /// Missing, repeated or invalid `Host` (RFC 9112 §3.2).
    InvalidHost,
    /// `Content-Length` together with `Transfer-Encoding` (RFC 9112 §6.1), or an invalid
    /// `Content-Length` (§6.3).
    ConflictingFraming,
    /// The request's header section is larger than `server.max_header_bytes` (RFC 6585 §5).
    HeadersTooLarge,
    /// The request body is larger than the route's `max_body` (RFC 9110 §15.5.14).
    BodyTooLarge,
    /// No route matches the host and path.
    NoRoute,
    /// The upstream refused the connection or broke it (RFC 9110 §15.6.3).
    UpstreamUnavailable,
    /// The upstream did not answer within `server.upstream_timeout` (RFC 9110 §15.6.5).
    UpstreamTimeout,
    /// Every upstream connection authgate may open (twice `server.max_connections`) stayed in
    /// use for `server.upstream_connect_timeout`: a temporary overload (RFC 9110 §15.6.4).
    UpstreamBusy,
    /// The client closed its connection while its request waited for the upstream; the request
    /// was abandoned. Logged as 499, nginx's code for the same event; the client sees nothing.
    ClientClosed,
    /// authgate shut down while the request was still running (past `server.shutdown_timeout`):
    /// its connection was closed without an answer. Audit log only.
    Shutdown,
    /// Too many failed attempts from this client, for this user, or for this pair: banned for
    /// `retry_after` seconds, without any password being checked.
    TooManyFailures { retry_after: u64 },
    /// The password-hashing queue stayed full for `server.hash_wait`: the attempt was not
    /// checked (RFC 9110 §15.6.4).
    HashingBusy,
    /// A forward-auth question from an address not in `server.trusted_proxies`.
    UntrustedForwardAuth,
    /// A forward-auth question without the original URI (`X-Forwarded-Uri` or
    /// `X-Original-URI`): the proxy is not configured to send it.
    ForwardAuthIncomplete,
    /// Right credentials that are no longer valid: a password past its maximum age or marked
    /// expired, an account past its expiry date, a token past its TTL or idle too long.
    ExpiredCredentials(Expired),
    /// Right password, but the account is locked (`authgate user lock`).
    AccountLocked,
    /// A bearer token that is not (or no longer) valid: unknown, revoked, malformed, badly
    /// signed, not yet valid, or for another issuer or audience (RFC 6750 §3.1
    /// `invalid_token`). `code` is for the audit log, `description` for the client.
    InvalidToken {
        code: &'static str,
        description: &'static str,
    },
    /// A valid token without a scope the route requires (RFC 6750 §3.1 `insufficient_scope`).
    /// `scope` is the route's required scopes, space-separated.
    InsufficientScope { scope: String },
    /// A request that offers a token wrongly: in two places, in the URL, or in an
    /// `Authorization: Bearer` field that is not a token68 (RFC 6750 §3.1 `invalid_request`).
    InvalidRequest(&'static str),
    /// A browser session cookie that is no longer valid: idle too long, past its lifetime,
    /// or unknown (signed out, or removed).
    SessionExpired(&'static str),
    /// A sign-in or sign-out form post without the matching anti-CSRF token.
    CsrfFailed,
}

/// What expired, for [`Reason::ExpiredCredentials`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expired {
    /// Older than `users.password_max_age`, or marked with `authgate user expire --password`.
    Password,
    /// Past the account's expiry date (`authgate user expire`).
    Account,
    /// An API token or JWT past its expiry time.
    Token,
    /// An API token unused for longer than `tokens.idle_timeout`.
    TokenIdle,
}

impl Expired {
    pub fn code(self) -> &'static str {
        match self {
            Expired::Password => "password",
            Expired::Account => "account",
            Expired::Token => "token",
            Expired::TokenIdle => "token_idle",
        }
    }
}

/// What was wrong with credentials that did not verify. Only the audit log sees this:
/// the client gets `invalid_credentials` either way, so it cannot probe for user names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CredentialFault {
    UnknownUser,
    WrongPassword,
}

impl Reason {
    /// The stable machine code.
    pub fn code(&self) -> &'static str {
        match self {
            Reason::MissingCredentials => "missing_credentials",
            Reason::MalformedCredentials(_) => "malformed_credentials",
            Reason::UnsupportedScheme => "unsupported_scheme",
            Reason::InvalidCredentials(_) => "invalid_credentials",
            Reason::Forbidden => "forbidden",
            Reason::MalformedAuthorizationHeader => "malformed_authorization_header",
            Reason::DuplicateAuthorization => "duplicate_authorization",
            Reason::AmbiguousPath(_) => "ambiguous_path",
            Reason::InvalidHost => "invalid_host",
            Reason::ConflictingFraming => "conflicting_framing",
            Reason::HeadersTooLarge => "headers_too_large",
            Reason::BodyTooLarge => "body_too_large",
            Reason::NoRoute => "no_route",
            Reason::UpstreamUnavailable => "upstream_unavailable",
            Reason::UpstreamTimeout => "upstream_timeout",
            Reason::UpstreamBusy => "upstream_busy",
            Reason::Shutdown => "shutdown",
            Reason::ClientClosed => "client_closed",
            Reason::TooManyFailures { .. } => "too_many_failures",
            Reason::HashingBusy => "hashing_busy",
            Reason::UntrustedForwardAuth => "untrusted_forward_auth",
            Reason::ForwardAuthIncomplete => "forward_auth_incomplete",
            Reason::ExpiredCredentials(_) => "expired_credentials",
            Reason::AccountLocked => "account_locked",
            Reason::InvalidToken { .. } => "invalid_token",
            Reason::InsufficientScope { .. } => "insufficient_scope",
            Reason::InvalidRequest(_) => "invalid_request",
            Reason::SessionExpired(_) => "session_expired",
            Reason::CsrfFailed => "csrf_failed",
        }
    }

    /// The RFC 6750 §3 `error` and `error_description` for the Bearer challenge, for the
    /// reasons that are about a bearer token.
    pub fn bearer_error(&self) -> Option<(&'static str, &'static str)> {
        match self {
            Reason::InvalidToken { description, .. } => Some(("invalid_token", description)),
            Reason::ExpiredCredentials(Expired::Token) => {
                Some(("invalid_token", "The access token expired"))
            }
            Reason::ExpiredCredentials(Expired::TokenIdle) => Some((
                "invalid_token",
                "The access token expired after a period without use",
            )),
            Reason::InsufficientScope { .. } => Some((
                "insufficient_scope",
                "The access token does not have the scope this resource requires",
            )),
            Reason::InvalidRequest(why) => Some(("invalid_request", why)),
            _ => None,
        }
    }

    /// [`Reason::bearer_error`], for a request that presented a bearer token: then a refusal
    /// because of the token owner's account (locked, expired) is about the token too
    /// (RFC 6750 §3: a request with a token that fails gets an `error`).
    pub fn bearer_error_for_token(&self) -> Option<(&'static str, &'static str)> {
        match self {
            Reason::AccountLocked => Some((
                "invalid_token",
                "The account behind the access token is locked",
            )),
            Reason::ExpiredCredentials(Expired::Account | Expired::Password) => Some((
                "invalid_token",
                "The account behind the access token has expired",
            )),
            other => other.bearer_error(),
        }
    }

    /// The status this reason is answered with.
    pub fn status(&self) -> StatusCode {
        match self {
            // RFC 9110 §11.4 / §15.5.2: missing or refused credentials -> 401 with a challenge.
            Reason::MissingCredentials
            | Reason::MalformedCredentials(_)
            | Reason::UnsupportedScheme
            | Reason::InvalidCredentials(_)
            | Reason::ExpiredCredentials(_)
            | Reason::AccountLocked
            | Reason::InvalidToken { .. }
            | Reason::SessionExpired(_) => StatusCode::UNAUTHORIZED,
            // RFC 6750 §3.1: insufficient_scope is 403, invalid_request 400.
            Reason::InsufficientScope { .. } | Reason::CsrfFailed => StatusCode::FORBIDDEN,
            Reason::InvalidRequest(_) => StatusCode::BAD_REQUEST,
            // RFC 9110 §15.5.4: known but not allowed; retrying with the same credentials won't help.
            Reason::Forbidden | Reason::UntrustedForwardAuth | Reason::ForwardAuthIncomplete => {
                StatusCode::FORBIDDEN
            }
            Reason::MalformedAuthorizationHeader
            | Reason::DuplicateAuthorization
            | Reason::AmbiguousPath(_)
            | Reason::InvalidHost
            | Reason::ConflictingFraming => StatusCode::BAD_REQUEST,
            Reason::HeadersTooLarge => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            // RFC 6585 §4.
            Reason::TooManyFailures { .. } => StatusCode::TOO_MANY_REQUESTS,
            Reason::BodyTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Reason::NoRoute => StatusCode::NOT_FOUND,
            Reason::UpstreamUnavailable => StatusCode::BAD_GATEWAY,
            // Shutdown: what the client would have been told had there been time to answer;
            // it got its connection closed.
            Reason::HashingBusy | Reason::UpstreamBusy | Reason::Shutdown => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            Reason::UpstreamTimeout => StatusCode::GATEWAY_TIMEOUT,
            // Not an HTTP status (RFC 9110 §15 has none for an answer nobody receives): nginx's
            // "client closed request", which log readers already know.
            Reason::ClientClosed => StatusCode::from_u16(499).unwrap_or(StatusCode::BAD_REQUEST),
        }
    }

    /// Whether the answer carries the route's challenges: every 401 must (RFC 9110
    /// §15.5.2), and so do the 400 and 403 answers about a bearer token (RFC 6750 §3).
    pub fn challenges(&self) -> bool {
        self.status() == StatusCode::UNAUTHORIZED || self.bearer_error().is_some()
    }

    /// A short title, stable per reason (RFC 9457 §3.1.3).
    pub fn title(&self) -> &'static str {
        match self {
            Reason::MissingCredentials => "Authentication required",
            Reason::MalformedCredentials(_) => "Credentials could not be read",
            Reason::UnsupportedScheme => "Authentication scheme not accepted here",
            Reason::InvalidCredentials(_) => "Invalid user name or password",
            Reason::Forbidden => "Access denied",
            Reason::MalformedAuthorizationHeader => "Malformed Authorization header",
            Reason::DuplicateAuthorization => "More than one Authorization header",
            Reason::AmbiguousPath(_) => "Ambiguous request path",
            Reason::InvalidHost => "Missing or invalid Host",
            Reason::ConflictingFraming => "Conflicting message framing",
            Reason::HeadersTooLarge => "Request headers too large",
            Reason::BodyTooLarge => "Request body too large",
            Reason::NoRoute => "Not found",
            Reason::UpstreamUnavailable => "Upstream unavailable",
            Reason::UpstreamTimeout => "Upstream timed out",
            Reason::UpstreamBusy => "Gateway busy",
            Reason::Shutdown => "Gateway shutting down",
            Reason::ClientClosed => "Client closed the request",
            Reason::TooManyFailures { .. } => "Too many failed attempts",
            Reason::HashingBusy => "Too many sign-ins at once",
            Reason::UntrustedForwardAuth => "Not a trusted proxy",
            Reason::ForwardAuthIncomplete => "Forward-auth request incomplete",
            Reason::ExpiredCredentials(Expired::Password) => "Password expired",
            Reason::ExpiredCredentials(Expired::Account) => "Account expired",
            Reason::ExpiredCredentials(_) => "Token expired",
            Reason::AccountLocked => "Account locked",
            Reason::InvalidToken { .. } => "Invalid access token",
            Reason::InsufficientScope { .. } => "Insufficient scope",
            Reason::InvalidRequest(_) => "Invalid token request",
            Reason::SessionExpired(_) => "Session expired",
            Reason::CsrfFailed => "Form expired or forged",
        }
    }

    /// What happened and what the client can do, for people and for API clients alike.
    /// Never says whether a user name exists.
    pub fn detail(&self) -> std::borrow::Cow<'static, str> {
        match self {
            Reason::MissingCredentials => {
                "This resource needs authentication and the request carried no credentials. \
                 Send them with one of the schemes in WWW-Authenticate."
                    .into()
            }
            Reason::MalformedCredentials(why) => format!(
                "The credentials in the Authorization header could not be decoded ({why}). \
                 Basic credentials are base64 (RFC 4648, with padding) of user:password in UTF-8."
            )
            .into(),
            Reason::UnsupportedScheme => "The Authorization header uses a scheme this resource \
                 does not accept. Use one of the schemes in WWW-Authenticate."
                .into(),
            Reason::InvalidCredentials(_) => {
                "The user name or password is wrong. Check both and try again.".into()
            }
            Reason::Forbidden => "You are signed in, but your account is not allowed to \
                 access this resource. Ask an administrator for access; retrying with the same \
                 credentials will not help."
                .into(),
            Reason::MalformedAuthorizationHeader => "The Authorization header is not valid \
                 HTTP syntax (RFC 9110 §11.6.2)."
                .into(),
            Reason::DuplicateAuthorization => "The request carried more than one Authorization \
                 header; send exactly one (RFC 9110 §5.3)."
                .into(),
            Reason::AmbiguousPath(why) => format!(
                "The request path contains {why}, which servers interpret differently; \
                 it was refused rather than guessed."
            )
            .into(),
            Reason::InvalidHost => {
                "The request needs exactly one valid Host header (RFC 9112 §3.2).".into()
            }
            Reason::ConflictingFraming => "The request's Content-Length and Transfer-Encoding \
                 headers conflict or are invalid (RFC 9112 §6)."
                .into(),
            Reason::HeadersTooLarge => "The request's headers are larger than this server \
                 accepts. Large cookies are the usual cause: clear the cookies for this site."
                .into(),
            Reason::BodyTooLarge => "The request body is larger than this resource accepts.".into(),
            Reason::NoRoute => "Nothing is served at this address.".into(),
            Reason::UpstreamUnavailable => "The application behind the gateway could not be \
                 reached. This is not an authentication problem; try again later."
                .into(),
            Reason::UpstreamTimeout => "The application behind the gateway did not answer in \
                 time. This is not an authentication problem; try again later."
                .into(),
            Reason::UpstreamBusy => "Every connection the gateway may open to the application \
                 behind it is in use. This is not an authentication problem; try again in a \
                 second."
                .into(),
            Reason::ClientClosed => "The client closed the connection before the application \
                 behind the gateway answered; the request was abandoned."
                .into(),
            Reason::Shutdown => "The gateway shut down before this request was answered; its \
                 connection was closed. Try again."
                .into(),
            Reason::TooManyFailures { retry_after } => format!(
                "Too many failed sign-in attempts. Wait {retry_after} seconds before trying \
                 again; attempts before then are refused without being checked."
            )
            .into(),
            Reason::HashingBusy => "The server is busy checking passwords and could not check \
                 this one. Try again in a second; requests that are already signed in are not \
                 affected."
                .into(),
            Reason::UntrustedForwardAuth => "Only the proxies listed in trusted_proxies may ask \
                 the forward-auth endpoint about a request."
                .into(),
            Reason::ForwardAuthIncomplete => "The proxy did not say which request it asks about: \
                 send X-Forwarded-Uri (Traefik, Caddy) or X-Original-URI (nginx)."
                .into(),
            Reason::ExpiredCredentials(Expired::Password) => "Your password has expired. \
                 Ask an administrator to set a new one (authgate user passwd)."
                .into(),
            Reason::ExpiredCredentials(Expired::Account) => "Your account has expired. \
                 Ask an administrator to extend it (authgate user expire --clear)."
                .into(),
            Reason::ExpiredCredentials(Expired::Token) => {
                "The access token has expired. Get a new token and send it instead.".into()
            }
            Reason::ExpiredCredentials(Expired::TokenIdle) => "The access token was not used \
                 for too long and has expired. Get a new token and send it instead."
                .into(),
            Reason::AccountLocked => "Your account is locked. Ask an administrator to unlock \
                 it (authgate user unlock); retrying will not help."
                .into(),
            Reason::InvalidToken { description, .. } => {
                format!("{description}. Send a valid token as Authorization: Bearer <token>.")
                    .into()
            }
            Reason::InsufficientScope { scope } => format!(
                "The access token is valid but lacks a scope this resource requires: {scope}. \
                 Get a token with these scopes."
            )
            .into(),
            Reason::InvalidRequest(why) => {
                format!("{why}. Send the token once, in the Authorization header (RFC 6750 §2.1).")
                    .into()
            }
            Reason::SessionExpired(_) => {
                "Your session has expired. Sign in again to continue.".into()
            }
            Reason::CsrfFailed => "The form was too old or did not come from this site. \
                 Reload the page and try again."
                .into(),
        }
    }

    /// Extra detail for the audit log only (may name the cause more precisely than the client
    /// is told, e.g. unknown user vs wrong password).
    pub fn audit_detail(&self) -> Option<&'static str> {
        match self {
            Reason::InvalidCredentials(CredentialFault::UnknownUser) => Some("unknown_user"),
            Reason::InvalidCredentials(CredentialFault::WrongPassword) => Some("wrong_password"),
            Reason::MalformedCredentials(why)
            | Reason::AmbiguousPath(why)
            | Reason::InvalidRequest(why)
            | Reason::SessionExpired(why) => Some(why),
            Reason::ExpiredCredentials(what) => Some(what.code()),
            Reason::InvalidToken { code, .. } => Some(code),
            _ => None,
        }
    }

    /// All reasons, for documentation and tests.
    pub fn all() -> Vec<Reason> {
        vec![
            Reason::MissingCredentials,
            Reason::MalformedCredentials("not base64"),
            Reason::UnsupportedScheme,
            Reason::InvalidCredentials(CredentialFault::WrongPassword),
            Reason::Forbidden,
            Reason::MalformedAuthorizationHeader,
            Reason::DuplicateAuthorization,
            Reason::AmbiguousPath("an encoded '/'"),
            Reason::InvalidHost,
            Reason::ConflictingFraming,
            Reason::HeadersTooLarge,
            Reason::BodyTooLarge,
            Reason::NoRoute,
            Reason::UpstreamUnavailable,
            Reason::UpstreamTimeout,
            Reason::UpstreamBusy,
            Reason::ClientClosed,
            Reason::Shutdown,
            Reason::TooManyFailures { retry_after: 60 },
            Reason::HashingBusy,
            Reason::UntrustedForwardAuth,
            Reason::ForwardAuthIncomplete,
            Reason::ExpiredCredentials(Expired::Password),
            Reason::AccountLocked,
            Reason::InvalidToken {
                code: "unknown",
                description: "The access token is not valid",
            },
            Reason::InsufficientScope {
                scope: "read".into(),
            },
            Reason::InvalidRequest("The token was sent in two places"),
            Reason::SessionExpired("idle"),
            Reason::CsrfFailed,
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_unique_and_snake_case() {
        let all = Reason::all();
        let mut codes: Vec<_> = all.iter().map(Reason::code).collect();
        codes.sort();
        codes.dedup();
        assert_eq!(codes.len(), all.len());
        assert!(codes
            .iter()
            .all(|c| c.bytes().all(|b| b.is_ascii_lowercase() || b == b'_')));
    }

    #[test]
    fn every_401_carries_a_challenge() {
        for r in Reason::all() {
            if r.status() == StatusCode::UNAUTHORIZED {
                assert!(r.challenges(), "{r:?}");
            }
            assert_eq!(
                r.challenges(),
                r.status() == StatusCode::UNAUTHORIZED || r.bearer_error().is_some(),
                "{r:?}"
            );
        }
    }

    #[test]
    fn bearer_errors_follow_rfc_6750() {
        // RFC 6750 §3: error_description is %x20-21 / %x23-5B / %x5D-7E.
        for r in Reason::all() {
            if let Some((error, description)) = r.bearer_error() {
                let status = r.status().as_u16();
                match error {
                    "invalid_token" => assert_eq!(status, 401),
                    "insufficient_scope" => assert_eq!(status, 403),
                    "invalid_request" => assert_eq!(status, 400),
                    other => panic!("{other}"),
                }
                assert!(description
                    .bytes()
                    .all(|b| (0x20..=0x7e).contains(&b) && b != b'"' && b != b'\\'));
            }
        }
    }
}
