"""Versioned plain-SQL schema migrations, applied in file-name order by `database.migrate`."""
