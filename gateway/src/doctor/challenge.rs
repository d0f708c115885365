//! The `WWW-Authenticate` challenges of an answer, read leniently with the server's own
//! grammar (`authgate-proto`), and what the sender got wrong in plain words.

use authgate_proto::{parse_challenges, Challenge, LintKind, Mode};

use super::probe::Answer;

/// Schemes that common clients (browsers, curl, HTTP libraries) can answer, or that are
/// registered with IANA ("HTTP Authentication Scheme Registry").
const KNOWN_SCHEMES: [&str; 14] = [
    "Basic",
    "Bearer",
    "Digest",
    "Negotiate",
    "NTLM",
    "HOBA",
    "Mutual",
    "OAuth",
    "SCRAM-SHA-1",
    "SCRAM-SHA-256",
    "vapid",
    "DPoP",
    "PrivateToken",
    "Concealed",
];

/// One thing wrong with the challenges.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Issue {
    /// A 401 without any `WWW-Authenticate` (RFC 9110 §15.5.2, §11.6.1).
    Missing,
    /// A sender mistake the grammar crate found.
    Lint(LintKind),
    /// A field the grammar cannot read at all (lenient mode included): its text.
    Unreadable(String),
    /// A scheme no common client answers.
    UnknownScheme(String),
}

impl Issue {
    /// A stable code for JSON.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Missing => "no_challenge",
            Self::Unreadable(_) => "unreadable_challenge",
            Self::UnknownScheme(_) => "unknown_scheme",
            Self::Lint(k) => match k {
                LintKind::UnquotedRealm => "unquoted_realm",
                LintKind::MissingRealm { .. } => "missing_realm",
                LintKind::MissingAuthParam { .. } => "bare_scheme",
                LintKind::DuplicateParam { .. } => "duplicate_param",
                LintKind::EmptyListElement => "empty_list_element",
                LintKind::BadWhitespace => "bad_whitespace",
                LintKind::TokenWhereQuotedRequired { .. } => "digest_param_unquoted",
                LintKind::QuotedWhereTokenRequired { .. } => "digest_param_quoted",
                LintKind::UnsupportedCharset { .. } => "unsupported_charset",
                LintKind::InvalidUtf8 => "invalid_utf8",
                LintKind::NoChallenge => "empty_field",
                _ => "lint",
            },
        }
    }

    /// Whether a client may misread or ignore the challenge because of this. Stray commas
    /// are harmless: every recipient skips them (RFC 9110 §5.6.1.2).
    pub fn significant(&self) -> bool {
        !matches!(self, Self::Lint(LintKind::EmptyListElement))
    }

    /// One sentence with the rule.
    pub fn text(&self) -> String {
        match self {
            Self::Missing => "the 401 carries no WWW-Authenticate field; a server MUST send at least one challenge with a 401 (RFC 9110 §15.5.2, §11.6.1), and without one browsers never prompt and clients cannot tell which scheme to use".into(),
            Self::Lint(k) => k.to_string(),
            Self::Unreadable(e) => format!("a WWW-Authenticate field cannot be parsed even leniently: {e}; clients will ignore it"),
            Self::UnknownScheme(s) => format!("the scheme {s} is not one browsers, curl or common libraries can answer (it is not in the IANA HTTP Authentication Scheme Registry); list a well-supported scheme first (RFC 9110 §11.6.1)"),
        }
    }
}

fn is_sign_in_form(c: &Challenge) -> bool {
    c.is_scheme("Cookie") && c.get("form-action").is_some()
}

/// The challenges of one answer.
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// Read from `Proxy-Authenticate` (a 407) rather than `WWW-Authenticate`.
    pub proxy: bool,
    /// The field values as sent (lossy UTF-8).
    pub raw: Vec<String>,
    pub challenges: Vec<Challenge>,
    pub issues: Vec<Issue>,
}

impl Report {
    /// Reads every `WWW-Authenticate` field of `answer`. A 401 without any is an issue.
    pub fn of(answer: &Answer) -> Report {
        Self::read(answer, false)
    }

    /// Reads every `Proxy-Authenticate` field of `answer` (a 407, RFC 9110 §11.7.1): same
    /// grammar as `WWW-Authenticate`.
    pub fn proxy_of(answer: &Answer) -> Report {
        Self::read(answer, true)
    }

    /// The name of the field the challenges came from.
    pub fn field(&self) -> &'static str {
        if self.proxy {
            "Proxy-Authenticate"
        } else {
            "WWW-Authenticate"
        }
    }

    fn read(answer: &Answer, proxy: bool) -> Report {
        let name = if proxy {
            http::header::PROXY_AUTHENTICATE
        } else {
            http::header::WWW_AUTHENTICATE
        };
        let fields: Vec<&[u8]> = answer
            .headers
            .get_all(name)
            .iter()
            .map(|v| v.as_bytes())
            .collect();
        let mut report = Report {
            proxy,
            raw: fields
                .iter()
                .map(|f| String::from_utf8_lossy(f).into_owned())
                .collect(),
            ..Report::default()
        };
        if fields.is_empty() {
            if !proxy && answer.status.as_u16() == 401 {
                report.issues.push(Issue::Missing);
            }
            return report;
        }
        report.parse(&fields);
        report
    }

    /// Parses the fields; a field that cannot be read is reported and the others kept.
    pub fn parse(&mut self, fields: &[&[u8]]) {
        match parse_challenges(fields.iter().copied(), Mode::Lenient) {
            Ok(p) => {
                self.challenges = p.value;
                self.issues
                    .extend(p.lints.into_iter().map(|l| Issue::Lint(l.kind)));
            }
            Err(_) => {
                for field in fields {
                    match parse_challenges([*field], Mode::Lenient) {
                        Ok(p) => {
                            self.challenges.extend(p.value);
                            self.issues
                                .extend(p.lints.into_iter().map(|l| Issue::Lint(l.kind)));
                        }
                        Err(e) => self.issues.push(Issue::Unreadable(e.to_string())),
                    }
                }
            }
        }
        for c in &self.challenges {
            if !KNOWN_SCHEMES.iter().any(|k| c.is_scheme(k)) && !is_sign_in_form(c) {
                self.issues.push(Issue::UnknownScheme(c.scheme.clone()));
            }
        }
    }

    /// The sign-in form's address when a challenge names one: `Cookie` with `form-action`
    /// (draft-broyer-http-cookie-auth, what authgate's session routes send). Not a scheme a
    /// client answers in `Authorization`, but not a server mistake either: a browser signs
    /// in on that form.
    pub fn sign_in_form(&self) -> Option<&str> {
        self.challenges
            .iter()
            .find(|c| is_sign_in_form(c))
            .and_then(|c| c.get("form-action"))
    }

    /// The first challenge of `scheme`.
    pub fn find(&self, scheme: &str) -> Option<&Challenge> {
        self.challenges.iter().find(|c| c.is_scheme(scheme))
    }

    /// The scheme names, as sent.
    pub fn schemes(&self) -> Vec<&str> {
        self.challenges.iter().map(|c| c.scheme.as_str()).collect()
    }

    /// Whether some challenge has a scheme a common client can answer.
    pub fn any_known(&self) -> bool {
        self.challenges
            .iter()
            .any(|c| KNOWN_SCHEMES.iter().any(|k| c.is_scheme(k)))
    }

    /// Issues that may make a client ignore or misread the challenge.
    pub fn significant(&self) -> impl Iterator<Item = &Issue> {
        self.issues.iter().filter(|i| i.significant())
    }
}
