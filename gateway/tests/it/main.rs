//! authgate's integration tests: one binary (see STYLE.md), one module per area.
//! Each test starts the real `authgate` binary on port 0 with a temp config and a real
//! upstream that records what it received.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod daemon;
mod kit;

mod bad_input;
mod basic;
mod cli;
mod clients;
mod dashboard;
mod doctor;
mod forward;
mod forward_auth;
mod hashing;
mod jwt;
mod lifecycle;
#[cfg(target_os = "linux")]
mod limits;
mod lockout;
mod metrics;
mod routing;
mod sessions;
mod tokens;
mod upstream_pool;
