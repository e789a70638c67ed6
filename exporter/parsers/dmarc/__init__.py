"""DMARC aggregate and SMTP TLS (TLS-RPT) reports: pure parsing, no database, no Flask."""
