"""A stand-in for the mailcow API (`mailcow-api.md`) with seeded, realistic mail traffic."""
