//! `authgate user …` and `authgate token …`: manage the users and API tokens in the store.
//!
//! Each command is one short SQLite transaction; a running gateway sees the change within a
//! second (it watches the store). Times come from the same clock as the gateway, so tests
//! can shift it (see [`crate::clock`]).

use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Subcommand};

use crate::authenticate::token;
use crate::clock::Clock;
use crate::config;
use crate::store::{Store, TokenRow, UserRow};
use crate::users::hash::{hash_password, NewHash, PasswordHash};

/// Where the store is: `--store FILE`, or the `[store] path` of `--config FILE`.
#[derive(Args, Debug)]
pub struct StoreArgs {
    /// The configuration whose `[store] path` to use.
    #[arg(long, short, global = true)]
    config: Option<PathBuf>,
    /// The store file itself (overrides --config).
    #[arg(long, global = true)]
    store: Option<PathBuf>,
}

#[derive(Args, Debug)]
pub struct UserArgs {
    #[command(flatten)]
    at: StoreArgs,
    #[command(subcommand)]
    command: UserCommand,
}

#[derive(Subcommand, Debug)]
enum UserCommand {
    /// Add a user; the password is read from a prompt (twice) or one line of stdin.
    Add {
        name: String,
        /// Groups, comma-separated (added to those in the config's [groups]).
        #[arg(long, value_delimiter = ',')]
        groups: Vec<String>,
        /// The account stops working at this time: a date (2027-01-31), an RFC 3339 time,
        /// or a duration from now (90d).
        #[arg(long)]
        expires: Option<String>,
        /// Hash with bcrypt (cost 10) instead of argon2id.
        #[arg(long)]
        bcrypt: bool,
    },
    /// Set a new password (read like `add`); clears a forced password expiry.
    Passwd {
        name: String,
        #[arg(long)]
        bcrypt: bool,
    },
    /// List the users with their state.
    Ls,
    /// Refuse the user's sign-ins, tokens and sessions until `unlock` (reason `account_locked`).
    Lock {
        name: String,
    },
    Unlock {
        name: String,
    },
    /// Expire the account now or at --at, force a password change with --password, or undo
    /// with --clear. An expired account or password gets reason `expired_credentials`.
    Expire {
        name: String,
        /// When: a date, an RFC 3339 time or a duration from now (default: now).
        #[arg(long)]
        at: Option<String>,
        /// Expire the password instead of the account.
        #[arg(long, conflicts_with = "at")]
        password: bool,
        /// Remove the account's expiry date and a forced password expiry.
        #[arg(long, conflicts_with_all = ["at", "password"])]
        clear: bool,
    },
    /// Replace the user's groups (comma-separated; empty to clear).
    Groups {
        name: String,
        #[arg(value_delimiter = ',')]
        groups: Vec<String>,
    },
    /// Remove the user, with their tokens and sessions.
    Rm {
        name: String,
    },
    /// Copy the users of an htpasswd file into the store, keeping their hashes. Users that
    /// already exist are left alone.
    Import {
        file: PathBuf,
    },
}

#[derive(Args, Debug)]
pub struct TokenArgs {
    #[command(flatten)]
    at: StoreArgs,
    #[command(subcommand)]
    command: TokenCommand,
}

#[derive(Subcommand, Debug)]
enum TokenCommand {
    /// Issue an API token and print it once (only its hash is stored).
    Issue {
        #[arg(long)]
        user: String,
        /// Scopes, comma-separated.
        #[arg(long, value_delimiter = ',')]
        scopes: Vec<String>,
        /// Time to live (e.g. 90d, 12h); without it the token expires only by idleness or
        /// revocation.
        #[arg(long)]
        ttl: Option<String>,
        /// A label for `token ls`.
        #[arg(long, default_value = "")]
        name: String,
    },
    /// List tokens (never their secrets).
    Ls,
    /// Revoke a token by id; it is refused from then on (reason `invalid_token`).
    Revoke { id: String },
}

/// Opens the store named by the arguments.
fn open(at: &StoreArgs) -> Result<(Store, Option<config::Config>), String> {
    let config = match &at.config {
        Some(path) => {
            let loaded = config::load(path);
            let errors: Vec<String> = loaded.errors().map(ToString::to_string).collect();
            if !errors.is_empty() {
                return Err(errors.join("\n"));
            }
            loaded.config
        }
        None => None,
    };
    let path = match (&at.store, config.as_ref().and_then(|c| c.store.clone())) {
        (Some(p), _) => p.clone(),
        (None, Some(p)) => p,
        (None, None) if at.config.is_some() => {
            return Err("the configuration has no [store] path".into())
        }
        (None, None) => return Err("say which store: --config FILE or --store FILE".into()),
    };
    Store::open(&path)
        .map(|s| (s, config))
        .map_err(|e| e.to_string())
}

fn now(clock: &Clock) -> u64 {
    clock.now().as_secs()
}

/// A point in time: `now`, a date, an RFC 3339 time, or a duration from now.
fn when(s: &str, clock: &Clock) -> Result<u64, String> {
    if s == "now" {
        return Ok(now(clock));
    }
    if let Ok(d) = humantime::parse_duration(s) {
        return Ok(now(clock).saturating_add(d.as_secs()));
    }
    let text = if s.len() == 10 {
        format!("{s}T00:00:00Z")
    } else {
        s.to_string()
    };
    humantime::parse_rfc3339_weak(&text)
        .map_err(|_| {
            format!("`{s}` is not a date (2027-01-31), a time (RFC 3339) or a duration (90d)")
        })
        .and_then(|t| {
            t.duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .map_err(|_| format!("`{s}` is before 1970"))
        })
}

fn date(t: Option<u64>) -> String {
    match t {
        None => "-".into(),
        Some(t) => {
            humantime::format_rfc3339_seconds(std::time::UNIX_EPOCH + Duration::from_secs(t))
                .to_string()
        }
    }
}

fn valid_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.contains(':') || name.chars().any(char::is_control) {
        return Err("a user name is non-empty, without ':' or control characters".into());
    }
    Ok(())
}

/// Reads a new password: twice from a terminal, or one line of stdin.
pub fn read_new_password() -> Result<String, String> {
    let password = if std::io::stdin().is_terminal() {
        let first = rpassword::prompt_password("Password: ").map_err(|e| e.to_string())?;
        let again = rpassword::prompt_password("Again: ").map_err(|e| e.to_string())?;
        if first != again {
            return Err("the passwords differ".into());
        }
        first
    } else {
        let mut line = String::new();
        std::io::stdin()
            .lock()
            .read_line(&mut line)
            .map_err(|e| format!("cannot read the password from stdin: {e}"))?;
        line.trim_end_matches(['\n', '\r']).to_string()
    };
    if password.is_empty() {
        return Err("refusing an empty password".into());
    }
    Ok(password)
}

fn new_hash(bcrypt: bool) -> Result<String, String> {
    let password = read_new_password()?;
    let scheme = if bcrypt {
        NewHash::Bcrypt { cost: 10 }
    } else {
        NewHash::Argon2id
    };
    hash_password(password.as_bytes(), scheme).map_err(|e| format!("cannot hash: {e}"))
}

fn finish(result: Result<(), String>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("authgate: {e}");
            ExitCode::from(1)
        }
    }
}

pub fn user_main(args: UserArgs) -> ExitCode {
    let (mut store, _) = match open(&args.at) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("authgate: {e}");
            return ExitCode::from(2);
        }
    };
    let clock = Clock::from_env();
    finish(user(&mut store, args.command, &clock))
}

fn user(store: &mut Store, command: UserCommand, clock: &Clock) -> Result<(), String> {
    let e = |e: crate::store::StoreError| e.to_string();
    match command {
        UserCommand::Add {
            name,
            groups,
            expires,
            bcrypt,
        } => {
            valid_name(&name)?;
            let expires = expires.map(|w| when(&w, clock)).transpose()?;
            if store.user(&name).map_err(e)?.is_some() {
                return Err(format!(
                    "user {name} already exists (use `authgate user passwd`)"
                ));
            }
            let hash = new_hash(bcrypt)?;
            let t = now(clock);
            store
                .add_user(&UserRow {
                    name: name.clone(),
                    hash,
                    groups,
                    created: t,
                    password_changed: t,
                    expires,
                    password_expired: false,
                    locked: false,
                })
                .map_err(e)?;
            println!("added {name}");
        }
        UserCommand::Passwd { name, bcrypt } => {
            if store.user(&name).map_err(e)?.is_none() {
                return Err(format!("no user {name} in the store"));
            }
            let hash = new_hash(bcrypt)?;
            store.set_password(&name, &hash, now(clock)).map_err(e)?;
            println!("password changed for {name}");
        }
        UserCommand::Ls => {
            let t = now(clock);
            let mut out = std::io::stdout().lock();
            let _ = writeln!(
                out,
                "{:<20} {:<18} {:<22} {:<20} {:<20}",
                "NAME", "STATE", "GROUPS", "PASSWORD SET", "EXPIRES"
            );
            for u in store.users().map_err(e)? {
                let state = if u.locked {
                    "locked"
                } else if u.expires.is_some_and(|x| x <= t) {
                    "account expired"
                } else if u.password_expired {
                    "password expired"
                } else {
                    "active"
                };
                let _ = writeln!(
                    out,
                    "{:<20} {:<18} {:<22} {:<20} {:<20}",
                    u.name,
                    state,
                    if u.groups.is_empty() {
                        "-".into()
                    } else {
                        u.groups.join(",")
                    },
                    date(Some(u.password_changed)),
                    date(u.expires)
                );
            }
        }
        UserCommand::Lock { name } => {
            store.set_locked(&name, true).map_err(e)?;
            println!("locked {name}");
        }
        UserCommand::Unlock { name } => {
            store.set_locked(&name, false).map_err(e)?;
            println!("unlocked {name}");
        }
        UserCommand::Expire {
            name,
            at,
            password,
            clear,
        } => {
            if clear {
                store.set_expires(&name, None).map_err(e)?;
                store.set_password_expired(&name, false).map_err(e)?;
                println!("{name}: no expiry");
            } else if password {
                store.set_password_expired(&name, true).map_err(e)?;
                println!("{name}: password expired; `authgate user passwd {name}` sets a new one");
            } else {
                let at = when(at.as_deref().unwrap_or("now"), clock)?;
                store.set_expires(&name, Some(at)).map_err(e)?;
                println!("{name}: account expires {}", date(Some(at)));
            }
        }
        UserCommand::Groups { name, groups } => {
            let groups: Vec<String> = groups.into_iter().filter(|g| !g.is_empty()).collect();
            store.set_groups(&name, &groups).map_err(e)?;
            println!(
                "{name}: groups {}",
                if groups.is_empty() {
                    "-".into()
                } else {
                    groups.join(",")
                }
            );
        }
        UserCommand::Rm { name } => {
            store.remove_user(&name).map_err(e)?;
            println!("removed {name} (and their tokens and sessions)");
        }
        UserCommand::Import { file } => import(store, &file, clock)?,
    }
    Ok(())
}

/// Reads an htpasswd file (every line checked first, nothing written on any error), then
/// adds its users in one transaction, with progress on stderr for large files.
fn import(store: &mut Store, file: &std::path::Path, clock: &Clock) -> Result<(), String> {
    let text = std::fs::read_to_string(file)
        .map_err(|e| format!("cannot read {}: {e}", file.display()))?;
    let mut users = Vec::new();
    let mut errors = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim_end_matches('\r');
        if line.trim().is_empty() || line.trim_start().starts_with('#') {
            continue;
        }
        let Some((name, hash)) = line.split_once(':') else {
            errors.push(format!(
                "{}:{}: no ':' between user and hash",
                file.display(),
                i + 1
            ));
            continue;
        };
        if let Err(e) = valid_name(name).and_then(|()| {
            PasswordHash::parse(hash)
                .map(|_| ())
                .map_err(|e| e.to_string())
        }) {
            errors.push(format!("{}:{}: user `{name}`: {e}", file.display(), i + 1));
            continue;
        }
        users.push((name.to_string(), hash.to_string()));
    }
    if !errors.is_empty() {
        return Err(format!("nothing imported:\n{}", errors.join("\n")));
    }
    let total = users.len();
    let show = total >= 1000;
    let mut progress = |done: usize| {
        if show {
            eprint!("\rimported {done}/{total}");
        }
    };
    let (added, skipped) = store
        .import_users(&users, now(clock), &mut progress)
        .map_err(|e| e.to_string())?;
    if show {
        eprintln!();
    }
    println!(
        "imported {added} user{} from {} ({skipped} already in the store, left alone)",
        if added == 1 { "" } else { "s" },
        file.display()
    );
    Ok(())
}

pub fn token_main(args: TokenArgs) -> ExitCode {
    let (store, config) = match open(&args.at) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("authgate: {e}");
            return ExitCode::from(2);
        }
    };
    let clock = Clock::from_env();
    finish(tokens(&store, config.as_ref(), args.command, &clock))
}

fn tokens(
    store: &Store,
    config: Option<&config::Config>,
    command: TokenCommand,
    clock: &Clock,
) -> Result<(), String> {
    let e = |e: crate::store::StoreError| e.to_string();
    match command {
        TokenCommand::Issue {
            user,
            scopes,
            ttl,
            name,
        } => {
            let in_store = store.user(&user).map_err(e)?.is_some();
            let in_file = config
                .and_then(|c| c.users.as_ref())
                .is_some_and(|u| u.initial.get(&user).is_some());
            if !in_store && !in_file {
                return Err(format!(
                    "no user {user} in the store{}",
                    if config.is_some() {
                        " or the htpasswd file"
                    } else {
                        " (give --config to look in the htpasswd file too)"
                    }
                ));
            }
            for s in &scopes {
                if s.is_empty()
                    || !s.bytes().all(|b| {
                        b == 0x21 || (0x23..=0x5b).contains(&b) || (0x5d..=0x7e).contains(&b)
                    })
                {
                    return Err(format!(
                        "`{s}` is not a scope: printable ASCII without spaces, '\"' or '\\'"
                    ));
                }
            }
            let t = now(clock);
            let expires = match ttl {
                Some(ttl) => Some(
                    t.saturating_add(
                        humantime::parse_duration(&ttl)
                            .map_err(|_| format!("`{ttl}` is not a duration (e.g. 90d, 12h)"))?
                            .as_secs(),
                    ),
                ),
                None => None,
            };
            let new = token::generate();
            store
                .add_token(&TokenRow {
                    id: new.id.clone(),
                    user: user.clone(),
                    name,
                    scopes,
                    secret_sha256: new.secret_sha256,
                    created: t,
                    expires,
                    last_used: None,
                    revoked: None,
                })
                .map_err(e)?;
            // The token on stdout alone (for scripts); the rest on stderr.
            println!("{}", new.token.expose());
            eprintln!(
                "token {} for {user}{}: shown once, store it now",
                new.id,
                expires
                    .map(|x| format!(", expires {}", date(Some(x))))
                    .unwrap_or_default()
            );
        }
        TokenCommand::Ls => {
            let t = now(clock);
            let mut out = std::io::stdout().lock();
            let _ = writeln!(
                out,
                "{:<13} {:<16} {:<12} {:<16} {:<9} {:<20} {:<20}",
                "ID", "USER", "NAME", "SCOPES", "STATE", "EXPIRES", "LAST USED"
            );
            for tk in store.tokens().map_err(e)? {
                let state = if tk.revoked.is_some() {
                    "revoked"
                } else if tk.expires.is_some_and(|x| x <= t) {
                    "expired"
                } else {
                    "active"
                };
                let _ = writeln!(
                    out,
                    "{:<13} {:<16} {:<12} {:<16} {:<9} {:<20} {:<20}",
                    tk.id,
                    tk.user,
                    if tk.name.is_empty() { "-" } else { &tk.name },
                    if tk.scopes.is_empty() {
                        "-".into()
                    } else {
                        tk.scopes.join(",")
                    },
                    state,
                    date(tk.expires),
                    date(tk.last_used)
                );
            }
        }
        TokenCommand::Revoke { id } => {
            store.revoke_token(&id, now(clock)).map_err(e)?;
            println!("revoked {id}");
        }
    }
    Ok(())
}
