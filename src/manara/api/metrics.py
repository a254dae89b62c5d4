"""Prometheus metrics of the API process (a registry of its own, so tests can build many apps)."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import func, select
from sqlalchemy.engine import Engine

from manara.meta.db import session_scope
from manara.meta.models import Pipeline, PipelineRun, Tenant


class PipelineCollector(Collector):
    """Pipeline metrics read from the run history at scrape time: runs started by the CLI, the API
    and the scheduler (in any process) all count, and nothing is lost on a restart."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def collect(self) -> Iterator[Metric]:
        runs = CounterMetricFamily("manara_pipeline_runs", "pipeline runs by outcome",
                                   labels=["tenant", "pipeline", "status"])  # fmt: skip
        rows = CounterMetricFamily("manara_pipeline_rows", "rows read, loaded and quarantined by pipelines",
                                   labels=["tenant", "pipeline", "kind"])  # fmt: skip
        read = CounterMetricFamily(
            "manara_pipeline_bytes", "bytes read by pipelines", labels=["tenant", "pipeline"]
        )
        paused = GaugeMetricFamily("manara_pipeline_paused", "1 while a pipeline waits for a steward",
                                   labels=["tenant", "pipeline"])  # fmt: skip
        with session_scope(self.engine) as s:
            for tenant, name, status, n in s.execute(
                select(Tenant.slug, Pipeline.name, PipelineRun.status, func.count())
                .join(Pipeline, Pipeline.id == PipelineRun.pipeline_id)
                .join(Tenant, Tenant.id == Pipeline.tenant_id)
                .group_by(Tenant.slug, Pipeline.name, PipelineRun.status)
            ):
                runs.add_metric([tenant, name, status], n)
            for tenant, name, rows_in, loaded, quarantined, bytes_in in s.execute(
                select(Tenant.slug, Pipeline.name, func.sum(PipelineRun.rows_in), func.sum(PipelineRun.rows_loaded),
                       func.sum(PipelineRun.rows_quarantined), func.sum(PipelineRun.bytes_in))
                .join(Pipeline, Pipeline.id == PipelineRun.pipeline_id)
                .join(Tenant, Tenant.id == Pipeline.tenant_id)
                .group_by(Tenant.slug, Pipeline.name)
            ):  # fmt: skip
                for kind, value in (("in", rows_in), ("loaded", loaded), ("quarantined", quarantined)):
                    rows.add_metric([tenant, name, kind], int(value or 0))
                read.add_metric([tenant, name], int(bytes_in or 0))
            for tenant, name, reason in s.execute(
                select(Tenant.slug, Pipeline.name, Pipeline.paused).join(
                    Tenant, Tenant.id == Pipeline.tenant_id
                )
            ):
                paused.add_metric([tenant, name], 1 if reason else 0)
        yield from (runs, rows, read, paused)


class ApiMetrics:
    def __init__(self, engine: Engine | None = None) -> None:
        self.registry = CollectorRegistry()
        if engine is not None:
            self.registry.register(PipelineCollector(engine))
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
