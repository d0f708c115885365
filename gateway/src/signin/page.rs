//! The HTML of the sign-in and sign-out pages.
//!
//! Plain HTML with one inline `<style>`: no script and no external resource except the optional
//! logo, so the pages work with JavaScript off and under a Content-Security-Policy that allows
//! only inline style and the logo's origin. Every value put into the HTML is escaped with
//! `escape`; values put into CSS or URL attributes are also checked, since escaping cannot make
//! `javascript:` or `red;}body{...` harmless.

use std::fmt;

use crate::respond::escape;

/// Longest logo URL accepted, in bytes.
const MAX_LOGO_LEN: usize = 2048;

/// How the page looks, from config (validated there with `check_color` / `check_logo`).
///
/// The pages re-check `accent`, `background` and `logo` when rendering: a colour that fails
/// [`check_color`] is replaced by the default, a logo that fails [`check_logo`] is left out.
#[derive(Debug, Clone)]
pub struct Look {
    /// The `<title>` and `<h1>` of the sign-in page.
    pub title: String,
    /// URL of an image shown above the heading, decorative (`alt=""`).
    pub logo: Option<String>,
    /// Button background, link and focus-outline colour. The button text is white, so the
    /// accent must have a contrast of at least 4.5:1 against white (WCAG 2 §1.4.3); the
    /// default `#1f5fbf` has about 6:1.
    pub accent: String,
    /// Page background around the card. All text sits on the white card, so this colour does
    /// not affect text contrast.
    pub background: String,
}

const DEFAULT_TITLE: &str = "Sign in";
const DEFAULT_ACCENT: &str = "#1f5fbf";
const DEFAULT_BACKGROUND: &str = "#f4f5f7";

impl Default for Look {
    /// Title "Sign in", no logo, accent `#1f5fbf`, background `#f4f5f7`.
    fn default() -> Self {
        Look {
            title: DEFAULT_TITLE.to_owned(),
            logo: None,
            accent: DEFAULT_ACCENT.to_owned(),
            background: DEFAULT_BACKGROUND.to_owned(),
        }
    }
}

/// Ok for a CSS colour that cannot break out of a style attribute: #rgb, #rrggbb, #rrggbbaa, or a
/// plain lowercase/uppercase CSS colour keyword [a-zA-Z]{1,30}. Err with a message saying what is valid.
///
/// A keyword is not checked against the CSS list: an unknown word only makes the declaration
/// invalid, and letters alone cannot end the declaration or the rule.
pub fn check_color(s: &str) -> Result<(), String> {
    let ok = match s.strip_prefix('#') {
        Some(hex) => matches!(hex.len(), 3 | 6 | 8) && hex.bytes().all(|b| b.is_ascii_hexdigit()),
        None => (1..=30).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_alphabetic()),
    };
    if ok {
        Ok(())
    } else {
        Err(
            "not a valid colour: use #rgb, #rrggbb or #rrggbbaa with hex digits, \
             or a CSS colour keyword of 1 to 30 letters such as navy"
                .to_owned(),
        )
    }
}

/// Ok for a logo URL: an https:// or http:// URL or a path starting with a single "/", no quotes,
/// no whitespace, no "<>", max 2048 bytes. Err with a message.
///
/// Also refused: `\`, `` ` ``, control characters and non-ASCII (percent-encode them), and an
/// http(s) URL without a host.
pub fn check_logo(s: &str) -> Result<(), String> {
    check_url(s).map_err(|why| format!("not a valid logo URL: {why}"))
}

/// The rule behind [`check_logo`], also applied to the form actions and links the pages render.
fn check_url(s: &str) -> Result<(), String> {
    if s.len() > MAX_LOGO_LEN {
        return Err(format!("longer than {MAX_LOGO_LEN} bytes"));
    }
    // Quotes and `<>` could end the attribute or the tag; whitespace, controls and `\` are
    // rewritten by browsers (WHATWG URL Standard) and so make the URL mean something else.
    if let Some(bad) = s
        .chars()
        .find(|&c| !c.is_ascii_graphic() || matches!(c, '"' | '\'' | '`' | '<' | '>' | '\\'))
    {
        return Err(format!(
            "contains {bad:?}; quotes, backticks, <, >, \\, whitespace, control characters \
             and non-ASCII are not allowed (percent-encode them)"
        ));
    }
    let after_scheme =
        strip_prefix_ignore_case(s, "https://").or_else(|| strip_prefix_ignore_case(s, "http://"));
    match after_scheme {
        Some(rest) if rest.is_empty() || rest.starts_with('/') => {
            Err("an http:// or https:// URL needs a host".to_owned())
        }
        Some(_) => Ok(()),
        // `//host` would be another site; a single `/` is a path on this one.
        None if s.starts_with('/') && !s.starts_with("//") => Ok(()),
        None => Err("must start with https://, http:// or a single /".to_owned()),
    }
}

fn strip_prefix_ignore_case<'s>(s: &'s str, prefix: &str) -> Option<&'s str> {
    let head = s.get(..prefix.len())?;
    if head.eq_ignore_ascii_case(prefix) {
        s.get(prefix.len()..)
    } else {
        None
    }
}

/// Why the user is on the page (one sentence each, shown in a role="alert" box when Some).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Notice {
    /// The page asked for needs a signed-in user.
    SignInRequired,
    /// The session cookie was valid once but has expired.
    SessionExpired,
    /// User name or password did not match. Deliberately one notice for both, so the page does
    /// not tell which user names exist.
    WrongCredentials,
    PasswordExpired,
    AccountExpired,
    AccountLocked,
    /// Rate limited; `retry_after` in seconds, 0 when unknown.
    TooManyAttempts {
        retry_after: u64,
    },
    SignedOut,
    /// The form's CSRF token was missing, wrong or stale.
    CsrfFailed,
    /// The server could not check the credentials right now (store unavailable, overloaded).
    Busy,
}

impl Notice {
    /// Stable code used in the `?why=` query of redirects: "required", "expired", ...
    ///
    /// The codes are "required", "expired", "wrong", "password-expired", "account-expired",
    /// "locked", "too-many", "signed-out", "csrf" and "busy". `retry_after` is not part of it.
    pub fn code(&self) -> &'static str {
        match self {
            Notice::SignInRequired => "required",
            Notice::SessionExpired => "expired",
            Notice::WrongCredentials => "wrong",
            Notice::PasswordExpired => "password-expired",
            Notice::AccountExpired => "account-expired",
            Notice::AccountLocked => "locked",
            Notice::TooManyAttempts { .. } => "too-many",
            Notice::SignedOut => "signed-out",
            Notice::CsrfFailed => "csrf",
            Notice::Busy => "busy",
        }
    }

    /// Parse the `why` code back (None for unknown); TooManyAttempts parses with retry_after 0.
    ///
    /// Exact match only: codes are lowercase, and anything else in the query is ignored.
    pub fn from_code(s: &str) -> Option<Notice> {
        Some(match s {
            "required" => Notice::SignInRequired,
            "expired" => Notice::SessionExpired,
            "wrong" => Notice::WrongCredentials,
            "password-expired" => Notice::PasswordExpired,
            "account-expired" => Notice::AccountExpired,
            "locked" => Notice::AccountLocked,
            "too-many" => Notice::TooManyAttempts { retry_after: 0 },
            "signed-out" => Notice::SignedOut,
            "csrf" => Notice::CsrfFailed,
            "busy" => Notice::Busy,
            _ => return None,
        })
    }

    /// The sentence shown, e.g. "Your session expired. Sign in again to continue." / "Wrong user name or
    /// password." / "Your password has expired. Ask an administrator to set a new one." ...
    pub fn message(&self) -> String {
        match self {
            Notice::SignInRequired => "Sign in to continue.".to_owned(),
            Notice::SessionExpired => "Your session expired. Sign in again to continue.".to_owned(),
            Notice::WrongCredentials => "Wrong user name or password.".to_owned(),
            Notice::PasswordExpired => {
                "Your password has expired. Ask an administrator to set a new one.".to_owned()
            }
            Notice::AccountExpired => {
                "Your account has expired. Ask an administrator to renew it.".to_owned()
            }
            Notice::AccountLocked => {
                "Your account is locked. Ask an administrator to unlock it.".to_owned()
            }
            Notice::TooManyAttempts { retry_after: 0 } => {
                "Too many sign-in attempts. Wait a moment, then try again.".to_owned()
            }
            Notice::TooManyAttempts { retry_after } => format!(
                "Too many sign-in attempts. Try again in {}.",
                Wait(*retry_after)
            ),
            Notice::SignedOut => "You are signed out.".to_owned(),
            Notice::CsrfFailed => {
                "The form was too old or came from another page. Please try again.".to_owned()
            }
            Notice::Busy => "The server is busy. Try again in a moment.".to_owned(),
        }
    }
}

/// A wait in seconds as people say it: "1 second", "45 seconds", "3 minutes" (rounded up, so
/// the user never comes back too early).
struct Wait(u64);

impl fmt::Display for Wait {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            1 => f.write_str("1 second"),
            s @ 0..=90 => write!(f, "{s} seconds"),
            s => write!(f, "{} minutes", s.div_ceil(60)),
        }
    }
}

/// The sign-in form's values; see [`sign_in`].
pub struct SignInForm<'a> {
    /// Form action path, e.g. "/_authgate/signin". If it fails [`check_logo`]'s URL rule the
    /// attribute is left out and the form posts to the page's own URL.
    pub action: &'a str,
    /// Already made safe (see `return_url::safe_return`); goes in a hidden input "return_to".
    pub return_to: &'a str,
    /// Hidden input "csrf".
    pub csrf: &'a str,
    /// Prefill of the user name field after a failed attempt.
    pub user: Option<&'a str>,
    pub notice: Option<Notice>,
}

/// The complete HTML document: plain HTML + inline CSS, works with JavaScript off;
/// `<html lang="en">`, `<meta name="viewport">`, `<title>` = `look.title`, an optional logo
/// `<img alt="">`, an `<h1>` (also `look.title`), a `<form id="signin" method="post">` with a
/// `<label for=...>` for "User name" (`id`/`name` "user", `autocomplete="username"`, `autofocus`,
/// `required`, prefilled from `form.user`) and for "Password" (`id`/`name` "password",
/// `type="password"`, `autocomplete="current-password"`, `required`), hidden inputs `csrf` and
/// `return_to`, and a submit `<button>`.
///
/// When `form.notice` is Some, its message is in a `<p role="alert" id="notice">` above the form
/// and the user name field has `aria-describedby="notice"`; when None, neither is there.
///
/// Focus is shown with a `:focus-visible` outline in the accent colour. Text contrast is at least
/// 4.5:1: dark text on the white card, and white button text on the accent (which is why the
/// accent must be dark enough, see [`Look::accent`]). Every interpolated value is HTML-escaped
/// (`& < > " '`). No external resource is loaded except the logo URL.
pub fn sign_in(look: &Look, form: &SignInForm) -> String {
    let notice = match form.notice {
        Some(n) => format!(
            "<p role=\"alert\" id=\"notice\">{}</p>\n",
            escape(&n.message())
        ),
        None => String::new(),
    };
    let described_by = if form.notice.is_some() {
        " aria-describedby=\"notice\""
    } else {
        ""
    };
    let body = format!(
        "<h1>{title}</h1>\n\
         {notice}\
         <form id=\"signin\" method=\"post\"{action}>\n\
         <input type=\"hidden\" name=\"csrf\" value=\"{csrf}\">\n\
         <input type=\"hidden\" name=\"return_to\" value=\"{return_to}\">\n\
         <label for=\"user\">User name</label>\n\
         <input id=\"user\" name=\"user\" type=\"text\" value=\"{user}\" autocomplete=\"username\" \
         autocapitalize=\"none\" spellcheck=\"false\" autofocus required{described_by}>\n\
         <label for=\"password\">Password</label>\n\
         <input id=\"password\" name=\"password\" type=\"password\" \
         autocomplete=\"current-password\" required>\n\
         <button type=\"submit\">Sign in</button>\n\
         </form>\n",
        title = escape(&look.title),
        action = action_attr(form.action),
        csrf = escape(form.csrf),
        return_to = escape(form.return_to),
        user = escape(form.user.unwrap_or("")),
    );
    document(look, &look.title, &body)
}

/// The sign-out page: a short confirmation with a form POSTing to `action` (hidden csrf input) and a
/// "Sign out" button, used when someone opens the sign-out URL with GET; and after sign-out the same
/// page style saying "You are signed out." with a link "Sign in again" to `signin_href`.
///
/// The form has id="signout". `look.title` is not used (it defaults to "Sign in"); the title and
/// heading are "Sign out". An `action` failing [`check_logo`]'s URL rule is left out, so the form
/// posts to the page's own URL.
pub fn sign_out_confirm(look: &Look, action: &str, csrf: &str) -> String {
    let body = format!(
        "<h1>Sign out</h1>\n\
         <p>Do you want to sign out?</p>\n\
         <form id=\"signout\" method=\"post\"{action}>\n\
         <input type=\"hidden\" name=\"csrf\" value=\"{csrf}\">\n\
         <button type=\"submit\">Sign out</button>\n\
         </form>\n",
        action = action_attr(action),
        csrf = escape(csrf),
    );
    document(look, "Sign out", &body)
}

/// The page shown after sign-out: title and heading "Signed out", the sentence "You are signed
/// out." and a link "Sign in again" to `signin_href` (replaced by "/" if it fails
/// [`check_logo`]'s URL rule, so it can never be a `javascript:` link).
pub fn signed_out(look: &Look, signin_href: &str) -> String {
    let href = if check_url(signin_href).is_ok() {
        signin_href
    } else {
        "/"
    };
    let body = format!(
        "<h1>Signed out</h1>\n\
         <p role=\"status\">{message}</p>\n\
         <p><a href=\"{href}\">Sign in again</a></p>\n",
        message = escape(&Notice::SignedOut.message()),
        href = escape(href),
    );
    document(look, "Signed out", &body)
}

/// ` action="..."`, or nothing when `action` is not a URL we would link to.
fn action_attr(action: &str) -> String {
    if check_url(action).is_ok() {
        format!(" action=\"{}\"", escape(action))
    } else {
        String::new()
    }
}

/// The shared document around a page's `body` (already HTML).
fn document(look: &Look, title: &str, body: &str) -> String {
    // Re-checked here because CSS inside <style> is raw text: HTML-escaping does not protect it.
    let accent = css_color(&look.accent, DEFAULT_ACCENT);
    let background = css_color(&look.background, DEFAULT_BACKGROUND);
    let logo = match look.logo.as_deref() {
        Some(url) if check_url(url).is_ok() => {
            format!("<img class=\"logo\" src=\"{}\" alt=\"\">\n", escape(url))
        }
        _ => String::new(),
    };
    format!(
        "<!DOCTYPE html>\n\
         <html lang=\"en\">\n\
         <head>\n\
         <meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <meta name=\"robots\" content=\"noindex\">\n\
         <title>{title}</title>\n\
         <style>\n{css}</style>\n\
         </head>\n\
         <body>\n\
         <main>\n\
         {logo}\
         {body}\
         </main>\n\
         </body>\n\
         </html>\n",
        title = escape(title),
        css = stylesheet(accent, background),
    )
}

fn css_color<'a>(color: &'a str, default: &'a str) -> &'a str {
    if check_color(color).is_ok() {
        color
    } else {
        default
    }
}

// Contrast (WCAG 2 §1.4.3, at least 4.5:1; §1.4.11, at least 3:1 for borders and outlines):
// - text is #1a1a1a on the white card (about 17:1) whatever the background colour;
// - the notice is #1a1a1a on #fff4d6 (about 16:1);
// - input borders are #6b7280 on white (about 4.8:1);
// - button text is white on the accent, and links are the accent on white: both need the accent
//   at 4.5:1 against white, which the config documentation requires (default #1f5fbf: about 6:1).
// The button keeps a transparent border so it stays outlined in forced-colours (high contrast)
// modes, which drop backgrounds.
const CSS: &str = "\
*{box-sizing:border-box}
html{background:$BACKGROUND;color:#1a1a1a;font:16px/1.5 system-ui,-apple-system,\"Segoe UI\",Roboto,sans-serif}
body{margin:0;min-height:100vh;display:flex;align-items:center;justify-content:center;padding:1rem}
main{background:#fff;width:100%;max-width:24rem;padding:2rem;border-radius:8px;box-shadow:0 1px 4px rgba(0,0,0,.25)}
.logo{display:block;max-width:100%;max-height:4rem;margin:0 auto 1rem}
h1{font-size:1.5rem;line-height:1.25;margin:0 0 1rem;text-align:center}
p{margin:0 0 1rem}
#notice{padding:.75rem 1rem;background:#fff4d6;border-left:4px solid #8a5a00;color:#1a1a1a}
label{display:block;font-weight:600;margin:1rem 0 .25rem}
input{width:100%;padding:.6rem .75rem;font:inherit;color:#1a1a1a;background:#fff;border:1px solid #6b7280;border-radius:4px}
button{display:block;width:100%;margin-top:1.5rem;padding:.7rem;font:inherit;font-weight:600;color:#fff;background:$ACCENT;border:2px solid transparent;border-radius:4px;cursor:pointer}
a{color:$ACCENT}
:focus-visible{outline:3px solid $ACCENT;outline-offset:2px}
";

fn stylesheet(accent: &str, background: &str) -> String {
    CSS.replace("$ACCENT", accent)
        .replace("$BACKGROUND", background)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    const EVIL: &str = "\"'><script>alert(1)</script>&";
    const EVIL_ESCAPED: &str = "&quot;&#39;&gt;&lt;script&gt;alert(1)&lt;/script&gt;&amp;";

    fn form(notice: Option<Notice>) -> SignInForm<'static> {
        SignInForm {
            action: "/_authgate/signin",
            return_to: "/app?x=1&y=2",
            csrf: "tok123",
            user: None,
            notice,
        }
    }

    fn all_notices() -> Vec<Notice> {
        // The match makes this test fail to compile when a variant is added without a case.
        let every = |n: Notice| match n {
            Notice::SignInRequired
            | Notice::SessionExpired
            | Notice::WrongCredentials
            | Notice::PasswordExpired
            | Notice::AccountExpired
            | Notice::AccountLocked
            | Notice::TooManyAttempts { .. }
            | Notice::SignedOut
            | Notice::CsrfFailed
            | Notice::Busy => n,
        };
        vec![
            every(Notice::SignInRequired),
            every(Notice::SessionExpired),
            every(Notice::WrongCredentials),
            every(Notice::PasswordExpired),
            every(Notice::AccountExpired),
            every(Notice::AccountLocked),
            every(Notice::TooManyAttempts { retry_after: 0 }),
            every(Notice::SignedOut),
            every(Notice::CsrfFailed),
            every(Notice::Busy),
        ]
    }

    /// Asserts the page contains `needle`, printing the page when not.
    fn assert_has(page: &str, needle: &str) {
        assert!(page.contains(needle), "expected {needle:?} in:\n{page}");
    }

    fn assert_lacks(page: &str, needle: &str) {
        assert!(
            !page.contains(needle),
            "did not expect {needle:?} in:\n{page}"
        );
    }

    #[test]
    fn escape_covers_the_five_characters() {
        assert_eq!(escape(EVIL), EVIL_ESCAPED);
        assert_eq!(escape("plain text é"), "plain text é");
    }

    #[test]
    fn sign_in_escapes_every_interpolated_value() {
        let look = Look {
            title: EVIL.to_owned(),
            ..Look::default()
        };
        let f = SignInForm {
            action: "/signin?a=1&b=2",
            return_to: EVIL,
            csrf: EVIL,
            user: Some(EVIL),
            notice: Some(Notice::WrongCredentials),
        };
        let page = sign_in(&look, &f);
        assert_lacks(&page, "<script>");
        assert_lacks(&page, "\"'>");
        assert_has(&page, &format!("<title>{EVIL_ESCAPED}</title>"));
        assert_has(&page, &format!("<h1>{EVIL_ESCAPED}</h1>"));
        assert_has(
            &page,
            &format!("name=\"return_to\" value=\"{EVIL_ESCAPED}\""),
        );
        assert_has(&page, &format!("name=\"csrf\" value=\"{EVIL_ESCAPED}\""));
        assert_has(
            &page,
            &format!("value=\"{EVIL_ESCAPED}\" autocomplete=\"username\""),
        );
        assert_has(&page, "action=\"/signin?a=1&amp;b=2\"");
    }

    #[test]
    fn user_prefill_with_quotes_stays_in_its_attribute() {
        let f = SignInForm {
            user: Some("o'brien \"bob\""),
            ..form(None)
        };
        let page = sign_in(&Look::default(), &f);
        assert_has(&page, "value=\"o&#39;brien &quot;bob&quot;\"");
    }

    #[test]
    fn sign_in_has_the_required_structure() {
        let page = sign_in(&Look::default(), &form(None));
        for needle in [
            "<!DOCTYPE html>",
            "<html lang=\"en\">",
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">",
            "<title>Sign in</title>",
            "<h1>Sign in</h1>",
            "<form id=\"signin\" method=\"post\" action=\"/_authgate/signin\">",
            "<input type=\"hidden\" name=\"csrf\" value=\"tok123\">",
            "<input type=\"hidden\" name=\"return_to\" value=\"/app?x=1&amp;y=2\">",
            "<label for=\"user\">User name</label>",
            "<label for=\"password\">Password</label>",
            "<button type=\"submit\">Sign in</button>",
            ":focus-visible{outline:3px solid #1f5fbf",
            "background:#f4f5f7",
        ] {
            assert_has(&page, needle);
        }
        let user = input_tag(&page, "user");
        for attr in [
            "name=\"user\"",
            "type=\"text\"",
            "autocomplete=\"username\"",
            " autofocus",
            " required",
            "value=\"\"",
        ] {
            assert_has(user, attr);
        }
        let password = input_tag(&page, "password");
        for attr in [
            "name=\"password\"",
            "type=\"password\"",
            "autocomplete=\"current-password\"",
            " required",
        ] {
            assert_has(password, attr);
        }
        // Each label points at an element that exists, once.
        for id in ["user", "password"] {
            assert_eq!(page.matches(&format!("id=\"{id}\"")).count(), 1, "{page}");
        }
    }

    /// The `<input ...>` tag with the given id.
    fn input_tag<'p>(page: &'p str, id: &str) -> &'p str {
        let start = page
            .find(&format!("<input id=\"{id}\""))
            .unwrap_or_else(|| panic!("no input {id} in:\n{page}"));
        let len = page[start..].find('>').expect("tag end");
        &page[start..=start + len]
    }

    #[test]
    fn notice_is_shown_and_describes_the_first_field() {
        let page = sign_in(&Look::default(), &form(Some(Notice::SessionExpired)));
        assert_has(
            &page,
            "<p role=\"alert\" id=\"notice\">Your session expired. Sign in again to continue.</p>",
        );
        assert_has(input_tag(&page, "user"), "aria-describedby=\"notice\"");
        assert_lacks(input_tag(&page, "password"), "aria-describedby");
    }

    #[test]
    fn no_notice_no_alert() {
        let page = sign_in(&Look::default(), &form(None));
        assert_lacks(&page, "role=\"alert\"");
        assert_lacks(&page, "id=\"notice\"");
        assert_lacks(&page, "aria-describedby");
    }

    #[test]
    fn no_script_and_no_external_resource_without_logo() {
        let look = Look::default();
        for page in [
            sign_in(&look, &form(Some(Notice::Busy))),
            sign_out_confirm(&look, "/_authgate/signout", "t"),
            signed_out(&look, "/_authgate/signin"),
        ] {
            assert_lacks(&page, "<script");
            assert_lacks(&page, "src=");
            assert_lacks(&page, "<link");
            assert_lacks(&page, "http:");
            assert_lacks(&page, "https:");
            assert_lacks(&page, "url(");
            assert_lacks(&page, "@import");
        }
    }

    #[test]
    fn logo_is_shown_when_valid_and_dropped_when_not() {
        let look = Look {
            logo: Some("https://cdn.example.com/logo.png?a=1&b=2".to_owned()),
            ..Look::default()
        };
        let page = sign_in(&look, &form(None));
        assert_has(
            &page,
            "<img class=\"logo\" src=\"https://cdn.example.com/logo.png?a=1&amp;b=2\" alt=\"\">",
        );
        for bad in [
            "javascript:alert(1)",
            "x\" onerror=\"alert(1)",
            "//evil.com/l.png",
        ] {
            let look = Look {
                logo: Some(bad.to_owned()),
                ..Look::default()
            };
            let page = sign_in(&look, &form(None));
            assert_lacks(&page, "<img");
        }
    }

    #[test]
    fn invalid_colours_fall_back_to_the_defaults() {
        let look = Look {
            accent: "red;}body{display:none".to_owned(),
            background: "</style><script>".to_owned(),
            ..Look::default()
        };
        let page = sign_in(&look, &form(None));
        assert_lacks(&page, "red;}");
        assert_lacks(&page, "</style><script>");
        assert_has(&page, "background:#1f5fbf");
        assert_has(&page, "background:#f4f5f7");
        let look = Look {
            accent: "#123456".to_owned(),
            background: "white".to_owned(),
            ..Look::default()
        };
        let page = sign_in(&look, &form(None));
        assert_has(&page, "outline:3px solid #123456");
        assert_has(&page, "html{background:white;");
    }

    #[test]
    fn sign_out_confirm_posts_with_csrf() {
        let page = sign_out_confirm(&Look::default(), "/_authgate/signout", EVIL);
        assert_has(
            &page,
            "<form id=\"signout\" method=\"post\" action=\"/_authgate/signout\">",
        );
        assert_has(&page, &format!("name=\"csrf\" value=\"{EVIL_ESCAPED}\""));
        assert_has(&page, "<button type=\"submit\">Sign out</button>");
        assert_has(&page, "<title>Sign out</title>");
        assert_has(&page, "<html lang=\"en\">");
        assert_lacks(&page, "<script>");
        // A button inside the signout form.
        let form_start = page.find("<form id=\"signout\"").unwrap();
        let form_end = page.find("</form>").unwrap();
        assert!(page[form_start..form_end].contains("<button"), "{page}");
    }

    #[test]
    fn actions_and_links_that_are_not_urls_are_left_out() {
        let page = sign_out_confirm(&Look::default(), "javascript:alert(1)", "t");
        assert_has(&page, "<form id=\"signout\" method=\"post\">");
        let f = SignInForm {
            action: "javascript:alert(1)",
            ..form(None)
        };
        let page = sign_in(&Look::default(), &f);
        assert_has(&page, "<form id=\"signin\" method=\"post\">");
        let page = signed_out(&Look::default(), "javascript:alert(1)");
        assert_has(&page, "<a href=\"/\">Sign in again</a>");
    }

    #[test]
    fn signed_out_links_back_to_sign_in() {
        let page = signed_out(&Look::default(), "/_authgate/signin?return_to=%2Fapp&x=1");
        assert_has(&page, "You are signed out.");
        assert_has(
            &page,
            "<a href=\"/_authgate/signin?return_to=%2Fapp&amp;x=1\">Sign in again</a>",
        );
        assert_has(&page, "<title>Signed out</title>");
    }

    #[test]
    fn check_color_table() {
        for ok in [
            "red",
            "RED",
            "Navy",
            "rebeccapurple",
            "#fff",
            "#FFF",
            "#1f5fbf",
            "#11223344",
            "transparent",
            "abcdefghijklmnopqrstuvwxyzabcd",
        ] {
            assert_eq!(check_color(ok), Ok(()), "{ok:?} should be accepted");
        }
        for bad in [
            "",
            "#",
            "#ggg",
            "#ff",
            "#ffff",
            "#fffff",
            "#1234567",
            "#123456789",
            "red;}body{",
            "red;",
            "url(x)",
            "expression(alert(1))",
            "rgb(0,0,0)",
            "red ",
            " red",
            "re d",
            "red\"",
            "red</style>",
            "light-blue",
            "abcdefghijklmnopqrstuvwxyzabcde",
            "rød",
            "#fff;",
        ] {
            let err = check_color(bad).expect_err(bad);
            assert!(
                err.contains("#rrggbb"),
                "message should say what is valid: {err}"
            );
        }
    }

    #[test]
    fn check_logo_table() {
        let max = format!("/{}", "a".repeat(MAX_LOGO_LEN - 1));
        for ok in [
            "https://cdn.example.com/logo.png",
            "HTTPS://cdn.example.com/logo.png",
            "http://intranet/logo.svg",
            "https://cdn.example.com/l.png?v=1&x=%20",
            "/static/logo.png",
            "/",
            max.as_str(),
        ] {
            assert_eq!(check_logo(ok), Ok(()), "{ok:?} should be accepted");
        }
        let too_long = format!("/{}", "a".repeat(MAX_LOGO_LEN));
        for bad in [
            "",
            "logo.png",
            "//evil.com/logo.png",
            "/\\evil.com/logo.png",
            "javascript:alert(1)",
            "data:image/png;base64,AAAA",
            "ftp://example.com/logo.png",
            "https://",
            "https:///logo.png",
            "https:cdn.example.com/logo.png",
            "/logo.png\" onerror=\"alert(1)",
            "/logo.png'",
            "/logo`.png",
            "/logo<.png",
            "/logo>.png",
            "/logo .png",
            "/logo\t.png",
            "/logo\n.png",
            "/logo\u{0}.png",
            "/lögo.png",
            too_long.as_str(),
        ] {
            let err = check_logo(bad).expect_err(bad);
            assert!(err.starts_with("not a valid logo URL: "), "{err}");
        }
    }

    #[test]
    fn notice_codes_round_trip_and_are_distinct() {
        let all = all_notices();
        for n in &all {
            assert_eq!(Notice::from_code(n.code()), Some(*n), "{n:?}");
            assert!(!n.message().is_empty());
            assert!(
                n.message().ends_with('.'),
                "one sentence: {:?}",
                n.message()
            );
        }
        let mut codes: Vec<_> = all.iter().map(Notice::code).collect();
        codes.sort_unstable();
        codes.dedup();
        assert_eq!(codes.len(), all.len(), "codes must be distinct");
        // retry_after does not travel in the code.
        assert_eq!(
            Notice::from_code(Notice::TooManyAttempts { retry_after: 30 }.code()),
            Some(Notice::TooManyAttempts { retry_after: 0 })
        );
        for unknown in ["", "REQUIRED", "Required", "nope", " required", "required "] {
            assert_eq!(Notice::from_code(unknown), None, "{unknown:?}");
        }
    }

    #[test]
    fn notice_messages() {
        assert_eq!(
            Notice::SessionExpired.message(),
            "Your session expired. Sign in again to continue."
        );
        assert_eq!(
            Notice::WrongCredentials.message(),
            "Wrong user name or password."
        );
        assert_eq!(
            Notice::PasswordExpired.message(),
            "Your password has expired. Ask an administrator to set a new one."
        );
        let wait = |s| Notice::TooManyAttempts { retry_after: s }.message();
        assert_eq!(
            wait(0),
            "Too many sign-in attempts. Wait a moment, then try again."
        );
        assert_eq!(wait(1), "Too many sign-in attempts. Try again in 1 second.");
        assert_eq!(
            wait(30),
            "Too many sign-in attempts. Try again in 30 seconds."
        );
        assert_eq!(
            wait(90),
            "Too many sign-in attempts. Try again in 90 seconds."
        );
        assert_eq!(
            wait(91),
            "Too many sign-in attempts. Try again in 2 minutes."
        );
        assert_eq!(
            wait(600),
            "Too many sign-in attempts. Try again in 10 minutes."
        );
        assert_eq!(
            wait(601),
            "Too many sign-in attempts. Try again in 11 minutes."
        );
    }

    /// WCAG 2 relative luminance of `#rrggbb`.
    fn luminance(hex: &str) -> f64 {
        let channel = |i: usize| {
            let v = f64::from(u8::from_str_radix(&hex[1 + 2 * i..3 + 2 * i], 16).unwrap()) / 255.0;
            if v <= 0.03928 {
                v / 12.92
            } else {
                ((v + 0.055) / 1.055).powf(2.4)
            }
        };
        0.2126 * channel(0) + 0.7152 * channel(1) + 0.0722 * channel(2)
    }

    fn contrast(a: &str, b: &str) -> f64 {
        let (la, lb) = (luminance(a), luminance(b));
        (la.max(lb) + 0.05) / (la.min(lb) + 0.05)
    }

    #[test]
    fn stylesheet_colours_meet_wcag_contrast() {
        // (foreground, background, minimum): text 4.5:1, borders and outlines 3:1.
        let pairs = [
            ("#1a1a1a", "#ffffff", 4.5),      // text on the card
            ("#1a1a1a", "#fff4d6", 4.5),      // notice text
            ("#ffffff", DEFAULT_ACCENT, 4.5), // button text on the default accent
            (DEFAULT_ACCENT, "#ffffff", 4.5), // links and focus outline on the card
            ("#6b7280", "#ffffff", 3.0),      // input borders
            ("#8a5a00", "#fff4d6", 3.0),      // notice stripe
        ];
        for (fg, bg, min) in pairs {
            let c = contrast(fg, bg);
            assert!(c >= min, "{fg} on {bg}: {c:.2}:1, need {min}:1");
        }
        // The stylesheet really uses those colours.
        for colour in ["#1a1a1a", "#fff4d6", "#6b7280", "#8a5a00", "color:#fff;"] {
            assert!(CSS.contains(colour), "{colour}");
        }
    }
}
