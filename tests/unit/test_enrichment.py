"""Enrichment: what the ingest adds to each event (user agent, bots, IP country, referrer class,
campaign), on the agents, networks and referrers the simulator and real sites send."""

from __future__ import annotations

import copy
import ipaddress
import sys
from datetime import datetime

import orjson
import pytest
from pyspark.sql import functions as F

from simulator.population import COUNTRIES, CRAWLER_SHARE, CRAWLERS, DEVICES, build_population
from spark.analytics.transform import analytics_rows, flag_fast_users
from spark.enrichment.geo import country_of
from spark.enrichment.referrers import REFERRER_CLASSES, referrer_class
from spark.enrichment.user_agents import describe
from spark.ingest.transform import flat_events, to_lake_rows
from tests.unit.test_ingest_transform import EVENT, KAFKA

# The simulator's OS names, as ua-parser's rules name them (iPadOS reports itself as iOS).
PARSED_OS = {"Android": "Android", "iOS": "iOS", "iPadOS": "iOS", "Windows": "Windows",
             "macOS": "Mac OS X", "Linux": "Linux"}
BOTS = {
    "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)": "Googlebot",
    "Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)": "bingbot",
    "Mozilla/5.0 (compatible; AhrefsBot/7.0; +http://ahrefs.com/robot/)": "AhrefsBot",
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/120.0.0.0 "
    "Safari/537.36": "HeadlessChrome",
    "curl/8.5.0": "curl",
    "python-requests/2.32.3": "Python Requests",
}


@pytest.mark.parametrize(("device", "os", "browser", "agent"),
                         [(device, os, browser, agent) for device, _, variants in DEVICES
                          for os, browser, agent, _ in variants])
def test_the_simulators_agents_are_people_on_the_device_class_they_declare(device, os, browser, agent):
    described = describe(agent)
    assert (described.device_class, described.is_bot) == (device, False)
    assert described.browser_version and described.browser_version.isdigit()
    assert described.os_family == PARSED_OS[os]


@pytest.mark.parametrize(("agent", "family"), BOTS.items())
def test_crawlers_and_scripts_are_bots(agent, family):
    described = describe(agent)
    assert (described.is_bot, described.device_class, described.browser_family) == (True, "bot", family)


@pytest.mark.parametrize("agent", [None, "", "UA"])
def test_an_agent_that_says_nothing_known_is_other_not_a_bot(agent):
    described = describe(agent)
    assert (described.browser_family, described.os_family, described.device_class,
            described.is_bot) == ("Other", "Other", "other", False)


@pytest.mark.parametrize(("country", "network"),
                         [(country, network) for country, _, _, networks in COUNTRIES
                          for network in networks])
def test_the_simulators_networks_belong_to_their_country(country, network):
    net = ipaddress.IPv4Network(network)
    for host in (net.network_address + 1, net.network_address + net.num_addresses // 2,
                 net.broadcast_address - 1):
        assert country_of(str(host)) == country, f"{host} in {network}"


def test_every_simulated_user_is_located_in_their_declared_country():
    users = build_population(2_000, seed=7)
    assert all(country_of(user.geo["ip"]) == user.country for user in users)


@pytest.mark.parametrize("ip", [None, "", "10.1.2.3", "192.168.0.1", "not an address", "2001:db8::1"])
def test_private_invalid_and_unknown_addresses_have_no_country(ip):
    assert country_of(ip) is None


REFERRERS = {
    # (referrer, medium) -> class; the page is on shop.example.com
    ("https://www.google.com/", "cpc"): "paid",
    ("https://www.facebook.com/", "paid_social"): "paid",
    (None, "email"): "email",
    ("https://mail.google.com/mail/u/0/", None): "email",
    (None, None): "direct",
    ("", None): "direct",
    ("https://shop.example.com/c/shoes", None): "internal",
    ("https://www.google.com/", None): "search",
    ("https://duckduckgo.com/", None): "search",
    ("https://www.bing.com/search?q=shoes", None): "search",
    ("https://www.facebook.com/", "social"): "social",
    ("https://t.co/abc", None): "social",
    ("https://www.instagram.com/", None): "social",
    ("https://blog.example.org/best-shoes", None): "referral",
    ("not a url", None): "direct",
}


def test_referrers_are_classified_by_medium_then_host():
    classes = [referrer_class(referrer, "https://shop.example.com/p/00042", medium)
               for referrer, medium in REFERRERS]
    assert classes == list(REFERRERS.values())
    assert set(REFERRERS.values()) == set(REFERRER_CLASSES)  # every class is exercised


def _lake_row(spark, **changes) -> dict:
    event = copy.deepcopy(EVENT)
    for section, values in changes.items():
        event[section] = values if values is None else {**(event[section] or {}), **values}
    return to_lake_rows(flat_events(_kafka_rows(spark, event))).first().asDict()


def _kafka_rows(spark, event: dict):
    """One Kafka source row carrying `event`."""
    return spark.createDataFrame(
        [(b"u", orjson.dumps(event), "clickstream", 0, 0, datetime(2026, 3, 3, 0, 0, 5))], KAFKA)


def test_an_event_is_enriched_before_its_address_is_truncated(spark):
    row = _lake_row(spark, geo={"country": "US", "ip": "2.24.7.9"},
                    device={"user_agent": next(iter(BOTS))})
    assert (row["ip"], row["ip_country"]) == ("2.24.7.0", "GB")  # declared US, located GB
    assert (row["is_bot"], row["bot_reason"], row["device_class"]) == (True, "user_agent", "bot")
    assert row["device_type"] == "mobile"  # what the client declared stays as sent


def test_the_lookups_run_in_workers_that_keep_zip_directories_across_tasks(spark):
    # Each Python task calls importlib.invalidate_caches(); the pipeline's worker daemon keeps it
    # from re-reading pyspark.zip's directory every time (spark/worker_daemon.py).
    @F.udf("string")
    def invalidation(_):
        import sys
        import zipimport

        return f"{sys.argv[0]} {zipimport.zipimporter.invalidate_caches.__qualname__}"

    (row,) = spark.range(1).select(invalidation("id").alias("seen")).collect()
    daemon, method = row.seen.split()
    assert daemon.endswith("spark/worker_daemon.py")
    assert method == ("keep_directory" if sys.version_info < (3, 12) else "zipimporter.invalidate_caches")


def test_a_dead_letter_is_never_looked_up(spark):
    # A crawler's agent and a GB address on an event that breaks the contract (its id is no uuid):
    # the lookups must see neither, since a long hostile agent costs ua-parser seconds.
    event = copy.deepcopy(EVENT)
    event.update(event_id="not-a-uuid", geo={**event["geo"], "ip": "2.24.7.9"},
                 device={**event["device"], "user_agent": next(iter(BOTS))})
    row = flat_events(_kafka_rows(spark, event)).first()
    assert row["error"].startswith("invalid_value: event_id")
    assert (row["is_bot"], row["browser_family"], row["ip_country"]) == (None, None, None)


def test_campaign_fields_come_from_utm_parameters_when_the_event_has_none(spark):
    url = "https://shop.example.com/?utm_source=newsletter&utm_medium=email&utm_campaign=weekly"
    row = _lake_row(spark, page={"url": url, "referrer": None}, campaign=None)
    assert (row["campaign_source"], row["campaign_medium"], row["campaign_name"],
            row["referrer_class"]) == ("newsletter", "email", "weekly", "email")
    sent = _lake_row(spark, page={"url": url, "referrer": None},
                     campaign={"source": "google", "medium": "cpc", "name": "sale"})
    assert (sent["campaign_source"], sent["referrer_class"]) == ("google", "paid")  # as sent wins


def test_the_simulators_crawlers_are_the_bots_the_ingest_finds():
    users = build_population(20_000, seed=3)
    bots = [user for user in users if describe(user.device["user_agent"]).is_bot]
    assert {user.device["user_agent"] for user in bots} == {agent for *_, agent, _ in CRAWLERS}
    assert abs(len(bots) / len(users) - CRAWLER_SHARE) < 0.005


def _rows(spark, rows: list[tuple]):
    return spark.createDataFrame(
        [(datetime(2026, 3, 2).date(), user, event_id, ts, is_bot, reason)
         for user, event_id, ts, is_bot, reason in rows],
        "event_date date, user_id string, event_id string, event_ts timestamp, is_bot boolean, "
        "bot_reason string")


def test_users_faster_than_a_person_are_flagged_by_event_rate(spark):
    second = datetime(2026, 3, 2, 10, 0, 0)
    rows = ([("script", f"s{i}", second.replace(microsecond=i * 50_000), False, None) for i in range(11)]
            + [("person", f"p{i}", second.replace(microsecond=i * 90_000), False, None) for i in range(10)]
            + [("crawler", "c0", second, True, "user_agent")])
    frame = _rows(spark, rows)
    # A re-delivered copy of one of person's events is not an eleventh event.
    source = frame.unionByName(_rows(spark, [("person", "p0", second, False, None)]))
    flagged = {(r.user_id, r.is_bot, r.bot_reason)
               for r in flag_fast_users(frame, source, max_events_per_second=10).collect()}
    assert flagged == {("script", True, "event_rate"), ("person", False, None),
                       ("crawler", True, "user_agent")}


def test_analytics_count_people_unless_told_to_include_bots(spark):
    frame = _rows(spark, [("a", "e1", datetime(2026, 3, 2), False, None),
                          ("b", "e2", datetime(2026, 3, 2), True, "user_agent"),
                          ("c", "e3", datetime(2026, 3, 2), None, None)])  # written before enrichment
    assert sorted(r.user_id for r in analytics_rows(frame).collect()) == ["a", "c"]
    assert analytics_rows(frame, include_bots=True).count() == 3
    assert analytics_rows(frame.drop("is_bot")).count() == 3  # a lake from before the enrichment
