-- Abuse limits shared by every process and replica (exporter/store/limits.py): failed sign-ins per client
-- address, the addresses blocked after too many, and API requests per address and minute. All three
-- hold minutes of rows: each write prunes what has run out.
CREATE TABLE auth_failures (
    address inet        NOT NULL,
    at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX auth_failures_address_at ON auth_failures (address, at);

CREATE TABLE auth_lockouts (
    address inet PRIMARY KEY,
    until   timestamptz NOT NULL
);

CREATE TABLE request_counts (
    address inet        NOT NULL,
    minute  timestamptz NOT NULL,
    hits    integer     NOT NULL,
    PRIMARY KEY (address, minute)
);
CREATE INDEX request_counts_minute ON request_counts (minute);
