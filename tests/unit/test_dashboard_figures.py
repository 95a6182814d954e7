"""The dashboard's figures from query results: anomalies sit on the traffic line at their window,
empty panels say why they are empty, and the freshness line says how old the data is."""

from datetime import UTC, datetime, timedelta

from dashboard.app import bots_figure, funnel_figure, traffic_figure
from dashboard.queries import Freshness

T0 = datetime(2026, 5, 4, 14, 0, tzinfo=UTC)
WINDOWS = [(T0 + timedelta(minutes=5 * n), events) for n, events in enumerate((40, 160, 45, 0))]


def _anomaly(minutes: int, direction: str, segment: str = "all") -> dict:
    start = (T0 + timedelta(minutes=minutes)).replace(tzinfo=None).isoformat()
    return {"window_start": start, "direction": direction, "segment": segment, "sessions": 1,
            "baseline": 10.0, "score": 6.0}


def test_each_anomaly_is_marked_on_the_traffic_line_at_its_window():
    figure = traffic_figure(WINDOWS, [_anomaly(5, "spike"), _anomaly(5, "spike", "US"),
                                      _anomaly(15, "drop")])
    line, spikes, drops = figure.data
    assert list(line.y) == [40, 160, 45, 0]
    assert list(spikes.y) == [160, 160] and list(drops.y) == [0]
    assert "US: 1 sessions, baseline 10.0" in spikes.text[1]
    assert figure.layout.title.text == "Traffic per 5 minutes: 3 anomalous window(s)"


def test_final_only_panels_say_why_they_are_empty():
    assert "once the day is final" in funnel_figure([]).layout.annotations[0].text
    assert "once the day is final" in bots_figure({"visitors": {}, "bots": {}}).layout.annotations[0].text
    share = bots_figure({"visitors": {"person": 970, "bot": 30}, "bots": {"Googlebot": 30}})
    assert share.layout.title.text == "Bots: 3.0% of 1,000 events (by browser)"


def test_freshness_says_how_old_the_newest_window_is():
    fresh = Freshness(T0, "2026-05-03")
    assert fresh.describe(T0 + timedelta(seconds=42)) == \
        "Data as of 2026-05-04 14:00 UTC (42 s ago); final through 2026-05-03."
    assert "(3 min ago); no day final yet" in Freshness(T0, None).describe(T0 + timedelta(minutes=3))
    assert Freshness(None, None).describe() == "No traffic served yet."


def test_an_unreachable_elasticsearch_is_said_on_the_page_not_raised():
    from elasticsearch import Elasticsearch

    from dashboard.app import create_app
    from dashboard.queries import Indices
    from tests.helpers import free_port

    address = f"http://127.0.0.1:{free_port()}"
    app = create_app(Indices(Elasticsearch(address, max_retries=0, request_timeout=2)))
    days = app.callback_map["..day.options...day.value...freshness.children.."]["callback"]
    options, shown, message = days.__wrapped__(0, None)
    assert (options, shown) == ([], None) and message.startswith(f"Elasticsearch at {address}")
