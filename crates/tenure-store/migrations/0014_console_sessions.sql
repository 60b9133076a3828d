-- Sessions of the web console: a browser signed in with an API token. Only the SHA-256 of the
-- session's cookie is stored; the session acts with its token's scopes and person for as long
-- as the token is live, and ends at `expires_at`, at sign-out, or when the token is revoked.
CREATE TABLE IF NOT EXISTS console_sessions (
    id_hash     TEXT PRIMARY KEY,
    token_id    TEXT NOT NULL,
    csrf        TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    expires_at  BIGINT NOT NULL
);
CREATE INDEX IF NOT EXISTS console_sessions_expiry ON console_sessions (expires_at);
