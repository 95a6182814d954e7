"""The dashboard page: one day's traffic with its anomalies, top urls and countries, devices and
browsers, the funnel and the share of bots, read from Elasticsearch and refreshed every
`refresh_s` seconds. `make run` serves it on 127.0.0.1:8050; `clickstream dashboard` alone too."""

from __future__ import annotations

from dash import Dash, Input, Output, State, dcc, html
from elasticsearch import ApiError, TransportError
from plotly import graph_objects as go

from . import DEFAULT_PORT, queries
from .queries import Indices

REFRESH_S = 30
GRAPHS = ["traffic", "top-urls", "top-countries", "devices", "browsers", "funnel", "bots"]
SPIKE, DROP = "#d62728", "#1f77b4"


def create_app(indices: Indices, refresh_s: int = REFRESH_S) -> Dash:
    app = Dash(__name__, title="Clickstream", update_title=None)
    app.layout = html.Div(style={"fontFamily": "sans-serif", "margin": "0 24px"}, children=[
        html.H2("Clickstream"),
        html.Div(style={"display": "flex", "gap": "16px", "alignItems": "center"}, children=[
            dcc.Dropdown(id="day", clearable=False, style={"width": "180px"}),
            html.Span(id="freshness"),
        ]),
        _row("traffic"),
        _row("top-urls", "top-countries"),
        _row("devices", "browsers"),
        _row("funnel", "bots"),
        dcc.Interval(id="tick", interval=refresh_s * 1000),
    ])

    @app.callback(Output("day", "options"), Output("day", "value"), Output("freshness", "children"),
                  Input("tick", "n_intervals"), State("day", "value"))
    def _days(_, chosen):
        try:
            days = queries.served_days(indices)
            fresh = queries.freshness(indices).describe()
        except (ApiError, TransportError) as exc:  # the page stays up and says what is wrong
            return [], None, f"Elasticsearch at {_address(indices)} cannot be read: {exc}"
        # The day on show stays while it is served; the first load shows the newest.
        shown = chosen if chosen in days else (days[0] if days else None)
        return days, shown, fresh

    @app.callback(*[Output(name, "figure") for name in GRAPHS], Input("day", "value"),
                  Input("tick", "n_intervals"))
    def _figures(day, _):
        if not day:
            return [_empty(name, "no traffic served yet") for name in GRAPHS]
        try:
            return figures(indices, day)
        except (ApiError, TransportError) as exc:
            return [_empty(name, f"Elasticsearch cannot be read: {exc}") for name in GRAPHS]

    return app


def figures(indices: Indices, day: str) -> list[go.Figure]:
    """Every panel's figure for one day, in GRAPHS order."""
    return [
        traffic_figure(queries.traffic(indices, day), queries.anomalies(indices, day)),
        _bars("Top urls (events)", queries.top_events(indices, day, "url")),
        _bars("Top countries (events)", queries.top_events(indices, day, "country")),
        _bars("Sessions by device class", queries.sessions_by(indices, day, "device_class")),
        _bars("Sessions by browser", queries.sessions_by(indices, day, "browser")),
        funnel_figure(queries.funnel(indices, day)),
        bots_figure(queries.bot_share(indices, day)),
    ]


def traffic_figure(windows: list, found: list[dict]) -> go.Figure:
    """Events per 5 minutes, with each anomalous window (overall or a country's) marked on it."""
    figure = go.Figure(go.Scatter(x=[w for w, _ in windows], y=[n for _, n in windows],
                                  mode="lines", name="events", line={"color": "#444"}))
    events_at = {w.replace(tzinfo=None).isoformat(): n for w, n in windows}
    for direction, colour in (("spike", SPIKE), ("drop", DROP)):
        marked = [a for a in found if a["direction"] == direction]
        symbol = "triangle-up" if direction == "spike" else "triangle-down"
        figure.add_trace(go.Scatter(
            x=[a["window_start"] for a in marked],
            y=[events_at.get(a["window_start"][:19], 0) for a in marked],
            mode="markers", name=f"{direction}s",
            marker={"color": colour, "size": 11, "symbol": symbol},
            text=[f"{a['segment']}: {a['sessions']} sessions, baseline {a['baseline']}, "
                  f"score {a['score']}" for a in marked], hoverinfo="text+x"))
    title = f"Traffic per 5 minutes: {len(found)} anomalous window(s)" if found else \
        "Traffic per 5 minutes: no anomaly (an open day: none so far)"
    return figure.update_layout(title=title, height=340, margin=_MARGIN)


def funnel_figure(steps: list[dict]) -> go.Figure:
    if not steps:
        return _empty("funnel", "the funnel of a day is served once the day is final")
    figure = go.Figure(go.Funnel(y=[s["step"] for s in steps], x=[s["sessions"] for s in steps],
                                 textinfo="value+percent initial"))
    return figure.update_layout(title="Funnel (sessions reaching each step, in order)",
                                height=340, margin=_MARGIN)


def bots_figure(share: dict[str, dict[str, int]]) -> go.Figure:
    visitors = share["visitors"]
    if not visitors:
        return _empty("bots", "the share of bots of a day is served once the day is final")
    total = sum(visitors.values())
    bots = visitors.get("bot", 0)
    figure = go.Figure(go.Bar(x=list(share["bots"]), y=list(share["bots"].values()),
                              marker={"color": "#8c564b"}))
    return figure.update_layout(title=f"Bots: {bots / total:.1%} of {total:,} events (by browser)",
                                height=340, margin=_MARGIN)


_MARGIN = {"l": 50, "r": 20, "t": 50, "b": 40}


def _bars(title: str, counts: list[tuple[str, int]]) -> go.Figure:
    figure = go.Figure(go.Bar(x=[n for _, n in counts][::-1], y=[k for k, _ in counts][::-1],
                              orientation="h"))
    return figure.update_layout(title=title, height=340, margin={**_MARGIN, "l": 160})


def _empty(name: str, message: str) -> go.Figure:
    return go.Figure().update_layout(
        title=name.replace("-", " ").capitalize(), height=340, margin=_MARGIN,
        xaxis={"visible": False}, yaxis={"visible": False},
        annotations=[{"text": message, "showarrow": False, "font": {"size": 14}}])


def _address(indices: Indices) -> str:
    return ", ".join(str(node.base_url) for node in indices.client.transport.node_pool.all())


def _row(*names: str) -> html.Div:
    return html.Div(style={"display": "flex"}, children=[
        dcc.Graph(id=name, style={"flex": "1"}, config={"displaylogo": False}) for name in names])


def serve(indices: Indices, host: str = "127.0.0.1", port: int = DEFAULT_PORT) -> None:
    """Serve the page until interrupted (Flask's server: one user, one machine; behind a proxy,
    serve `create_app(...).server` with any WSGI server)."""
    create_app(indices).run(host=host, port=port, debug=False)
