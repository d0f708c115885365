//! The one place that turns a denial [`Reason`] into an HTTP response.
//!
//! - status from the reason; 401 always carries the route's challenges, one per accepted
//!   scheme in the route's order (RFC 9110 §11.6.1, §15.5.2);
//! - body by `Accept`: `application/problem+json` (RFC 9457) for clients that ask for JSON,
//!   a short HTML page for browsers, plain text otherwise (curl's `*/*`);
//! - `Cache-Control: no-store` on every denial (RFC 9110 §15.1 makes 401/403 non-heuristically
//!   cacheable, and no-store also keeps them out of private caches), `Vary: Accept` because the
//!   body depends on it, and the request id on every response (set by the gateway).

use authgate_proto::{problem, render_challenges, Challenge, Problem};
use http::header::{
    HeaderName, HeaderValue, ACCEPT, CACHE_CONTROL, CONNECTION, CONTENT_TYPE, RETRY_AFTER, VARY,
    WWW_AUTHENTICATE,
};
use http::{HeaderMap, Response};

use crate::body::{full, Body};
use crate::reason::Reason;

/// Renders a route's challenges once, as the single `WWW-Authenticate` value every 401 of the
/// route carries: one field with every challenge, in the route's order (RFC 9110 §11.6.1).
/// None when the route has no challenges.
pub fn challenge_header(challenges: &[Challenge]) -> Option<HeaderValue> {
    if challenges.is_empty() {
        return None;
    }
    HeaderValue::from_str(&render_challenges(challenges)).ok()
}

/// The base of the problem-details `type` URI: `urn:authgate:reason:<code>`. A URN, not a URL,
/// so nothing suggests it can be fetched; the README documents every code.
pub const PROBLEM_TYPE_BASE: &str = "urn:authgate:reason:";

const X_CONTENT_TYPE_OPTIONS: HeaderName = HeaderName::from_static("x-content-type-options");

/// Builds the answer for a denial. `challenges` are the route's (ignored unless the status is
/// 401); `request_id` goes into the body so a user can quote it to an admin.
pub fn deny(
    reason: &Reason,
    challenges: Option<&HeaderValue>,
    request_id: &str,
    request_headers: &HeaderMap,
) -> Response<Body> {
    let status = reason.status();
    let format = negotiate(request_headers.get(ACCEPT));
    let body = match format {
        Format::Problem => Problem::new(status.as_u16(), reason.title())
            .type_uri(format!("{PROBLEM_TYPE_BASE}{}", reason.code()))
            .detail(reason.detail())
            .extension("reason", reason.code())
            .extension("request_id", request_id)
            .to_json(),
        Format::Html => html_page(reason, request_id),
        Format::Text => {
            let detail = reason.detail();
            // The exact length: a body whose buffer is full becomes `Bytes` without a
            // second allocation. (Summed by hand: `[..].concat()` of the same parts counted
            // a few hundred more instructions per 401.)
            let len = status.as_str().len()
                + 1
                + reason.title().len()
                + 1
                + detail.len()
                + "\nreason: ".len()
                + reason.code().len()
                + "\nrequest id: ".len()
                + request_id.len()
                + 1;
            let mut text = String::with_capacity(len);
            text.push_str(status.as_str());
            text.push(' ');
            text.push_str(reason.title());
            text.push('\n');
            text.push_str(&detail);
            text.push_str("\nreason: ");
            text.push_str(reason.code());
            text.push_str("\nrequest id: ");
            text.push_str(request_id);
            text.push('\n');
            debug_assert_eq!(text.len(), len);
            text
        }
    };
    let mut response = Response::new(full(body));
    *response.status_mut() = status;
    *response.headers_mut() = common_fields(format);
    let headers = response.headers_mut();
    if reason.challenges() {
        if let Some(v) = challenges {
            headers.insert(WWW_AUTHENTICATE, v.clone());
        }
    }
    match reason {
        // RFC 6585 §4, RFC 9110 §10.2.3.
        Reason::TooManyFailures { retry_after } => {
            headers.insert(RETRY_AFTER, HeaderValue::from(*retry_after));
        }
        // RFC 9110 §15.6.4.
        Reason::HashingBusy | Reason::UpstreamBusy => {
            headers.insert(RETRY_AFTER, HeaderValue::from_static("1"));
        }
        _ => {}
    }
    if matches!(reason, Reason::ConflictingFraming) {
        // RFC 9112 §6.3: the framing cannot be trusted, so neither can the rest of the stream.
        headers.insert(CONNECTION, HeaderValue::from_static("close"));
    }
    response
}

/// The fields every denial of a format carries, as a map made once and copied for each
/// denial: copying a small map costs less than inserting its fields one by one (each insert
/// hashes the name and probes). Made with room for the fields added per denial (challenges,
/// X-Request-Id, Retry-After, Connection), so adding them does not grow the map.
fn common_fields(format: Format) -> HeaderMap {
    static PREPARED: std::sync::OnceLock<[HeaderMap; 3]> = std::sync::OnceLock::new();
    let make = |format: Format| {
        let mut h = HeaderMap::with_capacity(8);
        h.insert(
            CONTENT_TYPE,
            HeaderValue::from_static(format.content_type()),
        );
        h.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
        h.insert(VARY, HeaderValue::from_static("Accept"));
        h.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
        h
    };
    let [problem, html, text] = PREPARED.get_or_init(|| {
        [
            make(Format::Problem),
            make(Format::Html),
            make(Format::Text),
        ]
    });
    match format {
        Format::Problem => problem.clone(),
        Format::Html => html.clone(),
        Format::Text => text.clone(),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Problem,
    Html,
    Text,
}

impl Format {
    fn content_type(self) -> &'static str {
        match self {
            Format::Problem => problem::CONTENT_TYPE,
            Format::Html => "text/html; charset=utf-8",
            Format::Text => "text/plain; charset=utf-8",
        }
    }
}

/// Picks the body format from `Accept` (RFC 9110 §12.5.1). Only explicit media types count:
/// `*/*` alone (curl, most libraries) gets plain text.
fn negotiate(accept: Option<&HeaderValue>) -> Format {
    let Some(accept) = accept.and_then(|v| v.to_str().ok()) else {
        return Format::Text;
    };
    // curl's and most libraries' value.
    if accept == "*/*" {
        return Format::Text;
    }
    let mut json = 0.0f32;
    let mut html = 0.0f32;
    for item in accept.split(',') {
        let mut parts = item.split(';');
        let media = parts.next().unwrap_or("").trim();
        let q = parts
            .filter_map(|p| {
                let (k, v) = p.split_once('=')?;
                (k.trim().eq_ignore_ascii_case("q")).then(|| v.trim().parse::<f32>().ok())?
            })
            .next()
            .unwrap_or(1.0);
        // Media types are case-insensitive (RFC 9110 §8.3.1).
        let is = |m: &str| media.eq_ignore_ascii_case(m);
        if is("application/problem+json") || is("application/json") || is("application/*") {
            json = json.max(q);
        } else if is("text/html") || is("application/xhtml+xml") {
            html = html.max(q);
        }
    }
    if json > 0.0 && json >= html {
        Format::Problem
    } else if html > 0.0 {
        Format::Html
    } else {
        Format::Text
    }
}

fn html_page(reason: &Reason, request_id: &str) -> String {
    let status = reason.status();
    format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
<title>{code} {title}</title>\
<style>body{{font:16px/1.5 system-ui,sans-serif;max-width:36rem;margin:4rem auto;padding:0 1rem;color:#1a1a1a;background:#fff}}\
h1{{font-size:1.5rem}}code{{background:#f2f2f2;padding:0 .25em}}p.meta{{color:#555;font-size:.875rem}}</style>\
</head><body><main><h1>{title}</h1><p>{detail}</p>\
<p class=\"meta\">Status {code} · reason <code>{reason}</code> · request id <code>{rid}</code></p>\
</main></body></html>\n",
        code = status.as_u16(),
        title = escape(reason.title()),
        detail = escape(&reason.detail()),
        reason = reason.code(),
        rid = escape(request_id),
    )
}

/// Escapes text for HTML content and quoted attribute values: `&`, `<`, `>`, `"`, `'`.
pub(crate) fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fmt(accept: &str) -> Format {
        negotiate(Some(&HeaderValue::from_str(accept).expect("header")))
    }

    #[test]
    fn negotiation() {
        assert_eq!(negotiate(None), Format::Text);
        assert_eq!(fmt("*/*"), Format::Text);
        assert_eq!(fmt("application/json"), Format::Problem);
        assert_eq!(fmt("application/problem+json, */*;q=0.1"), Format::Problem);
        assert_eq!(
            fmt("text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"),
            Format::Html
        );
        assert_eq!(fmt("text/html;q=0.5, application/json"), Format::Problem);
        assert_eq!(fmt("text/html, application/json;q=0.5"), Format::Html);
        assert_eq!(fmt("application/json;q=0"), Format::Text);
        // Media types are case-insensitive (RFC 9110 §8.3.1).
        assert_eq!(fmt("Application/JSON"), Format::Problem);
        assert_eq!(fmt("TEXT/HTML;Q=0.9, */*"), Format::Html);
    }

    #[test]
    fn every_reason_renders_in_every_format() {
        let challenges = challenge_header(&[authgate_proto::basic::basic_challenge("R \"q\"")]);
        for reason in Reason::all() {
            for accept in ["application/json", "text/html", "*/*"] {
                let mut h = HeaderMap::new();
                h.insert(ACCEPT, HeaderValue::from_static(accept));
                let r = deny(&reason, challenges.as_ref(), "rid-1", &h);
                assert_eq!(r.status(), reason.status());
                assert_eq!(r.headers()[CACHE_CONTROL], "no-store");
                assert_eq!(
                    r.headers().contains_key(WWW_AUTHENTICATE),
                    reason.challenges(),
                    "{reason:?}"
                );
            }
        }
        let r = deny(
            &Reason::MissingCredentials,
            challenges.as_ref(),
            "x",
            &HeaderMap::new(),
        );
        assert_eq!(
            r.headers()[WWW_AUTHENTICATE],
            "Basic realm=\"R \\\"q\\\"\", charset=\"UTF-8\""
        );
    }

    #[test]
    fn html_escapes() {
        assert_eq!(escape("<a href='x'>&"), "&lt;a href=&#39;x&#39;&gt;&amp;");
    }
}
