"""Set-based correlation of stored log lines into messages, in SQL: `batch` (one run over the lines
added since the last), `recompute` (re-deriving the messages a run touched; expiry and the
consistency sweep), `deliveries` (Dovecot's delivery lines onto the recipients), `counts` (the run's
counters and rollups) and `status` (how far it has got)."""
