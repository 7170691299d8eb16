//! Signed-out web UI sessions, as the store keeps them: a revoked nonce reads as revoked on
//! any connection until its expiry, revoking twice is harmless, records past their expiry are
//! dropped. On SQLite and PostgreSQL.

use crate::db::Db;

async fn revocations(db: Db) {
    if !db.available() {
        return;
    }
    let (store, _guard) = db.open().await;
    let later = tenure_engine::store::now_ms() + 3_600_000;
    assert!(!store.session_revoked("nonce-a").await.unwrap());
    store.revoke_session("nonce-a", later).await.unwrap();
    store.revoke_session("nonce-a", later).await.unwrap();
    assert!(store.session_revoked("nonce-a").await.unwrap());
    assert!(!store.session_revoked("nonce-b").await.unwrap());
    // A record whose cookie has expired anyway goes at the next revocation.
    store.revoke_session("old", 1).await.unwrap();
    store.revoke_session("nonce-c", later).await.unwrap();
    assert!(!store.session_revoked("old").await.unwrap());
    assert!(store.session_revoked("nonce-c").await.unwrap());
}

#[tokio::test]
async fn sqlite_keeps_signed_out_sessions() {
    revocations(Db::Sqlite).await;
}

#[tokio::test]
async fn postgres_keeps_signed_out_sessions() {
    revocations(Db::Postgres).await;
}
