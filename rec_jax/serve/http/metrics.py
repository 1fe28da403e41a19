"""``GET /metrics``: the service's Prometheus metrics (prometheus_client, one registry per app).

* ``rec_jax_request_seconds{endpoint}``   histogram of request latency (server side)
* ``rec_jax_requests_total{endpoint,status}``
* ``rec_jax_requests_per_second{endpoint}``  over the last ``RATE_WINDOW_S`` seconds
  (Prometheus' own ``rate()`` over the counter is the better figure when scraping)
* ``rec_jax_micro_batch_size``            histogram of rows per rank step
* ``rec_jax_rank_step_seconds``           histogram of the model step alone
* ``rec_jax_cache_hit_ratio``             user states found in the on-device cache
* ``rec_jax_rebuilt_rows_total``          user states rebuilt from history (misses, long absences)
* ``rec_jax_queue_depth``                 rank requests waiting for a batch
* ``rec_jax_model_info{version}``         1 for the model version in force
* ``rec_jax_log_commits_total``, ``rec_jax_log_jobs_committed_total``  group commits
"""
from __future__ import annotations

import collections
import threading
import time

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

RATE_WINDOW_S = 10.0
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.015, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)


class ServiceMetrics:
    content_type = CONTENT_TYPE_LATEST

    def __init__(self, model_version: str, queue_depth=lambda: 0, log_counts=lambda: (0, 0), rebuilt=lambda: 0):
        self.registry = r = CollectorRegistry()
        self.latency = Histogram("rec_jax_request_seconds", "request latency", ["endpoint"], registry=r,
                                 buckets=LATENCY_BUCKETS)
        self.requests = Counter("rec_jax_requests", "requests answered", ["endpoint", "status"], registry=r)
        self.rate = Gauge("rec_jax_requests_per_second", f"requests/s over the last {RATE_WINDOW_S:g} s",
                          ["endpoint"], registry=r)
        self.batch_size = Histogram("rec_jax_micro_batch_size", "rows per rank step", registry=r,
                                    buckets=BATCH_BUCKETS)
        self.step_s = Histogram("rec_jax_rank_step_seconds", "model step per micro-batch", registry=r,
                                buckets=LATENCY_BUCKETS)
        self.hit_rate = Gauge("rec_jax_cache_hit_ratio", "user states found in the cache", registry=r)
        self.rebuilt = Gauge("rec_jax_rebuilt_rows_total", "user states rebuilt from history", registry=r)
        self.rebuilt.set_function(rebuilt)
        self.queue = Gauge("rec_jax_queue_depth", "rank requests waiting for a batch", registry=r)
        self.queue.set_function(queue_depth)
        self.model = Gauge("rec_jax_model_info", "the model version in force", ["version"], registry=r)
        self.model.labels(version=model_version).set(1)
        self.commits = Gauge("rec_jax_log_commits_total", "decision-log transactions committed", registry=r)
        self.commits.set_function(lambda: log_counts()[0])
        self.jobs = Gauge("rec_jax_log_jobs_committed_total", "decision-log writes committed", registry=r)
        self.jobs.set_function(lambda: log_counts()[1])
        self._recent: dict[str, collections.deque] = collections.defaultdict(collections.deque)
        self._lock = threading.Lock()

    def set_model(self, version: str) -> None:
        self.model.clear()
        self.model.labels(version=version).set(1)

    def request(self, endpoint: str, status: int, seconds: float) -> None:
        self.latency.labels(endpoint=endpoint).observe(seconds)
        self.requests.labels(endpoint=endpoint, status=str(status)).inc()
        now = time.monotonic()
        with self._lock:
            recent = self._recent[endpoint]
            recent.append(now)
            while recent and recent[0] < now - RATE_WINDOW_S:
                recent.popleft()

    def batch(self, rows: int, step_s: float, hit_rate: float) -> None:
        self.batch_size.observe(rows)
        self.step_s.observe(step_s)
        if hit_rate == hit_rate:
            self.hit_rate.set(hit_rate)

    def render(self) -> bytes:
        now = time.monotonic()
        with self._lock:
            for endpoint, recent in self._recent.items():
                while recent and recent[0] < now - RATE_WINDOW_S:
                    recent.popleft()
                self.rate.labels(endpoint=endpoint).set(len(recent) / RATE_WINDOW_S)
        return generate_latest(self.registry)
