"""The background process: the job registry, the ingest loop and the scheduler, the leader lock that
lets one replica of many do the work, and the supervisor that restarts a dead or hung worker."""
