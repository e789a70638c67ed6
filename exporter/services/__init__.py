"""What the worker and the CLI do: ingest mailcow's logs, correlate them into messages, backfill from
files, import DMARC/TLS reports (uploads and IMAP), check domains' DNS, act on queue and quarantine."""
