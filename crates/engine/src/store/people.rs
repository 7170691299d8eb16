//! The SQL of people sync: person-account links, sync records and read cursors (tables of
//! `0008_people.sql` / `0007_people.sql`), the same on SQLite and PostgreSQL. The store decides
//! nothing here; it records and answers. The one rule it keeps is the database's: an account
//! is linked to at most one person per tenant (a partial unique index), so of two concurrent
//! link calls for one account only one commits, and the other learns who holds the account.
//!
//! Queries with an optional filter number their `$n` parameters themselves: sqlx's
//! `QueryBuilder` writes `?` placeholders for the `Any` driver, which PostgreSQL refuses.

use serde_json::Value;
use sqlx::any::AnyRow;
use sqlx::{FromRow, Row};

use super::{now_ms, Error, Store};
use crate::people::{PersonLink, SyncRecord};

const LINK_COLUMNS: &str =
    "tenant, source, person_key, account_id, user_principal_name, via, run_id, created_ms, updated_ms";

const SYNC_COLUMNS: &str =
    "id, source, tenant, started_ms, finished_ms, mode, status, summary, plan, outcome, requests";

/// [`SYNC_COLUMNS`] with the plan and the outcome read as JSON null.
const SUMMARY_COLUMNS_SELECT: &str =
    "SELECT id, source, tenant, started_ms, finished_ms, mode, status, summary, \
     'null' AS plan, 'null' AS outcome, requests FROM people_syncs";

/// A sync as stored: plan and outcome as JSON text.
#[derive(FromRow)]
struct SyncRow {
    id: String,
    source: String,
    tenant: String,
    started_ms: i64,
    finished_ms: Option<i64>,
    mode: String,
    status: String,
    summary: String,
    plan: String,
    outcome: String,
    requests: i64,
}

impl SyncRow {
    fn record(self) -> Result<SyncRecord, Error> {
        let json = |text: &str, what: &str| {
            serde_json::from_str::<Value>(text)
                .map_err(|e| Error::Corrupt(format!("sync `{}` {what}: {e}", self.id)))
        };
        Ok(SyncRecord {
            plan: json(&self.plan, "plan")?,
            outcome: json(&self.outcome, "outcome")?,
            id: self.id,
            source: self.source,
            tenant: self.tenant,
            started_ms: self.started_ms,
            finished_ms: self.finished_ms,
            mode: self.mode,
            status: self.status,
            summary: self.summary,
            requests: self.requests,
        })
    }
}

fn links(rows: Vec<AnyRow>) -> Result<Vec<PersonLink>, Error> {
    rows.iter()
        .map(|r| PersonLink::from_row(r).map_err(Error::from))
        .collect()
}

/// Whether a write failed on a unique index (the account already linked to someone else).
fn unique_violation(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Database(d) => {
            d.is_unique_violation()
                || d.code().as_deref() == Some("23505")
                || d.message().contains("UNIQUE constraint failed")
        }
        _ => false,
    }
}

impl Store {
    /// Records `link` (an upsert on tenant, source and person key; the first `created_ms`
    /// stays, `updated_ms` becomes now). When its account is already linked to another person
    /// of the tenant nothing is written and that person's link is returned.
    pub async fn link_person(&self, link: &PersonLink) -> Result<Option<PersonLink>, Error> {
        if let Some(holder) = self.account_holder(link).await? {
            return Ok(Some(holder));
        }
        let now = now_ms();
        let created = if link.created_ms > 0 {
            link.created_ms
        } else {
            now
        };
        let done = sqlx::query(&format!(
            "INSERT INTO people_links ({LINK_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
             ON CONFLICT (tenant, source, person_key) DO UPDATE SET account_id = excluded.account_id, \
             user_principal_name = excluded.user_principal_name, via = excluded.via, \
             run_id = excluded.run_id, updated_ms = excluded.updated_ms"
        ))
        .bind(&link.tenant)
        .bind(&link.source)
        .bind(&link.person_key)
        .bind(&link.account_id)
        .bind(&link.user_principal_name)
        .bind(&link.via)
        .bind(&link.run_id)
        .bind(created)
        .bind(now)
        .execute(&self.pool)
        .await;
        match done {
            Ok(_) => Ok(None),
            // Another link call took the account between the look and the write.
            Err(e) if unique_violation(&e) => match self.account_holder(link).await? {
                Some(holder) => Ok(Some(holder)),
                None => Err(e.into()),
            },
            Err(e) => Err(e.into()),
        }
    }

    /// The link of another person of `link`'s tenant to `link`'s account, if any.
    async fn account_holder(&self, link: &PersonLink) -> Result<Option<PersonLink>, Error> {
        let Some(account) = &link.account_id else {
            return Ok(None);
        };
        let rows = sqlx::query(&format!(
            "SELECT {LINK_COLUMNS} FROM people_links WHERE tenant = $1 AND account_id = $2 \
             AND NOT (source = $3 AND person_key = $4)"
        ))
        .bind(&link.tenant)
        .bind(account)
        .bind(&link.source)
        .bind(&link.person_key)
        .fetch_all(&self.pool)
        .await?;
        Ok(links(rows)?.into_iter().next())
    }

    /// Removes a person's link. Returns whether there was one.
    pub async fn unlink_person(
        &self,
        tenant: &str,
        source: &str,
        person_key: &str,
    ) -> Result<bool, Error> {
        let done = sqlx::query(
            "DELETE FROM people_links WHERE tenant = $1 AND source = $2 AND person_key = $3",
        )
        .bind(tenant)
        .bind(source)
        .bind(person_key)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() > 0)
    }

    /// Removes every link to an account of a tenant. Returns how many there were.
    pub async fn unlink_account(&self, tenant: &str, account_id: &str) -> Result<usize, Error> {
        let done = sqlx::query("DELETE FROM people_links WHERE tenant = $1 AND account_id = $2")
            .bind(tenant)
            .bind(account_id)
            .execute(&self.pool)
            .await?;
        Ok(usize::try_from(done.rows_affected()).unwrap_or(usize::MAX))
    }

    /// The links of a tenant (of one source, or all), by source and person key.
    pub async fn person_links(
        &self,
        tenant: &str,
        source: Option<&str>,
    ) -> Result<Vec<PersonLink>, Error> {
        let mut sql = format!("SELECT {LINK_COLUMNS} FROM people_links WHERE tenant = $1");
        if source.is_some() {
            sql.push_str(" AND source = $2");
        }
        sql.push_str(" ORDER BY source, person_key");
        let mut query = sqlx::query(&sql).bind(tenant);
        if let Some(source) = source {
            query = query.bind(source);
        }
        links(query.fetch_all(&self.pool).await?)
    }

    /// The links to an account of a tenant (at most one).
    pub async fn links_of_account(
        &self,
        tenant: &str,
        account_id: &str,
    ) -> Result<Vec<PersonLink>, Error> {
        let rows = sqlx::query(&format!(
            "SELECT {LINK_COLUMNS} FROM people_links WHERE tenant = $1 AND account_id = $2 \
             ORDER BY source, person_key"
        ))
        .bind(tenant)
        .bind(account_id)
        .fetch_all(&self.pool)
        .await?;
        links(rows)
    }

    /// Records a sync, or replaces the record with the same id.
    pub async fn save_sync(&self, rec: &SyncRecord) -> Result<(), Error> {
        sqlx::query(&format!(
            "INSERT INTO people_syncs ({SYNC_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) \
             ON CONFLICT (id) DO UPDATE SET source = excluded.source, tenant = excluded.tenant, \
             started_ms = excluded.started_ms, finished_ms = excluded.finished_ms, mode = excluded.mode, \
             status = excluded.status, summary = excluded.summary, plan = excluded.plan, \
             outcome = excluded.outcome, requests = excluded.requests"
        ))
        .bind(&rec.id)
        .bind(&rec.source)
        .bind(&rec.tenant)
        .bind(rec.started_ms)
        .bind(rec.finished_ms)
        .bind(&rec.mode)
        .bind(&rec.status)
        .bind(&rec.summary)
        .bind(rec.plan.to_string())
        .bind(rec.outcome.to_string())
        .bind(rec.requests)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The newest `limit` syncs (of one source, or all), newest first.
    pub async fn syncs(&self, source: Option<&str>, limit: i64) -> Result<Vec<SyncRecord>, Error> {
        let select = format!("SELECT {SYNC_COLUMNS} FROM people_syncs");
        self.newest_syncs(select, source, limit).await
    }

    /// The newest `limit` syncs like [`Self::syncs`], without their plans and outcomes (both
    /// null): a list of syncs of a large source does not read every stored plan.
    pub async fn sync_summaries(
        &self,
        source: Option<&str>,
        limit: i64,
    ) -> Result<Vec<SyncRecord>, Error> {
        self.newest_syncs(SUMMARY_COLUMNS_SELECT.to_string(), source, limit)
            .await
    }

    /// The newest `limit` rows of `sql` (a `SELECT ... FROM people_syncs` of the sync
    /// columns), of one source or all, newest first.
    async fn newest_syncs(
        &self,
        mut sql: String,
        source: Option<&str>,
        limit: i64,
    ) -> Result<Vec<SyncRecord>, Error> {
        if source.is_some() {
            sql.push_str(" WHERE source = $1");
        }
        sql.push_str(&format!(
            " ORDER BY started_ms DESC, id DESC LIMIT {}",
            limit.clamp(1, 10_000)
        ));
        let mut query = sqlx::query(&sql);
        if let Some(source) = source {
            query = query.bind(source);
        }
        let rows = query.fetch_all(&self.pool).await?;
        rows.iter()
            .map(|r| SyncRow::from_row(r)?.record())
            .collect()
    }

    /// One sync.
    pub async fn sync_record(&self, id: &str) -> Result<Option<SyncRecord>, Error> {
        let row = sqlx::query(&format!(
            "SELECT {SYNC_COLUMNS} FROM people_syncs WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| SyncRow::from_row(&r)?.record()).transpose()
    }

    /// The read cursor of a (source, tenant).
    pub async fn people_cursor(&self, source: &str, tenant: &str) -> Result<Option<Value>, Error> {
        let row =
            sqlx::query("SELECT cursor FROM people_cursors WHERE source = $1 AND tenant = $2")
                .bind(source)
                .bind(tenant)
                .fetch_optional(&self.pool)
                .await?;
        row.map(|r| {
            let text: String = r.try_get("cursor")?;
            serde_json::from_str(&text).map_err(|e| {
                Error::Corrupt(format!("the people cursor of `{source}` / `{tenant}`: {e}"))
            })
        })
        .transpose()
    }

    /// Records the read cursor of a (source, tenant), replacing the previous one.
    pub async fn set_people_cursor(
        &self,
        source: &str,
        tenant: &str,
        cursor: &Value,
    ) -> Result<(), Error> {
        sqlx::query(
            "INSERT INTO people_cursors (source, tenant, cursor, updated_ms) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (source, tenant) DO UPDATE SET cursor = excluded.cursor, updated_ms = excluded.updated_ms",
        )
        .bind(source)
        .bind(tenant)
        .bind(cursor.to_string())
        .bind(now_ms())
        .execute(&self.pool)
        .await?;
        Ok(())
    }
}
