//! authgate: an authentication gateway that answers 401 the way RFC 9110 says.
//!
//! The request path, one module per stage:
//! [`accept`] -> [`normalize`] -> [`route`] -> [`authenticate`] -> [`authorize`] ->
//! [`respond`] (denials) or [`forward`] (everything else), assembled in [`gateway`].
#![forbid(unsafe_code)]

pub mod accept;
pub mod admin;
pub mod ascii;
pub mod audit;
pub mod authenticate;
pub mod authorize;
pub mod body;
pub mod clock;
pub mod coarse_timer;
pub mod config;
pub mod doctor;
pub mod explain;
pub mod fd_limit;
pub mod forward;
pub mod forward_auth;
pub mod gateway;
pub mod insights;
pub mod manage;
pub mod metrics;
pub mod normalize;
pub mod reason;
pub mod respond;
pub mod route;
pub mod serve;
pub mod signin;
pub mod store;
pub mod users;
