"""Read models: every JSON shape the REST API (`exporter.web`) and the Grafana API (`datasource`)
serve, one module per feature with both its REST and its Grafana shapes.

`format` (times, numbers, zero-filled series) and `args` (what a Grafana panel asks for) serve them
all; the features are named as in `store/` and `web/`: `messages`, `logs`, `stats` (`/api/stats`),
`security` (the security dashboard's Rspamd and Netfilter panels), `dmarc`, `dmarc_imap`, `tls`,
`domains`, `mailbox_stats`, `mailcow_state` (mailcow's live queue, quarantine and status), `service`
(ingestion, jobs, gaps), `actions` (action answers, audit log) and `health`; `catalog` names the
Grafana queries and `metrics` is the Prometheus collector.
"""
