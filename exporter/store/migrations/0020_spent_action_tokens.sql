-- Confirmation-page tokens already used: a token's nonce is inserted when its form is posted, so the
-- same page cannot act twice, in any process or replica. Rows are dropped an hour after the token
-- expired (its signature refuses it by then anyway; the hour covers clock skew between hosts).
CREATE TABLE spent_action_tokens (
    nonce      text PRIMARY KEY,
    expires_at timestamptz NOT NULL
);
CREATE INDEX spent_action_tokens_expires_at ON spent_action_tokens (expires_at);
