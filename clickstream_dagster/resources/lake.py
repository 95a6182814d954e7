import dagster as dg

from spark import lake_layout
from spark.analytics.daily_tables import DEFAULT_MAX_EVENTS_PER_SECOND


class LakeResource(dg.ConfigurableResource):
    """Where the lake lives: a local folder or an s3a:// URI; every path comes from lake_layout."""

    root: str
    # How IP addresses are stored: "truncate" (their /24 or /48 network) or "off" (as sent).
    ip_anonymization: str
    # Bots stay in the lake (`is_bot`, `bot_reason`); the analytics and indices count people only
    # unless this is on. A user with more events than `bot_events_per_second` in one second is a bot.
    include_bots: bool = False
    bot_events_per_second: int = DEFAULT_MAX_EVENTS_PER_SECOND

    @property
    def landing(self) -> str:
        return lake_layout.landing(self.root)

    @property
    def raw(self) -> str:
        return lake_layout.raw(self.root)

    @property
    def bad_rows(self) -> str:
        return lake_layout.bad_rows(self.root)

    @property
    def ingest_checkpoint(self) -> str:
        return lake_layout.ingest_checkpoint(self.root)

    def analytics(self, table: str) -> str:
        return lake_layout.analytics(self.root, table)
