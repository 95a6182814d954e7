"""User agent -> browser, OS, device class and crawler flag.

ua-parser's precompiled rules name the browser and OS; crawlerdetect's maintained list names the
bots that ua-parser has no rule for (`curl`, headless Chromes, SEO crawlers). Both are regex work
per string, but a site's traffic has few distinct agents, so each one is parsed once per Python
worker and then served from a cache.
"""

from __future__ import annotations

from functools import cache, lru_cache
from typing import NamedTuple

UNKNOWN = "Other"  # ua-parser's own name for a family it has no rule for

DESKTOP_OS = {"Windows", "Mac OS X", "Linux", "Ubuntu", "Fedora", "Chrome OS", "FreeBSD"}
MOBILE_OS = {"iOS", "Android", "Windows Phone", "KaiOS", "HarmonyOS"}
TABLET_DEVICES = {"iPad", "Kindle", "Generic Tablet"}


class UserAgent(NamedTuple):
    browser_family: str
    browser_version: str | None  # the major version
    os_family: str
    os_version: str | None  # major.minor when the agent says
    device_class: str  # desktop, mobile, tablet, bot or other
    is_bot: bool


@lru_cache(maxsize=65_536)
def describe(agent: str | None) -> UserAgent:
    """What an agent string says; `Other` families and class `other` when it says nothing known."""
    from ua_parser import parse

    text = agent or ""
    result = parse(text)
    browser, os, device = result.user_agent, result.os, result.device
    bot = _crawlers().isCrawler(text) or (device is not None and device.family == "Spider")
    os_family = os.family if os else UNKNOWN
    return UserAgent(
        browser_family=browser.family if browser else UNKNOWN,
        browser_version=browser.major if browser else None,
        os_family=os_family,
        os_version=".".join(v for v in (os.major, os.minor) if v) or None if os else None,
        device_class="bot" if bot else _device_class(text, os_family, device.family if device else None),
        is_bot=bot,
    )


def _device_class(text: str, os_family: str, device_family: str | None) -> str:
    if device_family in TABLET_DEVICES or "Tablet" in text:
        return "tablet"
    if os_family == "Android" and "Mobile" not in text:
        return "tablet"  # Android phones' browsers say "Mobile"; tablets' do not
    if os_family in MOBILE_OS or "Mobile" in text:
        return "mobile"
    if os_family in DESKTOP_OS:
        return "desktop"
    return "other"


@cache
def _crawlers():
    from crawlerdetect import CrawlerDetect

    return CrawlerDetect()
