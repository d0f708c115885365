//! Answering a Digest challenge (RFC 7616 §3.4), so that `--user` works against servers
//! that only offer Digest (Apache `mod_auth_digest`, many cameras and routers). Pure code:
//! the nonce comes from the server's challenge, the cnonce from the caller.
//!
//! Supported: algorithms MD5, SHA-256, SHA-512-256 and their `-sess` variants; `qop=auth`
//! or no qop (RFC 2069 compatibility). Not supported: `qop=auth-int` alone and
//! `userhash=true`, which [`Digest::from_challenge`] refuses with the reason.

use authgate_proto::{Challenge, Credentials};
use md5::Md5;
use sha2::{Digest as _, Sha256, Sha512_256};

/// The hash a Digest challenge names (RFC 7616 §3.3 `algorithm`, MD5 when absent).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    Md5,
    Sha256,
    Sha512_256,
}

impl Algorithm {
    fn hex(self, data: &str) -> String {
        let bytes = match self {
            Self::Md5 => Md5::digest(data.as_bytes()).to_vec(),
            Self::Sha256 => Sha256::digest(data.as_bytes()).to_vec(),
            Self::Sha512_256 => Sha512_256::digest(data.as_bytes()).to_vec(),
        };
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }
}

/// One Digest challenge the doctor can answer.
#[derive(Debug, Clone)]
pub struct Digest {
    /// The `algorithm` value as the server wrote it (echoed back).
    pub algorithm_name: String,
    algorithm: Algorithm,
    sess: bool,
    pub realm: String,
    nonce: String,
    opaque: Option<String>,
    /// `qop=auth` offered; otherwise the RFC 2069 form without qop, nc and cnonce.
    qop_auth: bool,
    /// The server said `stale=true` (RFC 7616 §3.3).
    pub stale: bool,
}

impl Digest {
    /// Reads a Digest challenge; `Err` says in words why the doctor cannot answer it.
    pub fn from_challenge(c: &Challenge) -> Result<Digest, String> {
        let realm = c.realm().unwrap_or_default().to_owned();
        let nonce = c
            .get("nonce")
            .ok_or("the Digest challenge has no nonce (RFC 7616 §3.3 requires one)")?
            .to_owned();
        let algorithm_name = c.get("algorithm").unwrap_or("MD5").to_owned();
        let upper = algorithm_name.to_ascii_uppercase();
        let (base, sess) = match upper.strip_suffix("-SESS") {
            Some(b) => (b.to_owned(), true),
            None => (upper, false),
        };
        let algorithm = match base.as_str() {
            "MD5" => Algorithm::Md5,
            "SHA-256" => Algorithm::Sha256,
            "SHA-512-256" => Algorithm::Sha512_256,
            other => {
                return Err(format!(
                    "the Digest algorithm {other} is not one of MD5, SHA-256, SHA-512-256"
                ))
            }
        };
        if c.get("userhash")
            .is_some_and(|u| u.eq_ignore_ascii_case("true"))
        {
            return Err(
                "the Digest challenge asks for userhash=true, which the doctor does not send"
                    .into(),
            );
        }
        let qop = c.get("qop");
        let qop_auth =
            qop.is_some_and(|q| q.split(',').any(|v| v.trim().eq_ignore_ascii_case("auth")));
        if qop.is_some() && !qop_auth {
            return Err(
                "the Digest challenge offers only qop=auth-int, which the doctor does not send"
                    .into(),
            );
        }
        Ok(Digest {
            algorithm_name,
            algorithm,
            sess,
            realm,
            nonce,
            opaque: c.get("opaque").map(str::to_owned),
            qop_auth,
            stale: c
                .get("stale")
                .is_some_and(|s| s.eq_ignore_ascii_case("true")),
        })
    }

    /// The first Digest challenge of `challenges` the doctor can answer, preferring the
    /// strongest hash (RFC 7616 §3.7: the client uses the most preferred it supports), or
    /// the reason the first one cannot be answered.
    pub fn choose(challenges: &[Challenge]) -> Option<Result<Digest, String>> {
        let all: Vec<Result<Digest, String>> = challenges
            .iter()
            .filter(|c| c.is_scheme("Digest"))
            .map(Digest::from_challenge)
            .collect();
        let best = all
            .iter()
            .filter_map(|d| d.as_ref().ok())
            .max_by_key(|d| match d.algorithm {
                Algorithm::Md5 => 0,
                Algorithm::Sha256 => 2,
                Algorithm::Sha512_256 => 1,
            })
            .cloned();
        match best {
            Some(d) => Some(Ok(d)),
            None => all.into_iter().next(),
        }
    }

    /// The `Authorization` field value for `method` and `uri` (the request-target),
    /// with nonce-count `nc` and client nonce `cnonce`.
    pub fn authorization(
        &self,
        user: &str,
        password: &str,
        method: &str,
        uri: &str,
        nc: u32,
        cnonce: &str,
    ) -> Credentials {
        let h = |s: &str| self.algorithm.hex(s);
        let mut ha1 = h(&format!("{user}:{}:{password}", self.realm));
        if self.sess {
            ha1 = h(&format!("{ha1}:{}:{cnonce}", self.nonce));
        }
        let ha2 = h(&format!("{method}:{uri}"));
        let nc = format!("{nc:08x}");
        let response = if self.qop_auth {
            h(&format!("{ha1}:{}:{nc}:{cnonce}:auth:{ha2}", self.nonce))
        } else {
            h(&format!("{ha1}:{}:{ha2}", self.nonce))
        };
        let mut c = Credentials::new("Digest")
            .param("username", user)
            .param("realm", &self.realm)
            .param("uri", uri)
            .token_param("algorithm", &self.algorithm_name)
            .param("nonce", &self.nonce);
        if self.qop_auth {
            c = c
                .token_param("nc", nc)
                .param("cnonce", cnonce)
                .token_param("qop", "auth");
        }
        c = c.param("response", response);
        if let Some(o) = &self.opaque {
            c = c.param("opaque", o);
        }
        c
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;
    use authgate_proto::{parse_challenges, Mode};

    /// RFC 7616 §3.9.1: the same request answered with SHA-256 and MD5.
    #[test]
    fn rfc7616_example_responses() {
        let field = br#"Digest realm="http-auth@example.org", qop="auth, auth-int", algorithm=SHA-256, nonce="7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v", opaque="FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS", Digest realm="http-auth@example.org", qop="auth, auth-int", algorithm=MD5, nonce="7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v", opaque="FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS""#;
        let challenges = parse_challenges([field.as_slice()], Mode::Lenient)
            .unwrap()
            .value;
        let cnonce = "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ";
        let answer = |c: &Challenge| {
            Digest::from_challenge(c).unwrap().authorization(
                "Mufasa",
                "Circle of Life",
                "GET",
                "/dir/index.html",
                1,
                cnonce,
            )
        };
        let sha = answer(&challenges[0]);
        assert_eq!(
            sha.get("response"),
            Some("753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1")
        );
        let md5 = answer(&challenges[1]);
        assert_eq!(
            md5.get("response"),
            Some("8ca523f5e9506fed4657c9700eebdbec")
        );
        assert_eq!(md5.get("nc"), Some("00000001"));
        assert_eq!(
            md5.get("opaque"),
            Some("FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS")
        );
        // The strongest hash is chosen.
        let chosen = Digest::choose(&challenges).unwrap().unwrap();
        assert_eq!(chosen.algorithm_name, "SHA-256");
    }

    #[test]
    fn refuses_what_it_cannot_answer() {
        let c = |v: &str| {
            parse_challenges([v.as_bytes()], Mode::Lenient)
                .unwrap()
                .value
        };
        assert!(
            Digest::choose(&c(r#"Digest realm="r", nonce="n", algorithm=SHA-1"#))
                .unwrap()
                .is_err()
        );
        assert!(
            Digest::choose(&c(r#"Digest realm="r", nonce="n", qop="auth-int""#))
                .unwrap()
                .is_err()
        );
        assert!(Digest::choose(&c(r#"Digest realm="r""#)).unwrap().is_err());
        assert!(Digest::choose(&c(r#"Basic realm="r""#)).is_none());
        let d = Digest::choose(&c(r#"Digest realm="r", nonce="n", stale=true"#))
            .unwrap()
            .unwrap();
        assert!(d.stale);
    }
}
