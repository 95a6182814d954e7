"""IP address -> country, from the offline database that geoip2fast ships (GeoLite2 country data,
IPv4). It runs in the ingest before the address is truncated: a /24 can straddle two countries'
networks, and once truncated the host is gone for good."""

from __future__ import annotations

from functools import cache, lru_cache

NOT_FOUND = "--"  # geoip2fast's code for an address in no network it knows (private ones too)


@lru_cache(maxsize=262_144)
def country_of(ip: str | None) -> str | None:
    """The ISO country code of the network an address belongs to; None when unknown or invalid."""
    if not ip:
        return None
    code = _database().lookup(ip).country_code
    return code if code and len(code) == 2 and code != NOT_FOUND else None


@cache
def _database():
    from geoip2fast import GeoIP2Fast

    return GeoIP2Fast()
