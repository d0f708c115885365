//! The HTTP authentication grammar used by authgate: `WWW-Authenticate` challenges,
//! `Authorization` credentials, the Basic scheme, problem details and a redacting
//! [`Secret`].
//!
//! Everything here is pure: no I/O, no clock, no global state. The gateway, the
//! client-side `doctor` and a fuzzer all drive the same code. Parsers never panic on
//! input; they return [`ParseError`] (or a module's own error) with a byte offset.
//!
//! Two parsing modes exist for challenges ([`Mode`]): the gateway parses strictly,
//! `doctor` parses leniently and reports what the sender got wrong as [`Lint`]s.
#![forbid(unsafe_code)]
// Request data is attacker input: answer it, never panic on it.
#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::indexing_slicing,
        clippy::panic
    )
)]
// Tests may panic on purpose: that is how they fail.
#![cfg_attr(
    test,
    allow(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::indexing_slicing,
        clippy::panic
    )
)]

mod auth;
pub mod basic;
pub mod challenge;
pub mod credentials;
pub mod error;
pub mod problem;
pub mod secret;
pub mod syntax;

#[cfg(test)]
mod fuzz_tests;

pub use auth::AuthParam;
pub use basic::{
    basic_challenge, basic_credentials, decode_basic, decode_plain_basic, encode_basic,
    plain_basic_token68, BasicCredentials, BasicError,
};
pub use challenge::{parse_challenges, render_challenges, Challenge};
pub use credentials::{parse_credentials, Credentials};
pub use error::{Lint, LintKind, Mode, ParseError, ParseErrorKind, Parsed};
pub use problem::{Problem, CONTENT_TYPE as PROBLEM_CONTENT_TYPE};
pub use secret::Secret;
