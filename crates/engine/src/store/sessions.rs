//! Web UI sessions ended before their time: a signed-out session's nonce is kept until the
//! cookie would have expired, so every node refuses a copy of it. The store decides nothing
//! about sessions; it records and answers.

use sqlx::Row;

use super::{now_ms, Error, Store};

impl Store {
    /// Records that the session `nonce` ended; its cookie would have expired at `until_ms`.
    /// Records of sessions past their expiry are dropped on the way.
    pub async fn revoke_session(&self, nonce: &str, until_ms: i64) -> Result<(), Error> {
        sqlx::query("DELETE FROM revoked_sessions WHERE until_ms < $1")
            .bind(now_ms())
            .execute(&self.pool)
            .await?;
        sqlx::query(
            "INSERT INTO revoked_sessions (nonce, until_ms) VALUES ($1, $2) ON CONFLICT (nonce) DO NOTHING",
        )
        .bind(nonce)
        .bind(until_ms)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Whether the session `nonce` was ended.
    pub async fn session_revoked(&self, nonce: &str) -> Result<bool, Error> {
        let row = sqlx::query("SELECT COUNT(*) FROM revoked_sessions WHERE nonce = $1")
            .bind(nonce)
            .fetch_one(&self.pool)
            .await?;
        Ok(row.try_get::<i64, _>(0)? > 0)
    }
}
