"""Where a page view came from: the referrer's class and the campaign's UTM parameters.

A few host patterns, evaluated per distinct url in the ingest's Python pass. Urls are read the way
Spark's `parse_url` reads them (java.net.URI): a url Java refuses has no host and no query, and a
query parameter is its raw text, not decoded. A session's channel is its first event's class
(first-touch attribution, in the sessions table).
"""

from __future__ import annotations

import re
from functools import lru_cache

REFERRER_CLASSES = ["paid", "email", "direct", "internal", "search", "social", "referral"]
PAID_MEDIA = {"cpc", "ppc", "paid", "paidsearch", "paid_search", "paid_social", "display", "cpm"}
EMAIL_MEDIA = {"email", "e-mail", "newsletter"}
SOCIAL_MEDIA = {"social", "social-media"}
# Host patterns, matched on the referrer's whole host without a leading "www.": a site's name under
# any top-level domain (google.de, google.co.uk), or a known short host.
SEARCH_HOSTS = re.compile(
    r"^(google|bing|duckduckgo|yahoo|baidu|yandex|ecosia|startpage|qwant|naver)\.[a-z.]+$"
    r"|^search\.(brave|yahoo)\.com$")
SOCIAL_HOSTS = re.compile(
    r"^((m|l|lm)\.)?(facebook|instagram|x|twitter|linkedin|reddit|pinterest|tiktok|youtube"
    r"|threads|bsky|vk)\.[a-z.]+$|^(t\.co|lnkd\.in|old\.reddit\.com|fb\.me)$")
MAIL_HOSTS = re.compile(r"^(mail|webmail|outlook)\.[a-z.]+$")
UTM_PARAMETERS = {"campaign_source": "utm_source", "campaign_medium": "utm_medium",
                  "campaign_name": "utm_campaign"}

# What java.net.URI refuses anywhere in a url: spaces and controls, the characters RFC 2396 leaves
# out, and a % that starts no escape.
_ILLEGAL = re.compile('[\x00-\x20"<>\\\\^`{|}\x7f-\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]'
                      "|%(?![0-9A-Fa-f]{2})")
_PARTS = re.compile(r"^(?:([A-Za-z][A-Za-z0-9+.\-]*):)?(?://([^/?#]*))?([^?#]*)(?:\?([^#]*))?(?:#(.*))?$",
                    re.DOTALL)
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9\-]*[A-Za-z0-9])?"
_SERVER_HOST = re.compile(rf"^(?:(?:{_LABEL}\.)*[A-Za-z](?:[A-Za-z0-9\-]*[A-Za-z0-9])?\.?"
                          r"|\d{1,3}(?:\.\d{1,3}){3}|\[[0-9A-Fa-f:.]+\])$", re.ASCII)


@lru_cache(maxsize=131_072)
def url_parts(url: str | None) -> tuple[str | None, str | None]:
    """A url's host and raw query as java.net.URI reads them; (None, None) where it refuses it."""
    if url is None or _ILLEGAL.search(url):
        return None, None
    parts = _PARTS.match(url)
    if parts is None:
        return None, None
    scheme, authority, path, query, fragment = parts.groups()
    if "#" in (fragment or "") or any("[" in p or "]" in p for p in (path, query or "", fragment or "")):
        return None, None
    if scheme is not None and authority is None and not path.startswith("/"):
        return None, None  # opaque, like mailto: — no host, no query
    return _server_host(authority), query


def _server_host(authority: str | None) -> str | None:
    if not authority:
        return None
    host = authority.rpartition("@")[2]
    if not host.endswith("]") and ":" in host:
        host, _, port = host.rpartition(":")
        if port and not port.isdigit():
            return None
    return host if _SERVER_HOST.match(host) else None


@lru_cache(maxsize=131_072)
def utm(url: str | None, parameter: str) -> str | None:
    """A query parameter of a url, as sent; None when absent or when the url does not parse."""
    query = url_parts(url)[1]
    if query is None:
        return None
    found = re.search(rf"(&|^){re.escape(parameter)}=([^&]*)", query)
    return found.group(2) if found else None


@lru_cache(maxsize=131_072)
def host(url: str | None) -> str | None:
    """A url's host in lower case, without a leading "www."."""
    name = url_parts(url)[0]
    return None if name is None else re.sub(r"^www\.", "", name.lower())


def referrer_class(referrer: str | None, url: str | None, medium: str | None) -> str:
    """paid, email, direct, internal, search, social or referral (any other site)."""
    return classify(referrer, host(url), medium)


def classify(referrer: str | None, page_host: str | None, medium: str | None) -> str:
    """referrer_class with the page's host already read (`host(url)`), as the ingest keeps it."""
    medium = medium.lower() if medium is not None else None
    source = host(referrer)
    if medium in PAID_MEDIA:
        return "paid"
    if medium in EMAIL_MEDIA or (source is not None and MAIL_HOSTS.search(source)):
        return "email"
    if referrer is None or referrer.strip(" ") == "" or source is None:
        return "direct"
    if source == page_host:
        return "internal"
    if SEARCH_HOSTS.search(source):
        return "search"
    if SOCIAL_HOSTS.search(source) or medium in SOCIAL_MEDIA:
        return "social"
    return "referral"
