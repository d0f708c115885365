//! `authgate doctor URL`: explain a 401 from any server and say how to fix it.
//!
//! The doctor behaves like a careful client: it asks once without credentials and once
//! with the ones given, follows redirects one hop at a time (dropping `Authorization` on a
//! cross-origin hop as browsers and curl do), reads every challenge with the same grammar
//! crate as the server (`authgate-proto`, lenient mode) and turns what it saw into one
//! verdict: the most likely cause, the fix, then the evidence. When Basic or Digest
//! credentials are refused with a 401, it also tries them on at most
//! [`probe::MAX_RELATED`] parent or trailing-slash URLs of the same origin, to tell a wrong
//! password from credentials for another realm or another user list.
//!
//! Nothing secret is printed: not the password, not a token's signature, not a cookie.
//! A JWT given with `--bearer` is decoded locally and sent only to the URL's origin.
//!
//! Stages: [`input`] (arguments and secrets) -> [`probe`] (HTTP, redirects, related URLs,
//! DNS; TLS from [`tls`]) ->
//! [`challenge`] (WWW-Authenticate) and [`jwt`] (token claims) -> [`verdict`] (the cause)
//! -> [`report`] (text or JSON).
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod challenge;
mod digest;
mod input;
mod jwt;
mod probe;
mod report;
mod tls;
mod verdict;

use std::path::PathBuf;
use std::process::ExitCode;

/// Command-line arguments of `authgate doctor`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The URL that answers 401 (or should not), http:// or https://.
    pub url: String,
    /// Send HTTP Basic credentials for this user. The password comes from a prompt without
    /// echo when stdin is a terminal, else from the first line of stdin.
    #[arg(long, short = 'u', value_name = "USER", conflicts_with = "bearer")]
    pub user: Option<String>,
    /// Read the password from the first line of stdin even when stdin is a terminal.
    #[arg(long, requires = "user")]
    pub password_stdin: bool,
    /// Send `Authorization: Bearer TOKEN`; `@FILE` reads the token from FILE. A JWT is
    /// decoded locally to check its times and audience; it is never verified.
    #[arg(long, value_name = "TOKEN|@FILE")]
    pub bearer: Option<String>,
    /// Extra request header `Name: value` (repeatable). Values are never printed.
    #[arg(long = "header", short = 'H', value_name = "NAME: VALUE")]
    pub headers: Vec<String>,
    /// The request method.
    #[arg(long, short = 'X', default_value = "GET")]
    pub method: String,
    /// A Netscape-format cookie jar (as curl -c writes): the request is also tried with
    /// its cookies for the URL's host.
    #[arg(long, value_name = "FILE")]
    pub cookie_jar: Option<PathBuf>,
    /// Also trust the CA certificate(s) in this PEM file (as curl --cacert, but in
    /// addition to the system's store).
    #[arg(long, value_name = "FILE")]
    pub cacert: Option<PathBuf>,
    /// Do not verify TLS certificates. The report says so first, and still names what
    /// verification would have refused.
    #[arg(long, short = 'k')]
    pub insecure: bool,
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
}

/// Runs the doctor. Exit codes: 0 access works, 1 denied with a diagnosis, 2 could not
/// connect or usage error.
pub fn main(args: Args) -> ExitCode {
    let request = match input::Request::from_args(&args) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("authgate doctor: {e:#}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("authgate doctor: cannot start the runtime: {e}");
            return ExitCode::from(2);
        }
    };
    let findings = runtime.block_on(probe::run(&request));
    let verdict = verdict::decide(&request, &findings);
    if args.json {
        println!("{}", report::json(&request, &findings, &verdict));
    } else {
        print!("{}", report::text(&request, &findings, &verdict));
    }
    ExitCode::from(verdict.exit_code())
}
