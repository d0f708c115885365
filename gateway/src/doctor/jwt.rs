//! A JWT's header and claims, decoded locally (RFC 7519 §7.2 steps 1-8 without the
//! signature): the doctor never verifies a token and never sends it anywhere but the URL's
//! origin. The signature is dropped on decode so it cannot be printed.

use base64::engine::general_purpose::{URL_SAFE, URL_SAFE_NO_PAD};
use base64::Engine as _;
use serde_json::{Map, Value};

/// The decoded header and payload of a compact JWS.
#[derive(Debug, Clone)]
pub struct Jwt {
    pub header: Map<String, Value>,
    pub claims: Map<String, Value>,
}

impl Jwt {
    /// `None` unless `token` is three dot-separated base64url parts whose first two are
    /// JSON objects.
    pub fn decode(token: &str) -> Option<Jwt> {
        let mut parts = token.split('.');
        let (h, p, _sig) = (parts.next()?, parts.next()?, parts.next()?);
        if parts.next().is_some() {
            return None;
        }
        let object = |part: &str| -> Option<Map<String, Value>> {
            let bytes = URL_SAFE_NO_PAD
                .decode(part)
                .or_else(|_| URL_SAFE.decode(part))
                .ok()?;
            match serde_json::from_slice(&bytes).ok()? {
                Value::Object(m) => Some(m),
                _ => None,
            }
        };
        Some(Jwt {
            header: object(h)?,
            claims: object(p)?,
        })
    }

    /// A NumericDate claim (RFC 7519 §2) in Unix seconds.
    pub fn time(&self, name: &str) -> Option<i64> {
        match self.claims.get(name)? {
            Value::Number(n) => n.as_i64().or_else(|| n.as_f64().map(|f| f as i64)),
            _ => None,
        }
    }

    /// A string-or-array claim such as `aud` (RFC 7519 §4.1.3).
    pub fn strings(&self, name: &str) -> Vec<String> {
        match self.claims.get(name) {
            Some(Value::String(s)) => vec![s.clone()],
            Some(Value::Array(a)) => a
                .iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect(),
            _ => Vec::new(),
        }
    }

    /// `scope` (space-separated, RFC 8693 §4.2) or `scp` (array), as a list.
    pub fn scopes(&self) -> Vec<String> {
        match self.claims.get("scope").or_else(|| self.claims.get("scp")) {
            Some(Value::String(s)) => s.split_whitespace().map(str::to_owned).collect(),
            Some(Value::Array(_)) => self.strings("scp"),
            _ => Vec::new(),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    #[test]
    fn decodes_header_and_claims_and_drops_signature() {
        // {"alg":"HS256","typ":"JWT"}.{"sub":"1234567890","aud":["a","b"],"exp":1516239022}
        let h = URL_SAFE_NO_PAD.encode(r#"{"alg":"HS256","typ":"JWT"}"#);
        let p = URL_SAFE_NO_PAD.encode(r#"{"sub":"x","aud":["a","b"],"exp":1516239022}"#);
        let t = Jwt::decode(&format!("{h}.{p}.c2lnbmF0dXJl")).unwrap();
        assert_eq!(t.header["alg"], "HS256");
        assert_eq!(t.time("exp"), Some(1_516_239_022));
        assert_eq!(t.strings("aud"), ["a", "b"]);
        assert!(!format!("{t:?}").contains("c2lnbmF0dXJl"));
        assert!(Jwt::decode("opaque-token").is_none());
        assert!(Jwt::decode(&format!("{h}.{p}")).is_none());
        assert!(Jwt::decode(&format!("{h}.bm90IGpzb24.x")).is_none());
    }
}
