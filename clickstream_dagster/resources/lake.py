import dagster as dg


class LakeResource(dg.ConfigurableResource):
    """Where the lake lives: a local folder or an s3a:// URI; every path is derived from it."""

    root: str

    def path(self, *parts: str) -> str:
        return "/".join([self.root.rstrip("/"), *parts])

    @property
    def landing(self) -> str:
        return self.path("landing", "clickstream")

    @property
    def raw(self) -> str:
        return self.path("raw", "clickstream")

    @property
    def bad_rows(self) -> str:
        return self.path("landing", "bad_rows")

