"""Country, city and ASN of an IP from MaxMind databases (City and ASN), when configured.

Without the files every lookup answers empty fields (the API shows null, the flag a globe).
`reload_if_changed` (the `update_geoip` job) reopens a database whose file changed on disk, so a
geoipupdate run needs no restart. Lookups are cached per IP until the next reload.
"""

from __future__ import annotations

import logging
import os
import threading
from functools import lru_cache
from typing import Any

import geoip2.database
import geoip2.errors
import maxminddb

log = logging.getLogger(__name__)
EMPTY = {"country_code": None, "country_name": None, "city": None, "asn": None, "asn_org": None}


def flag(country_code: str | None) -> str:
    """The flag emoji of an ISO 3166-1 alpha-2 code; a globe when unknown."""
    if not country_code or len(country_code) != 2 or not country_code.isalpha():
        return "\U0001f30d"
    return "".join(chr(0x1F1E6 + ord(c) - ord("A")) for c in country_code.upper())


class GeoIP:
    def __init__(self, city_path: str | None, asn_path: str | None) -> None:
        self._paths = {"city": city_path, "asn": asn_path}
        self._readers: dict[str, tuple[float, geoip2.database.Reader] | None] = {"city": None, "asn": None}
        self._lock = threading.Lock()
        self.reload_if_changed()

    def _open(self, kind: str) -> bool:
        path = self._paths[kind]
        current = self._readers[kind]
        if not path or not os.path.exists(path):
            if current is not None:
                self._readers[kind] = None
                return True
            return False
        mtime = os.path.getmtime(path)
        if current is not None and current[0] == mtime:
            return False
        try:
            self._readers[kind] = (mtime, geoip2.database.Reader(path))
            log.info("GeoIP %s database loaded from %s", kind, path)
        except (OSError, maxminddb.InvalidDatabaseError, ValueError) as exc:
            log.warning("GeoIP %s database %s cannot be read: %s", kind, path, exc)
            self._readers[kind] = None
        return True

    def reload_if_changed(self) -> bool:
        """Reopen databases whose files changed; True when something changed."""
        with self._lock:
            changed = [self._open(kind) for kind in ("city", "asn")]
        if any(changed):
            self.lookup.cache_clear()
        return any(changed)

    @property
    def available(self) -> dict[str, bool]:
        return {kind: reader is not None for kind, reader in self._readers.items()}

    @lru_cache(maxsize=65536)  # noqa: B019 - one long-lived instance per process
    def lookup(self, ip: str) -> dict[str, Any]:
        out = dict(EMPTY)
        city = self._readers["city"]
        if city is not None:
            try:
                reader = city[1]
                if "City" in reader.metadata().database_type:
                    place = reader.city(ip)
                    out.update(city=place.city.name)
                else:  # a Country database also does
                    place = reader.country(ip)
                out.update(country_code=place.country.iso_code, country_name=place.country.name)
            except (geoip2.errors.AddressNotFoundError, ValueError):
                pass
        asn = self._readers["asn"]
        if asn is not None:
            try:
                owner = asn[1].asn(ip)
                if owner.autonomous_system_number:
                    out.update(asn=f"AS{owner.autonomous_system_number}", asn_org=owner.autonomous_system_organization)
            except (geoip2.errors.AddressNotFoundError, ValueError):
                pass
        return out
