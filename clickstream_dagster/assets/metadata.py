"""What every asset tells the Dagster UI, built one way: owners, tags, code versions, column
schemas and lineage, and the metadata of a materialized day."""

from __future__ import annotations

import hashlib
import inspect
from collections.abc import Mapping

import dagster as dg

OWNERS = ["team:clickstream"]


def asset_tags(layer: str) -> dict[str, str]:
    """Tags to filter the graph by: the pipeline and its layer (ingest, live, lake, analytics,
    serving)."""
    return {"pipeline": "clickstream", "layer": layer}


def code_version(*code: object) -> str:
    """A hash of the source of the given functions, classes or modules: the version moves when
    that code does, so nobody has to remember to bump it. Helpers beyond them are not hashed."""
    digest = hashlib.sha256()
    for item in code:
        digest.update(inspect.getsource(item).encode())
    return digest.hexdigest()[:12]


def table_schema(columns: Mapping[str, str]) -> dg.TableSchema:
    """`dagster/column_schema` from (name, type) pairs of a Delta table or an index mapping."""
    return dg.TableSchema(columns=[dg.TableColumn(name, kind) for name, kind in columns.items()])


def column_lineage(sources: Mapping[str, list[str]], upstream: dg.AssetKey) -> dg.TableColumnLineage:
    """`dagster/column_lineage`: each output column from the upstream columns it is computed from."""
    return dg.TableColumnLineage(deps_by_column={
        column: [dg.TableColumnDep(asset_key=upstream, column_name=source) for source in inputs]
        for column, inputs in sources.items()})


def days_result(written: dict, path: str, lineage: dg.TableColumnLineage | None = None
                ) -> dg.MaterializeResult:
    """Metadata shared by every daily lake asset: rows per day, files, the columns written, and the
    Delta version that holds them (time travel: `versionAsOf` reads exactly what this
    materialization wrote)."""
    rows_per_day = written["rows_per_day"]
    metadata = {
        "dagster/row_count": sum(rows_per_day.values()),
        "dagster/column_schema": table_schema(written["columns"]),
        "rows_per_day": dg.MetadataValue.json(rows_per_day),
        # A day that lost all its rows is emptied on purpose; it is named, never silent.
        "empty_days": dg.MetadataValue.json([d for d, r in rows_per_day.items() if not r]),
        "files": written["files"],
        "avg_file_mib": round(written["bytes"] / max(written["files"], 1) / 1024**2, 2),
        "delta_version": written["version"],
        "path": dg.MetadataValue.path(path),
    }
    if lineage is not None:
        metadata["dagster/column_lineage"] = lineage
    return dg.MaterializeResult(metadata=metadata)
