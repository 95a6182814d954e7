"""Enrichment, once per event in the ingest: user agent, bots, IP country, referrer and campaign.

`columns` gives the lake's enriched columns as expressions over a parsed event. The user agent and
IP lookups are Python libraries, run as vectorized UDFs that parse each distinct value of a batch
once (a site has few distinct agents, and a user keeps one address); the referrer rules are Spark
expressions. See README "Enrichment" for the fields and what they cost.
"""

from __future__ import annotations

import pandas as pd
from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T

from .geo import country_of
from .referrers import UTM_PARAMETERS, referrer_class, utm
from .user_agents import UserAgent, describe

BOT_BY_USER_AGENT = "user_agent"  # bot_reason of an agent on the crawler lists
ENRICHED_COLUMNS = ["browser_family", "browser_version", "os_family", "os_version", "device_class",
                    "is_bot", "bot_reason", "ip_country", "referrer_class"]
# Types, not DDL text: a DDL string is parsed by a live session, and this module loads before one.
COLUMN_TYPES = {name: T.BooleanType() if name == "is_bot" else T.StringType() for name in ENRICHED_COLUMNS}
USER_AGENT_SCHEMA = T.StructType([T.StructField(name, COLUMN_TYPES[name]) for name in UserAgent._fields])


def describe_agents(agents: pd.Series) -> pd.DataFrame:
    """A batch of user agents -> their fields; each distinct agent is described once."""
    codes, described = _per_distinct(agents, describe)
    return pd.DataFrame(described, columns=list(UserAgent._fields)).iloc[codes].reset_index(drop=True)


def locate_addresses(addresses: pd.Series) -> pd.Series:
    """A batch of IP addresses -> their countries; each distinct address is looked up once."""
    codes, countries = _per_distinct(addresses, country_of)
    return pd.Series(countries, dtype="object").iloc[codes].reset_index(drop=True)


def _per_distinct(values: pd.Series, lookup) -> tuple:
    """Each row's index into the distinct values, and `lookup` of each distinct value (None for a
    missing one)."""
    codes, distinct = pd.factorize(values, use_na_sentinel=False)
    return codes, [lookup(v if isinstance(v, str) else None) for v in distinct]


def with_enriched_columns(rows: DataFrame) -> DataFrame:
    """`rows` with every enriched column, as typed nulls where a lake written before the
    enrichment lacks one, so old and new rows union and compact alike."""
    missing = {name: column for name, column in null_columns().items() if name not in rows.columns}
    return rows.withColumns(missing) if missing else rows


def null_columns() -> dict[str, Column]:
    """The enriched columns as typed nulls (a function: a column needs a live session to exist)."""
    return {name: F.lit(None).cast(COLUMN_TYPES[name]) for name in ENRICHED_COLUMNS}


def campaign(field: Column, url: Column, lake_column: str) -> Column:
    """A campaign field as the event sent it, else from the url's UTM parameter."""
    return F.coalesce(field, utm(url, UTM_PARAMETERS[lake_column]))


def columns(user_agent: Column, ip: Column, url: Column, referrer: Column, medium: Column
            ) -> dict[str, Column]:
    """The enriched lake columns; `ip` is the address as sent, before anonymization."""
    # UDFs made per call, not at import: pyspark builds the in-process or the Connect kind
    # depending on the session in use when they are made.
    agent = F.pandas_udf(describe_agents, USER_AGENT_SCHEMA)(user_agent)
    enriched = {name: agent[name] for name in UserAgent._fields}
    enriched["bot_reason"] = F.when(agent["is_bot"], F.lit(BOT_BY_USER_AGENT))
    enriched["ip_country"] = F.pandas_udf(locate_addresses, T.StringType())(ip)
    enriched["referrer_class"] = referrer_class(referrer, url, medium)
    return {name: enriched[name] for name in ENRICHED_COLUMNS}
