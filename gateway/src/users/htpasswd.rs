//! Apache htpasswd files: `user:hash` per line.
//!
//! What is accepted, and how it compares with Apache's mod_authn_file:
//! - Each line is trimmed of leading and trailing whitespace, as Apache's `ap_cfg_getline()`
//!   does; so CRLF line ends and indentation are fine.
//! - Blank lines and lines whose first non-blank character is `#` are ignored, as in Apache.
//! - The user name is everything before the first `:`; it may not be empty, may not end with
//!   whitespace and may not contain control characters. The hash is everything after it and
//!   may not start with whitespace. Apache would read `alice :hash` as user `"alice "` and
//!   `alice: hash` as hash `" hash"`, neither of which ever matches, so we refuse them instead
//!   of silently locking the user out.
//! - A duplicate user name is an error. Apache uses the first; we refuse so the admin notices.
//! - A UTF-8 byte-order mark at the start of the file is skipped.
//! - The hash formats are those of [`PasswordHash::parse`]; anything else is an error.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use sha2::{Digest as _, Sha256};

use super::hash::{Algorithm, Cost, PasswordHash, DEFAULT_BCRYPT_COST};

/// A parsed htpasswd file.
pub struct Htpasswd {
    entries: HashMap<String, Entry>,
    dummy: Arc<PasswordHash>,
}

/// One user's line.
#[derive(Debug, Clone)]
pub struct Entry {
    /// 1-based line number in the file.
    pub line: usize,
    pub hash: Arc<PasswordHash>,
    /// SHA-256 of the hash string as written: a cache-key ingredient, so that a changed hash
    /// invalidates cached verifications.
    pub fingerprint: [u8; 32],
}

/// A problem on one line of an htpasswd file.
///
/// `Display` gives `line 3, column 7: <message>`. Lines and columns are 1-based; columns count
/// characters. Messages may name the user but never contain the hash text (which, on a
/// malformed line, may be a plaintext password).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineError {
    pub line: usize,
    pub column: usize,
    pub message: String,
}

impl fmt::Display for LineError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "line {}, column {}: {}",
            self.line, self.column, self.message
        )
    }
}

impl std::error::Error for LineError {}

impl Htpasswd {
    /// Parses the whole file and returns every problem, not just the first.
    ///
    /// On success also computes the timing-equalisation dummy (see [`Htpasswd::dummy`]), which
    /// costs one hash computation (~50 ms for bcrypt cost 10): parse at load time, not per request.
    ///
    /// # Errors
    /// One [`LineError`] per bad line, in line order: no `:`, an empty user name, whitespace
    /// around the `:`, a duplicate user, or a hash that [`PasswordHash::parse`] refuses.
    pub fn parse(text: &str) -> Result<Htpasswd, Vec<LineError>> {
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        let mut entries: HashMap<String, Entry> = HashMap::new();
        let mut first_seen: HashMap<&str, usize> = HashMap::new();
        let mut errors = Vec::new();

        // `lines()` splits on `\n` and drops a `\r` before it.
        for (index, raw) in text.lines().enumerate() {
            let line = index + 1;
            let fields = match split_line(raw) {
                Ok(Some(fields)) => fields,
                Ok(None) => continue,
                Err((column, message)) => {
                    errors.push(LineError {
                        line,
                        column,
                        message,
                    });
                    continue;
                }
            };
            if let Some(&first) = first_seen.get(fields.user) {
                errors.push(LineError {
                    line,
                    column: fields.user_column,
                    message: format!(
                        "duplicate user {:?} (first defined on line {first}); Apache would use the first entry, remove one of them",
                        fields.user
                    ),
                });
                continue;
            }
            first_seen.insert(fields.user, line);
            match PasswordHash::parse(fields.hash) {
                Ok(hash) => {
                    entries.insert(
                        fields.user.to_owned(),
                        Entry {
                            line,
                            hash: Arc::new(hash),
                            fingerprint: Sha256::digest(fields.hash.as_bytes()).into(),
                        },
                    );
                }
                Err(e) => errors.push(LineError {
                    line,
                    column: fields.hash_column,
                    message: format!("user {:?}: {e}", fields.user),
                }),
            }
        }

        if !errors.is_empty() {
            return Err(errors);
        }
        let dummy = Arc::new(pick_dummy(&entries));
        Ok(Htpasswd { entries, dummy })
    }

    /// The entry for `user` (exact, case-sensitive match, as in Apache), if any.
    pub fn get(&self, user: &str) -> Option<&Entry> {
        self.entries.get(user)
    }

    /// The number of users.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the file has no users.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The user names, in no particular order.
    pub fn users(&self) -> impl Iterator<Item = &str> {
        self.entries.keys().map(String::as_str)
    }

    /// A hash of a random password to verify against when the user is unknown, so that
    /// unknown users cost the same time as known ones. Precomputed at parse time; cheap to call.
    ///
    /// It imitates the most common (algorithm, cost) in the file, ties going to the stronger
    /// (slower) one; for an empty file it is a bcrypt cost-10 hash.
    pub fn dummy(&self) -> Arc<PasswordHash> {
        Arc::clone(&self.dummy)
    }
}

impl fmt::Debug for Htpasswd {
    // Users and algorithms only: no reason for a debug log to carry every hash.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut users: Vec<(&str, Algorithm)> = self
            .entries
            .iter()
            .map(|(user, entry)| (user.as_str(), entry.hash.algorithm()))
            .collect();
        users.sort_unstable_by_key(|&(user, _)| user);
        f.debug_struct("Htpasswd")
            .field("users", &users)
            .field("dummy", &self.dummy.algorithm())
            .finish()
    }
}

/// The user and hash of a line, with their 1-based columns.
struct Fields<'a> {
    user: &'a str,
    user_column: usize,
    hash: &'a str,
    hash_column: usize,
}

/// Apache's `apr_isspace` set: trimmed from both ends of a line.
fn is_blank(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\n' | '\r' | '\x0b' | '\x0c')
}

/// Splits one raw line. `Ok(None)` for blank and comment lines; `Err((column, message))`
/// for a line that is not `user:hash`.
fn split_line(raw: &str) -> Result<Option<Fields<'_>>, (usize, String)> {
    let content = raw.trim_start_matches(is_blank);
    let user_column = raw.chars().count() - content.chars().count() + 1;
    let content = content.trim_end_matches(is_blank);
    if content.is_empty() || content.starts_with('#') {
        return Ok(None);
    }
    let Some((user, hash)) = content.split_once(':') else {
        return Err((
            user_column,
            "expected `user:hash`, found no ':' (comments start with '#')".to_owned(),
        ));
    };
    let user_chars = user.chars().count();
    let hash_column = user_column + user_chars + 1;
    if user.is_empty() {
        return Err((
            user_column,
            "empty user name before ':'; expected `user:hash`".to_owned(),
        ));
    }
    if user.ends_with(is_blank) {
        return Err((
            user_column + user_chars - 1,
            format!(
                "user name {user:?} ends with whitespace, which Apache would keep as part of the name; remove it"
            ),
        ));
    }
    if let Some(offset) = user.chars().position(char::is_control) {
        return Err((
            user_column + offset,
            format!("user name {user:?} contains a control character"),
        ));
    }
    if hash.starts_with(is_blank) {
        return Err((
            hash_column,
            format!(
                "user {user:?}: whitespace after ':', which Apache would keep as part of the hash so that it never matches; remove it"
            ),
        ));
    }
    Ok(Some(Fields {
        user,
        user_column,
        hash,
        hash_column,
    }))
}

/// A dummy like the most common (algorithm, cost) among `entries`, ties going to the
/// stronger one; a bcrypt cost-10 dummy if there are none.
fn pick_dummy(entries: &HashMap<String, Entry>) -> PasswordHash {
    let mut groups: HashMap<(Algorithm, Cost), (usize, &PasswordHash)> = HashMap::new();
    for entry in entries.values() {
        let key = (entry.hash.algorithm(), entry.hash.cost());
        groups.entry(key).or_insert((0, &entry.hash)).0 += 1;
    }
    groups
        .into_iter()
        .max_by_key(|&((algorithm, cost), (count, _))| (count, algorithm.strength_rank(), cost))
        .map(|(_, (_, hash))| hash.dummy_like())
        .unwrap_or_else(|| PasswordHash::dummy_bcrypt(DEFAULT_BCRYPT_COST))
}

#[cfg(test)]
mod tests {
    use super::*;

    // Apache htpasswd 2.4.71: `htpasswd -nbB -C 4 alice 'correct horse battery staple'` etc.
    const BCRYPT_C4: &str = "$2y$04$2RZTJKvxkSXnieSlNDsVIOWNqkYJw9Rvq.ZNbo837PerApVVNt3Qe";
    const APR1: &str = "$apr1$i8FQmNqN$nRUOzD21ps72b7aZq3T8v1";
    const SHA1: &str = "{SHA}q/eq1kOINtvlJqojGr3i0O73TUI=";
    const SHA256: &str = "$5$6RKqpQnTZYsMlN7L$hTWQZ3vkOgs5q3qW3wCBlhrY6oWcy8huT2PdyWZvOJ3";
    const PASSWORD: &[u8] = b"correct horse battery staple";

    fn parse_ok(text: &str) -> Htpasswd {
        match Htpasswd::parse(text) {
            Ok(file) => file,
            Err(errors) => panic!("{text:?} failed: {errors:?}"),
        }
    }

    fn parse_errors(text: &str) -> Vec<LineError> {
        match Htpasswd::parse(text) {
            Ok(file) => panic!("{text:?} parsed: {file:?}"),
            Err(errors) => errors,
        }
    }

    /// Asserts exactly one error, at `line`:`column`, whose message contains `needle`.
    fn assert_one_error(text: &str, line: usize, column: usize, needle: &str) {
        let errors = parse_errors(text);
        assert_eq!(errors.len(), 1, "{text:?}: {errors:?}");
        let e = &errors[0];
        assert_eq!((e.line, e.column), (line, column), "{text:?}: {e}");
        assert!(e.message.contains(needle), "{text:?}: {e} lacks {needle:?}");
    }

    #[test]
    fn parses_users_comments_blank_lines_and_crlf() {
        let text = format!(
            "# users\r\n\r\nalice:{BCRYPT_C4}\r\n  bob:{APR1}  \n\t# indented comment\ncarol:{SHA1}\ndave:{SHA256}"
        );
        let file = parse_ok(&text);
        assert_eq!(file.len(), 4);
        assert!(!file.is_empty());
        let mut users: Vec<&str> = file.users().collect();
        users.sort_unstable();
        assert_eq!(users, ["alice", "bob", "carol", "dave"]);

        let alice = file.get("alice").map(|e| (e.line, e.hash.algorithm()));
        assert_eq!(alice, Some((3, Algorithm::Bcrypt)));
        assert_eq!(file.get("bob").map(|e| e.line), Some(4));
        for user in ["alice", "bob", "carol", "dave"] {
            let verified = file.get(user).is_some_and(|e| e.hash.verify(PASSWORD));
            assert!(verified, "{user}");
        }
        assert!(file.get("Alice").is_none(), "user names are case-sensitive");
        assert!(file.get("eve").is_none());
    }

    #[test]
    fn user_names_may_contain_spaces_and_utf8() {
        let file = parse_ok(&format!("jöhn doe:{APR1}\n"));
        assert!(file.get("jöhn doe").is_some());
    }

    #[test]
    fn hash_may_contain_colons_after_the_first() {
        // Only the first ':' separates; the rest belongs to the hash (and here makes it invalid).
        assert_one_error("alice:{SHA}a:b", 1, 7, "malformed SHA-1");
    }

    #[test]
    fn fingerprint_is_sha256_of_the_hash_text() {
        let file = parse_ok(&format!("alice:{APR1}\nbob:{SHA1}\n"));
        let expected: [u8; 32] = Sha256::digest(APR1.as_bytes()).into();
        assert_eq!(file.get("alice").map(|e| e.fingerprint), Some(expected));
        assert_ne!(
            file.get("alice").map(|e| e.fingerprint),
            file.get("bob").map(|e| e.fingerprint)
        );
    }

    #[test]
    fn refuses_des_crypt() {
        // htpasswd -nbd alice 'correct horse battery staple'
        assert_one_error("alice:iW4lwsBD8NrtE\n", 1, 7, "DES hashes (htpasswd -d)");
    }

    #[test]
    fn refuses_plaintext_without_echoing_it() {
        let errors = parse_errors("\n  bob:correct horse battery staple\n");
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert_eq!((errors[0].line, errors[0].column), (2, 7));
        let shown = errors[0].to_string();
        assert!(
            shown.contains("plaintext passwords (htpasswd -p)"),
            "{shown}"
        );
        assert!(
            !shown.contains("horse"),
            "error echoes the password: {shown}"
        );
    }

    #[test]
    fn refuses_garbage() {
        assert_one_error("alice:$xyz$abc\n", 1, 7, "unknown hash format");
    }

    #[test]
    fn refuses_truncated_bcrypt() {
        let truncated = BCRYPT_C4.get(..40).unwrap_or_default();
        assert_one_error(&format!("# c\nalice:{truncated}"), 2, 7, "malformed bcrypt");
    }

    #[test]
    fn refuses_bad_bcrypt_cost() {
        let bad = BCRYPT_C4.replacen("$04$", "$32$", 1);
        assert_one_error(&format!("alice:{bad}"), 1, 7, "cost 32 is out of range");
    }

    #[test]
    fn refuses_missing_colon() {
        assert_one_error(&format!("alice:{APR1}\n   bob{APR1}\n"), 2, 4, "no ':'");
    }

    #[test]
    fn refuses_empty_user() {
        assert_one_error(&format!("alice:{APR1}\n:{APR1}\n"), 2, 1, "empty user name");
    }

    #[test]
    fn refuses_duplicate_user() {
        let text = format!("alice:{APR1}\nbob:{SHA1}\n alice:{SHA1}\n");
        assert_one_error(
            &text,
            3,
            2,
            "duplicate user \"alice\" (first defined on line 1)",
        );
    }

    #[test]
    fn refuses_whitespace_around_the_colon() {
        assert_one_error(&format!("alice :{APR1}"), 1, 6, "ends with whitespace");
        assert_one_error(&format!("alice: {APR1}"), 1, 7, "whitespace after ':'");
        assert_one_error(&format!("alice:\t{APR1}"), 1, 7, "whitespace after ':'");
    }

    #[test]
    fn refuses_empty_hash() {
        assert_one_error("alice:\n", 1, 7, "empty hash");
    }

    #[test]
    fn reports_every_error_with_its_line() {
        let text = format!(
            "alice:iW4lwsBD8NrtE\nbob:{APR1}\nnocolon\n:{SHA1}\nbob:{SHA1}\ncarol:$2y$04$short\n"
        );
        let errors = parse_errors(&text);
        let places: Vec<(usize, usize)> = errors.iter().map(|e| (e.line, e.column)).collect();
        assert_eq!(
            places,
            [(1, 7), (3, 1), (4, 1), (5, 1), (6, 7)],
            "{errors:?}"
        );
        assert_eq!(
            errors[0].to_string(),
            format!(
                "line 1, column 7: user \"alice\": {}",
                super::super::hash::HashError::Des
            )
        );
    }

    #[test]
    fn columns_count_characters_not_bytes() {
        assert_one_error("jöhn:garbage!", 1, 6, "plaintext");
    }

    #[test]
    fn skips_a_byte_order_mark() {
        let file = parse_ok(&format!("\u{feff}alice:{APR1}\n"));
        assert!(file.get("alice").is_some());
    }

    #[test]
    fn dummy_imitates_the_most_common_algorithm_and_cost() {
        let other_bcrypt = "$2y$05$48G0XphRQonw7ooOgERR2.48ggFe/atyoBoyyPZptMucJDprh.Fui";
        let text = format!("a:{BCRYPT_C4}\nb:{BCRYPT_C4}\nc:{other_bcrypt}\nd:{APR1}\ne:{SHA1}\n");
        let file = parse_ok(&text);
        let dummy = file.dummy();
        assert_eq!(dummy.algorithm(), Algorithm::Bcrypt);
        assert_eq!(dummy.cost(), Cost::Bcrypt(4));
        assert!(!dummy.verify(PASSWORD));
        // Precomputed: every call hands out the same hash.
        assert!(Arc::ptr_eq(&dummy, &file.dummy()));
    }

    #[test]
    fn dummy_tie_goes_to_the_stronger_algorithm() {
        let file = parse_ok(&format!("a:{SHA1}\nb:{APR1}\nc:{SHA256}\n"));
        assert_eq!(file.dummy().algorithm(), Algorithm::Sha256Crypt);
        assert_eq!(file.dummy().cost(), Cost::Rounds(5000));
    }

    #[test]
    fn empty_file_has_a_bcrypt_10_dummy() {
        let file = parse_ok("# nobody yet\n\n");
        assert!(file.is_empty());
        assert_eq!(file.len(), 0);
        assert_eq!(file.users().count(), 0);
        assert_eq!(file.dummy().algorithm(), Algorithm::Bcrypt);
        assert_eq!(file.dummy().cost(), Cost::Bcrypt(10));
    }

    #[test]
    fn debug_output_omits_hashes() {
        let file = parse_ok(&format!("alice:{APR1}\n"));
        let shown = format!("{file:?}");
        assert!(shown.contains("alice"), "{shown}");
        assert!(!shown.contains("i8FQmNqN"), "{shown}");
    }
}
