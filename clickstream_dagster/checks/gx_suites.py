"""Load the repository's expectation suites and run them on Spark DataFrames with Great Expectations.

A single key's uniqueness is written as "proportion of unique values between 1 and 1": GX computes
that with one distinct count, where expect_column_values_to_be_unique runs a window over the whole
table.
"""

from __future__ import annotations

import json
import threading
from collections import defaultdict
from dataclasses import dataclass, field
from functools import cache
from importlib import resources

from pyspark.sql import DataFrame

SUITES = resources.files(__package__) / "suites"
# Up to this many rows a frame is validated in-process with GX's pandas engine: each GX metric on
# Spark is a query of its own, which costs a small frame more than its transfer. Larger frames stay
# on Spark, where the data is.
LOCAL_ROWS = 100_000
# GX keeps the frame under validation in its shared context, keyed by the asset's one batch id, so
# two validations at once in one process (threads of an in-process run) read each other's frames.
_ONE_AT_A_TIME = threading.Lock()


class SuiteNotEvaluated(RuntimeError):
    """GX could not compute an expectation (a missing column, a Spark error): the data was not
    judged, so this is an error to fix or retry, never a verdict on the data."""


@dataclass
class CheckOutcome:
    """One property (an asset check) of one suite: every expectation it groups, with GX's results."""

    passed: bool = True
    observed: list[dict] = field(default_factory=list)


def suite_definition(name: str) -> dict:
    return json.loads(SUITES.joinpath(f"{name}.json").read_text())


def check_names(suite: str) -> list[str]:
    """The properties a suite checks, in file order; each becomes one Dagster asset check."""
    names = [e["meta"]["check"] for e in suite_definition(suite)["expectations"]]
    return list(dict.fromkeys(names))


@cache
def _context():
    # Imported on first validation, not with the definitions: Great Expectations is slow to
    # import, and every run process, sensor tick and code-server load imports the definitions.
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    context = gx.get_context(mode="ephemeral")
    # Per-metric progress bars flood run logs (one bar per check, per day); Dagster shows progress.
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    # GX would cache each whole frame, every column deserialized, before its first metric; its
    # metrics read only the columns they test, straight from Parquet.
    spark = context.data_sources.add_spark(name="lake", persist=False)
    local = context.data_sources.add_pandas(name="local")
    return context, {
        engine: source.add_dataframe_asset(name="frames").add_batch_definition_whole_dataframe("whole")
        for engine, source in (("spark", spark), ("pandas", local))}


@cache
def _validation(suite: str, engine: str):
    import great_expectations as gx
    import great_expectations.expectations as gxe

    context, batches = _context()
    spec = suite_definition(suite)
    expectations = [
        getattr(gxe, "".join(part.title() for part in e["type"].split("_")))(**e["kwargs"],
                                                                            meta=e["meta"])
        for e in spec["expectations"]
    ]
    registered = context.suites.add(gx.ExpectationSuite(name=f"{spec['name']}-{engine}",
                                                        expectations=expectations))
    return context.validation_definitions.add(
        gx.ValidationDefinition(name=f"{suite}-{engine}-validation", data=batches[engine],
                                suite=registered))


def validate(suite: str, frame: DataFrame, parameters: dict) -> dict[str, CheckOutcome]:
    """Run the suite on `frame`; results grouped by property, with GX's observed values."""
    local = frame.count() <= LOCAL_ROWS
    data = frame.toPandas() if local else frame
    with _ONE_AT_A_TIME:
        result = _validation(suite, "pandas" if local else "spark").run(
            batch_parameters={"dataframe": data}, expectation_parameters=parameters)
    # GX reports an exception raised while computing a metric as a failed expectation, which
    # would block the pipeline as if the data were bad, with the cause dropped from the metadata.
    errors = [f"{item.expectation_config.type}"
              f"({item.expectation_config.kwargs.get('column', 'table')}): {message}"
              for item in result.results if not item.success for message in _raised(item)]
    if errors:
        raise SuiteNotEvaluated(f"The {suite} suite could not be evaluated, so the data was not "
                                f"judged: {'; '.join(errors)}")
    outcomes: dict[str, CheckOutcome] = defaultdict(CheckOutcome)
    for item in result.results:
        config = item.expectation_config
        outcome = outcomes[config.meta["check"]]
        outcome.passed &= bool(item.success)
        observed = {k: v for k, v in item.result.items()
                    if k in ("observed_value", "unexpected_count", "unexpected_percent",
                             "partial_unexpected_list", "element_count")}
        thresholds = {k: parameters.get(v["$PARAMETER"], v) if isinstance(v, dict) else v
                      for k, v in config.kwargs.items() if k not in ("batch_id",)}
        # Thresholds and samples may hold datetimes; metadata must be plain JSON.
        outcome.observed.append(json.loads(json.dumps(
            {"expectation": config.type, **thresholds, **observed, "success": bool(item.success)},
            default=str)))
    return dict(outcomes)


def _raised(item) -> list[str]:
    """Messages of the exceptions GX caught for one expectation; its `exception_info` is one entry,
    or one per metric."""
    info = item.exception_info or {}
    entries = [info] if "raised_exception" in info else list(info.values())
    messages = [(str(entry.get("exception_message") or "").strip() or "unknown error").splitlines()[0]
                for entry in entries if isinstance(entry, dict) and entry.get("raised_exception")]
    return list(dict.fromkeys(messages))
