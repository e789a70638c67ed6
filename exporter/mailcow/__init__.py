"""mailcow's HTTP API: the client (retries, timeouts, quirks of `mailcow-api.md`), its errors, and the
cached live reads the web process answers queue, quarantine and status requests from."""
