"""Which indexing failures are worth another attempt: the index assets retry only those."""

import pytest

from clickstream_dagster.serving.indices import _rejected


def _failure(status, doc_id: str = "d1") -> dict:
    return {"index": {"_index": "clickstream-url-country-2026.06.01_abc", "_id": doc_id,
                      "status": status, "error": {"reason": "why"}}}


@pytest.mark.parametrize(("statuses", "retryable"), [
    ([400], False),  # a mapping conflict fails the same way every time
    ([429, 429], True),  # overloaded beyond the bulk helper's own retries
    ([503], True),
    ([429, 400], False),  # one refused document is enough to make a retry pointless
    (["N/A"], False),
])
def test_only_overload_and_server_errors_are_retryable(statuses, retryable):
    error = _rejected([_failure(s, f"d{i}") for i, s in enumerate(statuses)], 10, "idx", "documents")
    assert error.retryable is retryable
    assert f"{len(statuses)} of 10 documents were rejected by idx" in str(error)
