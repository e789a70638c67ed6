"""Pure functions from mailcow API items to typed records: no Flask, no database."""

# Addresses, names and ids the store indexes: a B-tree entry holds about 2,700 bytes, and one longer
# value (a 3 KB Message-ID a sender chose) failed every correlation batch. RFC 5321 paths are at most
# 256 octets, so 512 characters (at most 2 KB of UTF-8) cut only what no mail system sends.
MAX_FIELD = 512
