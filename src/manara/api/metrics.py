"""Prometheus metrics of the API process (a registry of its own, so tests can build many apps)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram


class ApiMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "manara_http_requests_total",
            "HTTP requests",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "manara_http_request_seconds", "HTTP request latency", ["method", "route"], registry=self.registry
        )
        self.ingested_rows = Counter(
            "manara_ingested_rows_total", "rows committed by ingests", ["tenant"], registry=self.registry
        )
        self.sql_queries = Counter(
            "manara_sql_queries_total",
            "SQL queries by outcome",
            ["tenant", "outcome"],
            registry=self.registry,
        )
