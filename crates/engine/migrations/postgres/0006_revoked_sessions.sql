-- Web UI sessions ended by signing out, by their nonce, until the cookie would have expired
-- anyway (unix ms): a copied cookie is refused after sign-out on every node.
CREATE TABLE revoked_sessions (
    nonce    TEXT PRIMARY KEY,
    until_ms BIGINT NOT NULL
);
CREATE INDEX revoked_sessions_until ON revoked_sessions(until_ms);
