//! Small conversions between Rust values and store columns (SQLite and PostgreSQL alike,
//! through sqlx's `Any` driver).

use std::str::FromStr;
use std::time::{SystemTime, UNIX_EPOCH};

use futures::TryStreamExt;
use sqlx::any::{AnyArguments, AnyRow};
use sqlx::{Any, AnyPool, Row};

use crate::{Error, Result};

/// The current unix time in seconds (0 if the clock is before 1970).
pub(crate) fn now_secs() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// `u64` -> an integer column (signed 64-bit on both backends).
pub(crate) fn to_i64(field: &'static str, value: u64) -> Result<i64> {
    i64::try_from(value).map_err(|_| Error::OutOfRange {
        field,
        value: value.to_string(),
    })
}

/// An integer column -> `u64`.
pub(crate) fn to_u64(field: &'static str, value: i64) -> Result<u64> {
    u64::try_from(value).map_err(|_| Error::OutOfRange {
        field,
        value: value.to_string(),
    })
}

/// An integer column -> `u32`.
pub(crate) fn to_u32(field: &'static str, value: i64) -> Result<u32> {
    u32::try_from(value).map_err(|_| Error::OutOfRange {
        field,
        value: value.to_string(),
    })
}

/// `now + secs`, saturating.
pub(crate) fn add_secs(now: i64, secs: u64) -> i64 {
    now.saturating_add(i64::try_from(secs).unwrap_or(i64::MAX))
}

/// A JSON value as column text.
pub(crate) fn json_text(value: &serde_json::Value) -> Result<String> {
    Ok(serde_json::to_string(value)?)
}

/// Ids bound in one `IN (...)` list: a list of any length goes in chunks.
pub(crate) const IDS_PER_STATEMENT: usize = 200;

/// `?, ?, ?` with `n` placeholders (n >= 1).
pub(crate) fn placeholders(n: usize) -> String {
    let mut s = String::with_capacity(n * 3);
    for i in 0..n {
        if i > 0 {
            s.push_str(", ");
        }
        s.push('?');
    }
    s
}

/// Reads a TEXT column and parses it with the type's `FromStr` (ids and cadre enums).
pub(crate) fn parse_col<T>(row: &AnyRow, col: &str) -> Result<T>
where
    T: FromStr<Err = cadre_types::Error>,
{
    let text: String = row.try_get(col)?;
    Ok(text.parse()?)
}

/// Reads a nullable TEXT column and parses it.
pub(crate) fn parse_opt_col<T>(row: &AnyRow, col: &str) -> Result<Option<T>>
where
    T: FromStr<Err = cadre_types::Error>,
{
    let text: Option<String> = row.try_get(col)?;
    Ok(text.map(|t| t.parse()).transpose()?)
}

/// Reads an integer flag column (0 or 1; the `Any` driver reads no SQLite integer as `bool`).
pub(crate) fn flag_col(row: &AnyRow, col: &str) -> Result<bool> {
    let value: i64 = row.try_get(col)?;
    Ok(value != 0)
}

/// Reads a TEXT column holding JSON.
pub(crate) fn json_col(row: &AnyRow, col: &str) -> Result<serde_json::Value> {
    let text: String = row.try_get(col)?;
    Ok(serde_json::from_str(&text)?)
}

/// Reads a nullable TEXT column holding JSON.
pub(crate) fn json_opt_col(row: &AnyRow, col: &str) -> Result<Option<serde_json::Value>> {
    let text: Option<String> = row.try_get(col)?;
    Ok(text.map(|t| serde_json::from_str(&t)).transpose()?)
}

/// Runs `query` and hands each row, mapped, to `visit` as the database produces
/// it: nothing but the current row is held.
pub(crate) async fn for_each_row<'q, T>(
    query: sqlx::query::Query<'q, Any, AnyArguments<'q>>,
    pool: &AnyPool,
    map: impl Fn(&AnyRow) -> Result<T>,
    mut visit: impl FnMut(T),
) -> Result<()> {
    let mut rows = query.fetch(pool);
    while let Some(row) = rows.try_next().await? {
        visit(map(&row)?);
    }
    Ok(())
}

/// Runs `query` and maps its rows one at a time as the database produces them, so
/// a listing never holds every raw row and every record at once.
pub(crate) async fn collect_rows<'q, T>(
    query: sqlx::query::Query<'q, Any, AnyArguments<'q>>,
    pool: &AnyPool,
    map: impl Fn(&AnyRow) -> Result<T>,
) -> Result<Vec<T>> {
    let mut out = Vec::new();
    for_each_row(query, pool, map, |item| out.push(item)).await?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_comma_separated() {
        assert_eq!(placeholders(1), "?");
        assert_eq!(placeholders(3), "?, ?, ?");
    }

    #[test]
    fn integer_conversions_reject_out_of_range() {
        assert_eq!(to_i64("x", 5).unwrap(), 5);
        assert!(to_i64("x", u64::MAX).is_err());
        assert!(to_u64("x", -1).is_err());
        assert!(to_u32("x", i64::from(u32::MAX) + 1).is_err());
        assert_eq!(add_secs(i64::MAX - 1, 10), i64::MAX);
    }
}
