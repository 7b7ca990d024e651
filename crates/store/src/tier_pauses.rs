//! Provider push-back shared by every daemon of a store (the `tier_pauses`
//! table): a 429/529 seen by one daemon pauses the tier for all of them until
//! the provider's retry-after. Times are unix milliseconds.

use sqlx::Row;

use crate::{Result, Store};

/// A tier paused until `until_ms`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TierPause {
    /// The tier (`haiku`, `sonnet`, ...).
    pub tier: String,
    /// No call of the tier starts before this (unix milliseconds).
    pub until_ms: i64,
    /// What the provider said.
    pub reason: String,
    /// The daemon that saw it.
    pub set_by: String,
}

impl Store {
    /// Pauses `pause.tier` until `pause.until_ms`, or leaves a longer pause
    /// in place (a pause only ever extends).
    pub async fn pause_tier(&self, pause: &TierPause) -> Result<()> {
        sqlx::query(&self.sql(
            "INSERT INTO tier_pauses (tier, until_ms, reason, set_by) VALUES (?, ?, ?, ?) \
             ON CONFLICT (tier) DO UPDATE SET until_ms = excluded.until_ms, \
                 reason = excluded.reason, set_by = excluded.set_by \
             WHERE tier_pauses.until_ms < excluded.until_ms",
        ))
        .bind(&pause.tier)
        .bind(pause.until_ms)
        .bind(&pause.reason)
        .bind(&pause.set_by)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The pauses still in force at `now_ms`.
    pub async fn tier_pauses(&self, now_ms: i64) -> Result<Vec<TierPause>> {
        let rows = sqlx::query(&self.sql(
            "SELECT tier, until_ms, reason, set_by FROM tier_pauses \
             WHERE until_ms > ? ORDER BY tier",
        ))
        .bind(now_ms)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(TierPause {
                    tier: r.try_get("tier")?,
                    until_ms: r.try_get("until_ms")?,
                    reason: r.try_get("reason")?,
                    set_by: r.try_get("set_by")?,
                })
            })
            .collect()
    }
}
