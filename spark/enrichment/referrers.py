"""Where a page view came from: the referrer's class and the campaign's UTM parameters.

Plain Spark expressions, no Python: the rules are a few host patterns, evaluated in the JVM. A
session's channel is its first event's class (first-touch attribution, in the sessions table).
"""

from __future__ import annotations

from pyspark.sql import Column
from pyspark.sql import functions as F

REFERRER_CLASSES = ["paid", "email", "direct", "internal", "search", "social", "referral"]
PAID_MEDIA = ["cpc", "ppc", "paid", "paidsearch", "paid_search", "paid_social", "display", "cpm"]
EMAIL_MEDIA = ["email", "e-mail", "newsletter"]
# Host patterns, matched on the referrer's whole host without a leading "www.": a site's name under
# any top-level domain (google.de, google.co.uk), or a known short host.
SEARCH_HOSTS = (r"^(google|bing|duckduckgo|yahoo|baidu|yandex|ecosia|startpage|qwant|naver)\.[a-z.]+$"
                r"|^search\.(brave|yahoo)\.com$")
SOCIAL_HOSTS = (r"^((m|l|lm)\.)?(facebook|instagram|x|twitter|linkedin|reddit|pinterest|tiktok|youtube"
                r"|threads|bsky|vk)\.[a-z.]+$|^(t\.co|lnkd\.in|old\.reddit\.com|fb\.me)$")
MAIL_HOSTS = r"^(mail|webmail|outlook)\.[a-z.]+$"
UTM_PARAMETERS = {"campaign_source": "utm_source", "campaign_medium": "utm_medium",
                  "campaign_name": "utm_campaign"}


def utm(url: Column, parameter: str) -> Column:
    """A query parameter of a url; null when absent or when the url does not parse."""
    return F.call_function("try_parse_url", url, F.lit("QUERY"), F.lit(parameter))


def host(url: Column) -> Column:
    """A url's host in lower case, without a leading "www."."""
    return F.regexp_replace(F.lower(F.call_function("try_parse_url", url, F.lit("HOST"))), r"^www\.", "")


def referrer_class(referrer: Column, url: Column, medium: Column) -> Column:
    """paid, email, direct, internal, search, social or referral (any other site)."""
    medium = F.lower(medium)
    source = host(referrer)
    return (F.when(medium.isin(PAID_MEDIA), "paid")
            .when(medium.isin(EMAIL_MEDIA) | source.rlike(MAIL_HOSTS), "email")
            .when(referrer.isNull() | (F.trim(referrer) == "") | source.isNull(), "direct")
            .when(source == host(url), "internal")
            .when(source.rlike(SEARCH_HOSTS), "search")
            .when(source.rlike(SOCIAL_HOSTS) | medium.isin("social", "social-media"), "social")
            .otherwise("referral"))
