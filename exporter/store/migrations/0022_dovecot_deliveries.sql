-- What the mailbox did with a message (issue 22): one row per Dovecot LMTP delivery line
-- (exporter/parsers/dovecot.py), correlated to messages by Message-ID and recipient
-- (exporter/store/correlation/deliveries.py). Loading the same line twice stores it once.
CREATE TABLE dovecot_deliveries (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at          timestamptz NOT NULL,
    recipient   text NOT NULL,
    session_id  text,
    message_id  text,
    outcome     text NOT NULL CHECK (outcome IN ('stored', 'discarded', 'redirected', 'rejected', 'failed')),
    mailbox     text,
    detail      text,
    line_key    bytea NOT NULL,
    occurrence  integer NOT NULL,
    UNIQUE (line_key, occurrence)
);
-- correlation: every line of one (Message-ID, recipient) pair
CREATE INDEX dovecot_deliveries_message ON dovecot_deliveries (message_id, lower(recipient))
    WHERE message_id IS NOT NULL;
-- retention
CREATE INDEX dovecot_deliveries_at ON dovecot_deliveries (at);
INSERT INTO correlation_state (source) VALUES ('dovecot');

-- Message-ID to message, written once per message (messages has no message_id index: every
-- correlation run writes a new version of each message it touches, and each version would cost an
-- entry there). first_seen picks the right one when a Message-ID was sent again.
CREATE TABLE message_ids (
    message_id text NOT NULL,
    message_pk bigint NOT NULL,
    first_seen timestamptz NOT NULL,
    PRIMARY KEY (message_id, message_pk)
);
CREATE INDEX message_ids_message_pk ON message_ids (message_pk);
INSERT INTO message_ids (message_id, message_pk, first_seen)
SELECT message_id, id, first_seen FROM messages WHERE message_id IS NOT NULL;

-- The Dovecot line that decided each recipient's delivery (NULL: none correlated yet).
ALTER TABLE message_recipients
    ADD COLUMN delivery_outcome text,
    ADD COLUMN delivery_mailbox text,
    ADD COLUMN delivery_detail  text,
    ADD COLUMN delivery_at      timestamptz;
