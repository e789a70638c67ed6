-- The audit log covers every state change a person (or the service itself) makes, not only queue and
-- quarantine actions: `kind` says which (queue_action, quarantine_action, dmarc_upload, dns_check,
-- imap_sync, sign_in_lockout) and `what` is a short summary of the target, never a secret.
ALTER TABLE action_audit ADD COLUMN kind text;
ALTER TABLE action_audit ADD COLUMN what text;
UPDATE action_audit SET kind = target || '_action';
ALTER TABLE action_audit ALTER COLUMN kind SET NOT NULL;
CREATE INDEX action_audit_kind ON action_audit (kind, at DESC, id DESC);
CREATE INDEX action_audit_actor ON action_audit (actor, at DESC, id DESC);
