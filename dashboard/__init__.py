"""The dashboard page: the served indices as charts, for users without Kibana
(docs/architecture.md, "Dashboard"). Imports only what its callers need; the page itself is dashboard.app."""

DEFAULT_PORT = 8050
