//! Which database a store runs on, where it is, and the one place SQL text
//! differs between the two: placeholders.

use std::borrow::Cow;
use std::fmt;
use std::path::{Path, PathBuf};

/// The database behind a [`Store`](crate::Store).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Backend {
    /// One SQLite file: the embedded default, one machine.
    Sqlite,
    /// A PostgreSQL database: several daemons on several machines share it.
    Postgres,
}

impl Backend {
    /// `"sqlite"` or `"postgres"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        }
    }

    /// The store's SQL text for this backend. Queries are written once with
    /// SQLite's `?` placeholders (numbered `?NNN` too); PostgreSQL gets them
    /// renumbered as `$1, $2, ...`, outside string literals and quoted names.
    /// SQLite's text is returned as it is.
    pub fn sql(self, text: &str) -> Cow<'_, str> {
        match self {
            Backend::Sqlite => Cow::Borrowed(text),
            Backend::Postgres if !text.contains('?') => Cow::Borrowed(text),
            Backend::Postgres => Cow::Owned(dollar_placeholders(text)),
        }
    }
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `?` -> `$n` (counting up), `?NNN` -> `$NNN`, leaving `'...'` and `"..."`
/// alone.
fn dollar_placeholders(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 16);
    let mut next = 1_u32;
    let mut quote: Option<char> = None;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match quote {
            Some(q) => {
                out.push(c);
                if c == q {
                    quote = None;
                }
            }
            None if c == '\'' || c == '"' => {
                quote = Some(c);
                out.push(c);
            }
            None if c == '?' => {
                let mut digits = String::new();
                while let Some(d) = chars.peek().copied().filter(char::is_ascii_digit) {
                    digits.push(d);
                    chars.next();
                }
                let n = if digits.is_empty() {
                    next
                } else {
                    digits.parse().unwrap_or(next)
                };
                next = next.max(n + 1);
                out.push('$');
                out.push_str(&n.to_string());
            }
            None => out.push(c),
        }
    }
    out
}

/// Where a store lives, as `--db`, `CADRE_DB`, `store.url` or `store.path`
/// give it: `postgres://...` (or `postgresql://`) is PostgreSQL; `sqlite://PATH`,
/// `sqlite:PATH` or a plain path is a SQLite file.
#[derive(Clone, PartialEq, Eq)]
pub enum StoreLocation {
    /// A SQLite file.
    Sqlite(PathBuf),
    /// A PostgreSQL connection URL (it may carry a password: shown redacted).
    Postgres(String),
}

impl StoreLocation {
    /// Reads a `--db` value (see the type's docs). Never fails: anything that
    /// is not a PostgreSQL or `sqlite:` URL is a path.
    pub fn parse(text: &str) -> StoreLocation {
        let trimmed = text.trim();
        if trimmed.starts_with("postgres://") || trimmed.starts_with("postgresql://") {
            return StoreLocation::Postgres(trimmed.to_owned());
        }
        let path = trimmed
            .strip_prefix("sqlite://")
            .or_else(|| trimmed.strip_prefix("sqlite:"))
            .unwrap_or(text);
        StoreLocation::Sqlite(PathBuf::from(path))
    }

    /// A SQLite file.
    pub fn sqlite(path: &Path) -> StoreLocation {
        StoreLocation::Sqlite(path.to_path_buf())
    }

    /// The backend it selects.
    pub fn backend(&self) -> Backend {
        match self {
            StoreLocation::Sqlite(_) => Backend::Sqlite,
            StoreLocation::Postgres(_) => Backend::Postgres,
        }
    }
}

impl fmt::Display for StoreLocation {
    /// The path, or the URL with its password replaced by `***`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreLocation::Sqlite(path) => write!(f, "{}", path.display()),
            StoreLocation::Postgres(url) => f.write_str(&redact_password(url)),
        }
    }
}

impl fmt::Debug for StoreLocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "StoreLocation({self})")
    }
}

/// `postgres://user:secret@host/db` -> `postgres://user:***@host/db`.
pub(crate) fn redact_password(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _)) => format!("{scheme}://{user}:***@{host}{tail}"),
            None => url.to_owned(),
        },
        None => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn postgres_gets_numbered_placeholders() {
        assert_eq!(
            Backend::Postgres.sql("UPDATE t SET a = ?, b = '?' WHERE id IN (?, ?)"),
            "UPDATE t SET a = $1, b = '?' WHERE id IN ($2, $3)"
        );
        assert_eq!(
            Backend::Postgres.sql("SELECT ?1, ?2, ?1, \"x?\""),
            "SELECT $1, $2, $1, \"x?\""
        );
        assert!(matches!(
            Backend::Sqlite.sql("SELECT ?"),
            Cow::Borrowed("SELECT ?")
        ));
    }

    #[test]
    fn locations_are_parsed_and_redacted() {
        assert_eq!(
            StoreLocation::parse("/var/lib/cadre.db"),
            StoreLocation::Sqlite("/var/lib/cadre.db".into())
        );
        assert_eq!(
            StoreLocation::parse("sqlite:///tmp/x.db"),
            StoreLocation::Sqlite("/tmp/x.db".into())
        );
        assert_eq!(
            StoreLocation::parse("sqlite:rel.db"),
            StoreLocation::Sqlite("rel.db".into())
        );
        let pg = StoreLocation::parse("postgres://cadre:hunter2@db:5432/cadre?sslmode=disable");
        assert_eq!(pg.backend(), Backend::Postgres);
        assert_eq!(
            pg.to_string(),
            "postgres://cadre:***@db:5432/cadre?sslmode=disable"
        );
        assert_eq!(
            StoreLocation::parse("postgresql://db/cadre").to_string(),
            "postgresql://db/cadre"
        );
    }
}
