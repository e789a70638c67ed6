-- DNS check results per domain (seed 002 caches them in the database) and the last full run.
CREATE TABLE domain_dns_checks (
    domain        text PRIMARY KEY,
    spf           jsonb NOT NULL,
    dkim          jsonb NOT NULL,
    dmarc         jsonb NOT NULL,
    checked_at    timestamptz NOT NULL,
    is_full_check boolean NOT NULL
);
CREATE INDEX domain_dns_checks_checked ON domain_dns_checks (checked_at);

CREATE TABLE app_state (
    name text PRIMARY KEY,
    at   timestamptz NOT NULL
);

-- mailcow's mailboxes and aliases as last synced, for the mailbox statistics (filtered, sorted and
-- paginated in SQL).
CREATE TABLE mailcow_mailboxes (
    username        text PRIMARY KEY,
    domain          text NOT NULL,
    name            text,
    active          boolean NOT NULL,
    quota           bigint NOT NULL DEFAULT 0,
    quota_used      bigint NOT NULL DEFAULT 0,
    messages        bigint NOT NULL DEFAULT 0,
    last_imap_login timestamptz,
    last_pop3_login timestamptz,
    last_smtp_login timestamptz,
    rl_value        integer,
    rl_frame        text,
    attributes      jsonb NOT NULL DEFAULT '{}',
    created         timestamptz,
    modified        timestamptz,
    synced_at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX mailcow_mailboxes_domain ON mailcow_mailboxes (domain);

CREATE TABLE mailcow_aliases (
    address      text PRIMARY KEY,
    goto         text NOT NULL,
    domain       text NOT NULL,
    active       boolean NOT NULL,
    is_catch_all boolean NOT NULL DEFAULT false,
    synced_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX mailcow_aliases_domain ON mailcow_aliases (domain);
