"""Where everything lives under the lake root: the one definition every job and asset uses."""


def _join(root: str, *parts: str) -> str:
    return "/".join([root.rstrip("/"), *parts])


def landing(root: str) -> str:
    return _join(root, "landing", "clickstream")


def bad_rows(root: str) -> str:
    return _join(root, "landing", "bad_rows")


def raw(root: str) -> str:
    return _join(root, "raw", "clickstream")


def analytics(root: str, table: str) -> str:
    return _join(root, "analytics", table)


def ingest_checkpoint(root: str) -> str:
    return _join(root, "_checkpoints", "ingest")


def ingest_log(root: str) -> str:
    return _join(root, "_ingest_log")

