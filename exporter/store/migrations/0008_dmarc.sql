-- DMARC aggregate, failure and SMTP TLS reports. A report is stored once: the same reporter,
-- report id, domain and period again is a duplicate (re-uploads and re-imports change nothing).
CREATE TABLE dmarc_reports (
    id                 bigserial PRIMARY KEY,
    org_name           text NOT NULL,
    org_email          text,
    extra_contact_info text,
    report_id          text NOT NULL,
    domain             text NOT NULL,
    begin_at           timestamptz NOT NULL,
    end_at             timestamptz NOT NULL,
    schema             text NOT NULL,
    generator          text,
    policy             jsonb NOT NULL,    -- policy_published: p, sp, adkim, aspf, pct, fo, np, testing, ...
    errors             jsonb NOT NULL DEFAULT '[]',
    source             text,              -- file name, or "imap:<folder>/<uid>"
    received_at        timestamptz NOT NULL DEFAULT now(),
    UNIQUE (org_name, report_id, domain, begin_at, end_at)
);
CREATE INDEX dmarc_reports_domain ON dmarc_reports (domain, begin_at);
CREATE INDEX dmarc_reports_begin ON dmarc_reports (begin_at);

CREATE TABLE dmarc_records (
    id            bigserial PRIMARY KEY,
    report_pk     bigint NOT NULL REFERENCES dmarc_reports ON DELETE CASCADE,
    source_ip     inet NOT NULL,
    count         integer NOT NULL,
    disposition   text NOT NULL,          -- the reporter's policy_evaluated
    dkim          text NOT NULL,
    spf           text NOT NULL,
    dmarc_pass    boolean NOT NULL,
    header_from   text,
    envelope_from text,
    envelope_to   text,
    reasons       jsonb NOT NULL DEFAULT '[]',
    auth_dkim     jsonb NOT NULL DEFAULT '[]',   -- auth_results as given
    auth_spf      jsonb NOT NULL DEFAULT '[]',
    country_code  text,
    country_name  text,
    city          text,
    asn           text,
    asn_org       text,
    reverse_dns   text
);
CREATE INDEX dmarc_records_report ON dmarc_records (report_pk);
CREATE INDEX dmarc_records_ip ON dmarc_records (source_ip);

CREATE TABLE dmarc_failure_reports (
    id                     bigserial PRIMARY KEY,
    digest                 text NOT NULL UNIQUE,   -- SHA-256 of the report mail: the same mail twice is a duplicate
    reported_domain        text NOT NULL,
    source_ip              inet,
    arrival_at             timestamptz,
    format                 text NOT NULL,
    feedback_type          text,
    original_mail_from     text,
    original_rcpt_to       text,
    auth_failure           text,
    delivery_result        text,
    authentication_results text,
    reporter               text,
    subject                text,
    header_from            text,
    country_code           text,
    asn                    text,
    source                 text,
    received_at            timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX dmarc_failure_reports_domain ON dmarc_failure_reports (reported_domain, arrival_at);

CREATE TABLE tls_reports (
    id                bigserial PRIMARY KEY,
    organization_name text NOT NULL,
    report_id         text NOT NULL,
    contact_info      text,
    begin_at          timestamptz NOT NULL,
    end_at            timestamptz NOT NULL,
    source            text,
    received_at       timestamptz NOT NULL DEFAULT now(),
    UNIQUE (organization_name, report_id, begin_at, end_at)
);
CREATE TABLE tls_policies (
    id                  bigserial PRIMARY KEY,
    report_pk           bigint NOT NULL REFERENCES tls_reports ON DELETE CASCADE,
    policy_type         text NOT NULL,
    policy_domain       text NOT NULL,
    policy_strings      jsonb NOT NULL DEFAULT '[]',
    mx_hosts            jsonb NOT NULL DEFAULT '[]',
    successful_sessions bigint NOT NULL,
    failed_sessions     bigint NOT NULL,
    failure_details     jsonb NOT NULL DEFAULT '[]'
);
CREATE INDEX tls_policies_domain ON tls_policies (policy_domain);
CREATE INDEX tls_policies_report ON tls_policies (report_pk);

-- IMAP auto-import runs (seed 002's sync history).
CREATE TABLE dmarc_imap_syncs (
    id                bigserial PRIMARY KEY,
    sync_type         text NOT NULL,       -- auto | manual
    status            text NOT NULL,       -- running | success | error
    started_at        timestamptz NOT NULL DEFAULT now(),
    completed_at      timestamptz,
    emails_found      integer NOT NULL DEFAULT 0,
    emails_processed  integer NOT NULL DEFAULT 0,
    reports_created   integer NOT NULL DEFAULT 0,
    reports_duplicate integer NOT NULL DEFAULT 0,
    reports_failed    integer NOT NULL DEFAULT 0,
    error_message     text,
    failed_emails     jsonb
);
CREATE INDEX dmarc_imap_syncs_started ON dmarc_imap_syncs (started_at DESC);
