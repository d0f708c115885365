//! The verdict as text (cause first, then fix, then evidence) or as one JSON object.
//! Neither prints a password, a token, a cookie value or a JWT signature.

use std::fmt::Write as _;

use http::Uri;
use serde_json::{json, Value};

use super::input::{Credentials, Request};
use super::probe::{FetchError, Findings, Hop, Probe};
use super::verdict::Verdict;

/// A URL for display: user-info (which may hold a password) is redacted.
fn shown(url: &Uri) -> String {
    let text = url.to_string();
    match url.authority().map(|a| a.as_str()) {
        Some(a) if a.contains('@') => {
            let host = a.rsplit('@').next().unwrap_or_default();
            text.replacen(a, &format!("[redacted]@{host}"), 1)
        }
        _ => text,
    }
}

fn hop_json(attempt: &str, hop: &Hop) -> Value {
    let (status, location, error) = match &hop.outcome {
        Ok(a) => (
            Some(a.status.as_u16()),
            a.location().map(str::to_owned),
            None,
        ),
        Err(e) => (None, None, Some(e.to_string())),
    };
    let tls_problem = match &hop.outcome {
        Err(FetchError::Tls { problem, .. }) => Some(problem.code()),
        _ => None,
    };
    json!({
        "attempt": attempt,
        "method": hop.method.as_str(),
        "url": shown(&hop.url),
        "status": status,
        "location": location,
        "sent_credentials": hop.sent_credentials,
        "sent_cookies": hop.sent_cookies,
        "notes": hop.notes.iter().map(ToString::to_string).collect::<Vec<_>>(),
        "error": error,
        "tls_problem": tls_problem,
    })
}

fn probe_json(p: &Probe) -> Value {
    let split = |r: &Result<u16, FetchError>| match r {
        Ok(s) => (Some(*s), None),
        Err(e) => (None, Some(e.to_string())),
    };
    let (anonymous, anonymous_error) = split(&p.anonymous);
    let (status, error) = p.with_credentials.as_ref().map_or((None, None), split);
    json!({
        "url": shown(&p.url),
        "relation": p.relation.code(),
        "status_without_credentials": anonymous,
        "realm": p.realm,
        "sent_credentials": p.with_credentials.is_some(),
        "status": status,
        "accepted": p.accepted(),
        "skipped": p.skipped,
        "error": error.or(anonymous_error),
    })
}

/// `--json`: one object with the verdict first.
pub fn json(request: &Request, findings: &Findings, verdict: &Verdict) -> String {
    let hops: Vec<Value> = findings
        .traces()
        .flat_map(|t| t.hops.iter().map(move |h| hop_json(t.attempt.label(), h)))
        .collect();
    let challenges: Vec<Value> = verdict
        .challenges
        .challenges
        .iter()
        .map(|c| {
            json!({
                "scheme": c.scheme,
                "token68": c.token68,
                "params": c.params.iter().map(|p| json!({"name": p.name, "value": p.value, "quoted": p.quoted})).collect::<Vec<_>>(),
            })
        })
        .collect();
    let issues: Vec<Value> = verdict
        .challenges
        .issues
        .iter()
        .map(|i| json!({"code": i.code(), "text": i.text()}))
        .collect();
    let addresses: Vec<Value> = findings
        .resolved
        .iter()
        .map(|r| match &r.addresses {
            Ok(list) => json!({
                "host": r.host,
                "port": r.port,
                "addresses": list.iter().map(ToString::to_string).collect::<Vec<_>>(),
            }),
            Err(e) => json!({"host": r.host, "port": r.port, "addresses": [], "error": e}),
        })
        .collect();
    let token = match &request.credentials {
        Some(Credentials::Bearer { jwt: Some(j), .. }) => {
            json!({"header": j.header, "claims": j.claims})
        }
        _ => Value::Null,
    };
    // A struct, not `json!`, so that the verdict comes first in the output.
    #[derive(serde::Serialize)]
    struct Out<'a> {
        verdict: Value,
        evidence: &'a [String],
        status: Option<u16>,
        exit_code: u8,
        url: String,
        /// `--insecure`: certificates were not verified.
        insecure: bool,
        credentials: Option<&'a str>,
        hops: Vec<Value>,
        /// `WWW-Authenticate`, or `Proxy-Authenticate` for a 407.
        challenge_field: &'a str,
        challenges: Vec<Value>,
        challenge_raw: &'a [String],
        challenge_issues: Vec<Value>,
        addresses: Vec<Value>,
        token: Value,
        /// Related URLs tried with refused credentials (empty unless a 401 refused them).
        probes: Vec<Value>,
    }
    let out = Out {
        verdict: json!({
            "cause": verdict.cause.code(),
            "sentence": verdict.sentence,
            "fix": verdict.fix,
        }),
        evidence: &verdict.evidence,
        status: verdict.status,
        exit_code: verdict.exit_code(),
        url: shown(&request.url),
        insecure: request.tls.skipped.is_some(),
        credentials: findings
            .sent_scheme()
            .or_else(|| request.credentials.as_ref().map(Credentials::scheme)),
        hops,
        challenge_field: verdict.challenges.field(),
        challenges,
        challenge_raw: &verdict.challenges.raw,
        challenge_issues: issues,
        addresses,
        token,
        probes: findings
            .related
            .iter()
            .flat_map(|r| r.probes.iter().map(probe_json))
            .collect(),
    };
    serde_json::to_string_pretty(&out).unwrap_or_else(|_| "{}".into())
}

/// The human report: cause, fix, evidence, then the details.
pub fn text(request: &Request, findings: &Findings, verdict: &Verdict) -> String {
    let mut o = String::new();
    let status = verdict
        .status
        .map_or_else(|| "no answer".to_owned(), |s| s.to_string());
    if request.tls.skipped.is_some() {
        let _ = writeln!(
            o,
            "WARNING: --insecure: TLS certificates were NOT verified; this is not what a real client sees."
        );
    }
    let _ = writeln!(o, "{}", verdict.sentence);
    let _ = writeln!(o, "Fix: {}", verdict.fix);
    let _ = writeln!(
        o,
        "\ncause: {}   status: {status}   url: {}",
        verdict.cause.code(),
        shown(&request.url)
    );
    if !verdict.evidence.is_empty() {
        let _ = writeln!(o, "\nEvidence:");
        for e in &verdict.evidence {
            let _ = writeln!(o, "  - {e}");
        }
    }
    let _ = writeln!(o, "\nRequests:");
    for t in findings.traces() {
        for (i, hop) in t.hops.iter().enumerate() {
            let what = match &hop.outcome {
                Ok(a) => match a.location() {
                    Some(l) => format!("{} -> {l}", a.status),
                    None => a.status.to_string(),
                },
                Err(e) => e.to_string(),
            };
            let _ = writeln!(
                o,
                "  [{}] {}. {} {} {}-> {what}",
                t.attempt.label(),
                i + 1,
                hop.method,
                shown(&hop.url),
                if hop.sent_credentials {
                    "(Authorization sent) "
                } else {
                    ""
                }
            );
        }
    }
    for p in findings.related.iter().flat_map(|r| r.probes.iter()) {
        let status = |r: &Result<u16, FetchError>| match r {
            Ok(s) => s.to_string(),
            Err(e) => e.to_string(),
        };
        let _ = writeln!(
            o,
            "  [related URL] GET {} -> {}{}",
            shown(&p.url),
            status(&p.anonymous),
            p.with_credentials
                .as_ref()
                .map(|w| format!("; again (Authorization sent) -> {}", status(w)))
                .unwrap_or_default()
        );
    }
    if !verdict.challenges.raw.is_empty() {
        let _ = writeln!(o, "\n{}:", verdict.challenges.field());
        for raw in &verdict.challenges.raw {
            let _ = writeln!(o, "  {raw}");
        }
    }
    if let Some(Credentials::Bearer { jwt: Some(j), .. }) = &request.credentials {
        let _ = writeln!(
            o,
            "\nToken (decoded locally, not verified; signature not shown):\n  header: {}\n  claims: {}",
            Value::Object(j.header.clone()),
            Value::Object(j.claims.clone())
        );
    }
    o
}
