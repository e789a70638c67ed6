"""Set-based correlation of stored log lines into messages, in SQL."""
