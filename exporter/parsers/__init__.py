"""Pure functions from mailcow API items to typed records: no Flask, no database."""
