//! The open-file limit, and the connection limits fitted under it.
//!
//! Every client connection is a file descriptor, and so is its upstream connection. Linux
//! starts most processes with a soft limit of 1,024 open files (systemd's default, and most
//! shells'), far below what `max_connections` (default 10,000) needs, while the hard limit
//! is usually much higher (systemd: 524,288). Past the soft limit, `accept` and every new
//! upstream connection fail with `EMFILE`: measured before this module existed, 400 keep-alive
//! clients at a soft limit of 256 turned 99.9% of valid requests into 502s.
//!
//! So `authgate serve` does what Go's runtime does at start and what nginx's
//! `worker_rlimit_nofile` is for: it raises the soft limit to the hard one. If even the hard
//! limit is too low for `max_connections`, it lowers `max_connections` to what fits and says
//! so: past that many, new clients wait in the kernel's backlog (see `accept`), which is
//! better than being accepted and answered with a 502.

/// Descriptors kept for everything that is not a connection: the listeners, the runtime's
/// epoll and wake-up descriptors, the audit log, the store, the htpasswd watcher, the
/// static files being served.
pub const RESERVED: u64 = 64;

/// Descriptors one client connection may hold: its own socket, its pinned upstream
/// connection, and one idle upstream connection that a closed client connection left in the
/// shared pool (`forward::pool`). HTTP/2 clients, whose concurrent streams each take an
/// upstream connection of their own, stay within it too: `forward::pool` opens at most two
/// upstream connections per allowed client connection.
pub const PER_CONNECTION: u64 = 3;

/// The open-file limit before and after [`raise`]. `None` is "unlimited".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Nofile {
    pub before: Option<u64>,
    pub now: Option<u64>,
}

/// What the soft limit is raised to when the hard limit is "unlimited", which Linux never
/// reports for open files (its ceiling is `fs.nr_open`, by default this) but macOS does,
/// while refusing an unlimited soft limit.
const UNLIMITED_TARGET: u64 = 1 << 20;

/// Raises the soft open-file limit to the hard limit. A limit that cannot be read or changed
/// (not Unix, or a sandbox that forbids it) is reported as it was.
#[cfg(unix)]
pub fn raise() -> Nofile {
    use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};
    let limit = getrlimit(Resource::Nofile);
    let before = limit.current;
    let target = limit.maximum.unwrap_or(UNLIMITED_TARGET);
    if limit.current.is_none_or(|c| c >= target) {
        return Nofile {
            before,
            now: before,
        };
    }
    let raised = Rlimit {
        current: Some(target),
        maximum: limit.maximum,
    };
    match setrlimit(Resource::Nofile, raised) {
        Ok(()) => Nofile {
            before,
            now: getrlimit(Resource::Nofile).current,
        },
        Err(e) => {
            tracing::warn!(error = %e, "cannot raise the open-file limit");
            Nofile {
                before,
                now: before,
            }
        }
    }
}

#[cfg(not(unix))]
pub fn raise() -> Nofile {
    Nofile {
        before: None,
        now: None,
    }
}

/// The most client connections that fit under an open-file `limit` (`None`: unlimited).
pub fn connections_that_fit(limit: Option<u64>) -> Option<usize> {
    let limit = limit?;
    let n = limit.saturating_sub(RESERVED) / PER_CONNECTION;
    Some(usize::try_from(n).unwrap_or(usize::MAX).max(1))
}

/// The open files `max_connections` connections may need.
pub fn files_needed(max_connections: usize) -> u64 {
    PER_CONNECTION
        .saturating_mul(u64::try_from(max_connections).unwrap_or(u64::MAX))
        .saturating_add(RESERVED)
}

/// Raises the open-file limit and returns the `max_connections` that fits under it: the
/// configured value, or less (logged as a warning) when the limit is too low for it.
pub fn fit(max_connections: usize) -> usize {
    let nofile = raise();
    let fits = connections_that_fit(nofile.now);
    let show = |l: Option<u64>| l.map_or_else(|| "unlimited".to_owned(), |l| l.to_string());
    tracing::info!(
        limit = %show(nofile.now),
        was = %show(nofile.before),
        "open-file limit"
    );
    match fits {
        Some(fits) if fits < max_connections => {
            tracing::warn!(
                "max_connections = {max_connections} needs about {} open files, and this \
                 process may open {} (raise the hard limit with `ulimit -Hn`, or \
                 systemd's LimitNOFILE=); accepting at most {fits} connections at once, \
                 further clients wait in the listen backlog",
                files_needed(max_connections),
                show(nofile.now),
            );
            fits
        }
        _ => max_connections,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connections_fit_under_the_limit_with_room_for_the_rest() {
        assert_eq!(connections_that_fit(None), None);
        // systemd's default soft limit
        assert_eq!(connections_that_fit(Some(1024)), Some(320));
        assert!(files_needed(320) <= 1024);
        assert!(files_needed(321) > 1024);
        // systemd's default hard limit fits the default max_connections
        assert!(connections_that_fit(Some(524_288)) > Some(10_000));
        // a limit below the reserve still lets one connection in
        assert_eq!(connections_that_fit(Some(10)), Some(1));
    }

    #[test]
    fn the_files_needed_never_overflow() {
        assert_eq!(files_needed(usize::MAX), u64::MAX);
        assert_eq!(files_needed(10_000), 30_064);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn raising_leaves_the_soft_limit_at_the_hard_one() {
        use rustix::process::{getrlimit, Resource};
        let n = raise();
        let after = getrlimit(Resource::Nofile);
        assert_eq!(n.now, after.current);
        assert_eq!(after.current, after.maximum);
    }
}
