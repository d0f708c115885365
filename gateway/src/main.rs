//! The `authgate` command. Exit codes: 0 success, 1 failure at run time, 2 usage or
//! configuration error.
#![forbid(unsafe_code)]

use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use authgate::config::{self, Severity};
use authgate::users::hash::{hash_password, NewHash};
use clap::{Parser, Subcommand, ValueEnum};

/// mimalloc instead of glibc's malloc: a request allocates and frees many small buffers
/// (headers, the audit record), and glibc's allocator took ~9% of the proxy path's CPU in a
/// perf profile; see bench/RESULTS.md. Through `authgate-alloc`, which skips mimalloc's
/// aligned entry points where they only cost (see there).
#[global_allocator]
static GLOBAL: authgate_alloc::MiMalloc = authgate_alloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "authgate",
    version,
    about = "An authentication gateway that answers 401 the way RFC 9110 says"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the gateway.
    Serve {
        /// The TOML configuration file.
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Validate a configuration and every file it names; print each problem with file, line
    /// and column. Exit 2 on any error.
    Check {
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Explain a decision: look up a request id in the audit log, or decide a request now
    /// (dry run: --config FILE --path /x [--header 'Authorization: ...']).
    Explain(authgate::explain::Args),
    /// Explain why URL answers 401 (or 403), from any server, and say how to fix it.
    Doctor(authgate::doctor::Args),
    /// Manage the users in the store: add, passwd, ls, lock, unlock, expire, groups, rm, import.
    User(authgate::manage::UserArgs),
    /// Manage API tokens: issue, ls, revoke.
    Token(authgate::manage::TokenArgs),
    /// Read a password (prompt without echo, or one line on stdin) and print an htpasswd line.
    Hash {
        /// The user name for the line.
        user: String,
        #[arg(long, value_enum, default_value_t = Algorithm::Argon2id)]
        algorithm: Algorithm,
        /// bcrypt cost (4..=31).
        #[arg(long, default_value_t = 10)]
        cost: u32,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum Algorithm {
    Argon2id,
    Bcrypt,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve { config } => serve(config),
        Command::Check { config } => check(config),
        Command::Hash {
            user,
            algorithm,
            cost,
        } => hash(&user, algorithm, cost),
        Command::Doctor(args) => authgate::doctor::main(args),
        Command::Explain(args) => authgate::explain::main(args),
        Command::User(args) => authgate::manage::user_main(args),
        Command::Token(args) => authgate::manage::token_main(args),
    }
}

fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("AUTHGATE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}

/// Prints problems; returns true if any is an error.
fn report(problems: &[config::Problem]) -> bool {
    for p in problems {
        eprintln!("{p}");
    }
    problems.iter().any(|p| p.severity == Severity::Error)
}

fn check(path: PathBuf) -> ExitCode {
    let loaded = config::load(&path);
    if report(&loaded.problems) {
        let n = loaded.errors().count();
        eprintln!(
            "{}: {n} error{}",
            path.display(),
            if n == 1 { "" } else { "s" }
        );
        return ExitCode::from(2);
    }
    if let Some(c) = &loaded.config {
        let users = c.users.as_ref().map_or(0, |u| u.initial.len());
        println!(
            "{}: ok ({} route{}, {users} user{})",
            path.display(),
            c.routes.len(),
            if c.routes.len() == 1 { "" } else { "s" },
            if users == 1 { "" } else { "s" }
        );
        if let Some(store) = &c.store {
            // `check` does not create the store: it only says where it is.
            let state = if store.exists() {
                "exists"
            } else {
                "created on first use"
            };
            println!("store: {} ({state})", store.display());
        }
    }
    ExitCode::SUCCESS
}

fn serve(path: PathBuf) -> ExitCode {
    init_tracing();
    let loaded = config::load(&path);
    if report(&loaded.problems) {
        eprintln!(
            "{}: not starting because of the errors above (see `authgate check`)",
            path.display()
        );
        return ExitCode::from(2);
    }
    let Some(config) = loaded.config else {
        return ExitCode::from(2);
    };
    match authgate::serve::serve(config) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("authgate: {e:#}");
            ExitCode::from(1)
        }
    }
}

fn hash(user: &str, algorithm: Algorithm, cost: u32) -> ExitCode {
    if user.is_empty() || user.contains(':') || user.chars().any(char::is_control) {
        eprintln!("the user name must be non-empty, without ':' or control characters");
        return ExitCode::from(2);
    }
    let password = if std::io::stdin().is_terminal() {
        let first = rpassword::prompt_password("Password: ");
        let again = rpassword::prompt_password("Again: ");
        match (first, again) {
            (Ok(a), Ok(b)) if a == b => a,
            (Ok(_), Ok(_)) => {
                eprintln!("the passwords differ");
                return ExitCode::from(2);
            }
            (Err(e), _) | (_, Err(e)) => {
                eprintln!("cannot read the password: {e}");
                return ExitCode::from(2);
            }
        }
    } else {
        let mut line = String::new();
        if let Err(e) = std::io::stdin().lock().read_line(&mut line) {
            eprintln!("cannot read the password from stdin: {e}");
            return ExitCode::from(2);
        }
        line.trim_end_matches(['\n', '\r']).to_string()
    };
    if password.is_empty() {
        eprintln!("refusing an empty password");
        return ExitCode::from(2);
    }
    let scheme = match algorithm {
        Algorithm::Argon2id => NewHash::Argon2id,
        Algorithm::Bcrypt => NewHash::Bcrypt { cost },
    };
    match hash_password(password.as_bytes(), scheme) {
        Ok(h) => {
            let mut out = std::io::stdout().lock();
            let _ = writeln!(out, "{user}:{h}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("cannot hash: {e}");
            ExitCode::from(2)
        }
    }
}
