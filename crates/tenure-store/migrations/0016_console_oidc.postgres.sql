-- Signing in to the console through OpenID Connect.
--
-- A sign-in under way: the browser holds a random cookie whose SHA-256 keys the row, which
-- holds the `state` the identity provider must send back, the `nonce` the ID token must carry,
-- the PKCE verifier and the console page to return to. Each is used once and lasts minutes.
CREATE TABLE IF NOT EXISTS console_oidc_logins (
    id_hash     TEXT PRIMARY KEY,
    state       TEXT NOT NULL,
    nonce       TEXT NOT NULL,
    verifier    TEXT NOT NULL,
    next        TEXT NOT NULL,
    expires_at  BIGINT NOT NULL
);
CREATE INDEX IF NOT EXISTS console_oidc_logins_expiry ON console_oidc_logins (expires_at);
-- How a session was opened: `token` (with an API token its holder keeps) or `oidc` (through the
-- identity provider, with a token made for that session alone and revoked when it ends).
ALTER TABLE console_sessions ADD COLUMN IF NOT EXISTS sign_in TEXT NOT NULL DEFAULT 'token';
