"""Enrichment, once per event in the ingest: user agent, bots, IP country, referrer and campaign.

The lookups are plain Python, run by the ingest's Arrow pass (spark/ingest/event_pass.py) once per
distinct value of a batch, with per-worker caches behind them: a site has few distinct agents, and
a user keeps one address. See docs/ingest.md "Enrichment" for the fields and what they cost.
"""

from __future__ import annotations

import pyarrow as pa

from .geo import country_of
from .user_agents import UserAgent, describe

BOT_BY_USER_AGENT = "user_agent"  # bot_reason of an agent on the crawler lists
ENRICHED_COLUMNS = ["browser_family", "browser_version", "os_family", "os_version", "device_class",
                    "is_bot", "bot_reason", "ip_country", "referrer_class"]
ARROW_TYPES = {name: pa.bool_() if name == "is_bot" else pa.string() for name in ENRICHED_COLUMNS}

__all__ = ["ARROW_TYPES", "BOT_BY_USER_AGENT", "ENRICHED_COLUMNS", "UserAgent", "country_of",
           "describe", "with_enriched_columns"]


def with_enriched_columns(rows):
    """`rows` (a DataFrame) with every enriched column, as typed nulls where a lake written before
    the enrichment lacks one, so old and new rows union and compact alike."""
    from pyspark.sql import functions as F

    missing = {name: F.lit(None).cast("boolean" if name == "is_bot" else "string")
               for name in ENRICHED_COLUMNS if name not in rows.columns}
    return rows.withColumns(missing) if missing else rows
