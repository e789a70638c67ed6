-- Every queue and quarantine action attempt, refused ones included: who, from where, what, which
-- items, and mailcow's answer item by item. Nothing here holds a secret.
CREATE TABLE action_audit (
    id           bigserial PRIMARY KEY,
    at           timestamptz NOT NULL DEFAULT now(),
    actor        text NOT NULL,          -- the HTTP Basic user, or 'anonymous' when auth is off
    grafana_user text,                   -- X-Grafana-User, when Grafana forwards it
    remote_addr  text,
    origin       text,
    via          text NOT NULL,          -- api | page | grafana-action (browser) | grafana-server (Infinity)
    target       text NOT NULL,          -- queue | quarantine
    action       text NOT NULL,
    items        jsonb NOT NULL,
    outcome      text NOT NULL,          -- success | partial | failed | refused
    code         text,                   -- our error code when not a success
    detail       text,
    results      jsonb NOT NULL DEFAULT '[]'
);
CREATE INDEX action_audit_at ON action_audit (at DESC, id DESC);
CREATE INDEX action_audit_target ON action_audit (target, action, at DESC);
CREATE INDEX action_audit_outcome ON action_audit (outcome, at DESC);

-- Secrets this service generates for itself (the confirmation-page token key), shared by all its
-- processes; never returned by the API.
CREATE TABLE app_secrets (
    name  text PRIMARY KEY,
    value text NOT NULL
);
