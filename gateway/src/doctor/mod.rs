//! `authgate doctor URL`: explain a 401 from any server and say how to fix it.

use std::process::ExitCode;

/// Command-line arguments of `authgate doctor`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The URL that answers 401 (or should not).
    pub url: String,
}

/// Runs the doctor. Exit codes: 0 access works, 1 denied with a diagnosis, 2 could not
/// connect or usage error.
pub fn main(args: Args) -> ExitCode {
    eprintln!("authgate doctor {}: not implemented yet", args.url);
    ExitCode::from(2)
}
