//! Problem details for HTTP APIs (RFC 9457).

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// The media type of a problem body (RFC 9457 §3).
pub const CONTENT_TYPE: &str = "application/problem+json";

/// The default problem type: the problem is just the HTTP status (RFC 9457 §4.2.1).
pub const ABOUT_BLANK: &str = "about:blank";

/// Member names RFC 9457 §3.1 defines; extensions may not reuse them.
const RESERVED: [&str; 5] = ["type", "title", "status", "detail", "instance"];

/// A problem details object (RFC 9457 §3).
///
/// `status` must equal the response's status code (§3.1.2); `title` should be the same
/// for every occurrence of a `type` (§3.1.3). Do not put internals in `detail`.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct Problem {
    /// A URI reference identifying the problem type; absent means `about:blank` (§3.1.1).
    #[serde(rename = "type", default = "about_blank")]
    pub type_uri: String,
    /// Absent in a parsed body reads as "".
    #[serde(default)]
    pub title: String,
    pub status: u16,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance: Option<String>,
    /// Extension members, serialized at the top level next to the standard ones (§3.2).
    #[serde(flatten)]
    pub extensions: Map<String, Value>,
}

fn about_blank() -> String {
    ABOUT_BLANK.to_owned()
}

impl Problem {
    /// A problem of type `about:blank`, whose title should then be the status's reason
    /// phrase (RFC 9457 §4.2.1).
    #[must_use]
    pub fn new(status: u16, title: impl Into<String>) -> Self {
        Self {
            type_uri: about_blank(),
            title: title.into(),
            status,
            detail: None,
            instance: None,
            extensions: Map::new(),
        }
    }

    #[must_use]
    pub fn type_uri(mut self, type_uri: impl Into<String>) -> Self {
        self.type_uri = type_uri.into();
        self
    }

    #[must_use]
    pub fn detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = Some(detail.into());
        self
    }

    #[must_use]
    pub fn instance(mut self, instance: impl Into<String>) -> Self {
        self.instance = Some(instance.into());
        self
    }

    /// Adds an extension member (e.g. a reason code or request id). A `key` naming a
    /// standard member (type, title, status, detail, instance) is ignored, so the JSON
    /// never carries a member twice (debug-asserted).
    #[must_use]
    pub fn extension(mut self, key: impl Into<String>, value: impl Into<Value>) -> Self {
        let key = key.into();
        debug_assert!(!RESERVED.contains(&key.as_str()), "reserved member {key}");
        if !RESERVED.contains(&key.as_str()) {
            self.extensions.insert(key, value.into());
        }
        self
    }

    /// The JSON body. Standard members first, then extensions.
    #[must_use]
    pub fn to_json(&self) -> String {
        // Serializing strings, numbers and a JSON map cannot fail; the fallback only
        // keeps this function total.
        serde_json::to_string(self).unwrap_or_else(|_| {
            format!(
                r#"{{"type":"about:blank","title":"Internal Server Error","status":{}}}"#,
                self.status
            )
        })
    }

    /// Parses a problem body. `status` is required; `type` defaults to `about:blank`
    /// and `title` to "". A standard member of the wrong JSON type is an error.
    pub fn parse(bytes: &[u8]) -> Result<Problem, serde_json::Error> {
        serde_json::from_slice(bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn json_has_standard_members_and_flattened_extensions() {
        let p = Problem::new(401, "Unauthorized")
            .type_uri("https://authgate.example/problems/invalid-token")
            .detail("The access token expired.")
            .extension("code", "token_expired")
            .extension("request_id", 42);
        let v: Value = serde_json::from_str(&p.to_json()).unwrap();
        assert_eq!(
            v,
            json!({
                "type": "https://authgate.example/problems/invalid-token",
                "title": "Unauthorized",
                "status": 401,
                "detail": "The access token expired.",
                "code": "token_expired",
                "request_id": 42,
            })
        );
        assert!(p.to_json().starts_with(r#"{"type":"#));
    }

    #[test]
    fn defaults_and_no_nulls() {
        let p = Problem::new(403, "Forbidden");
        assert_eq!(
            p.to_json(),
            r#"{"type":"about:blank","title":"Forbidden","status":403}"#
        );
        assert_eq!(CONTENT_TYPE, "application/problem+json");
    }

    #[test]
    fn parses_a_problem_body() {
        let body = br#"{"type":"https://example.com/probs/out-of-credit","title":"You do not have enough credit.","status":403,"detail":"Your current balance is 30, but that costs 50.","instance":"/account/12345/msgs/abc","balance":30,"accounts":["/account/12345","/account/67890"]}"#;
        let p = Problem::parse(body).unwrap();
        assert_eq!(p.type_uri, "https://example.com/probs/out-of-credit");
        assert_eq!(p.status, 403);
        assert_eq!(p.instance.as_deref(), Some("/account/12345/msgs/abc"));
        assert_eq!(p.extensions.get("balance"), Some(&json!(30)));
        assert_eq!(p.extensions.len(), 2);
        assert_eq!(Problem::parse(p.to_json().as_bytes()).unwrap(), p);

        let minimal = Problem::parse(br#"{"status":404}"#).unwrap();
        assert_eq!(minimal.type_uri, ABOUT_BLANK);
        assert_eq!(minimal.title, "");
        assert!(Problem::parse(b"{}").is_err());
        assert!(Problem::parse(b"not json").is_err());
    }
}
