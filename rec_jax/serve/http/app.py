"""The ASGI app: Starlette routes over the batcher and the decision log.

    app = make_app(ServiceConfig(model_dir="runs/ml100k"))       # or make_app(cfg, loaded=(model, params, version))
    uvicorn.run(app, host="127.0.0.1", port=8080)               # what ``python -m rec_jax.serve.http`` does

Routes: ``POST /rank``, ``POST /reward``, ``GET /healthz``, ``GET /metrics``
(bodies in :mod:`rec_jax.serve.http.schema`). Every error is a JSON object
``{"error": "<field>: <what is wrong>"}`` with a 4xx (or 429 / 503 / 500) status;
a refused request writes nothing to the log and changes no user.

The lifespan handler loads the model, opens the log, restores each known user's
history from it (a restarted service continues where the killed one stopped),
compiles every bucket, and only then lets the server accept connections.
"""
from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import gc
import hmac
import os
import sys
import time
from pathlib import Path

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from rec_jax.serve.http.batcher import Batcher, BatcherConfig, QueueFull
from rec_jax.serve.http.decision_log import DecisionLog, last_histories, read_meta
from rec_jax.serve.http.metrics import ServiceMetrics
from rec_jax.serve.http.publish import latest_version, load_head
from rec_jax.serve.http.ranker import Ranker, RankerConfig
from rec_jax.serve.http.schema import BadRequest, parse_json, parse_rank, parse_reward

TOKEN_ENV = "REC_JAX_SERVE_TOKEN"
REWARD_STATUS = {"unknown": 404, "expired": 410, "length": 422, "conflict": 409}


@dataclasses.dataclass(frozen=True)
class ServiceConfig:
    """The decision service: rank and reward over HTTP, every decision in a durable log."""

    model_dir: str = ""  # a train_sequential.py run folder (SASRec or GRU4Rec)
    policy: tuple[str, ...] = ("epsilon_greedy",)  # served policies: greedy | epsilon_greedy | softmax (first = default)
    db: str = ""  # the decision log (SQLite); default: <model-dir>/decisions.db
    host: str = "127.0.0.1"  # bind address (loopback unless told otherwise)
    port: int = 8080  # TCP port
    token: str = ""  # bearer token required on /rank, /reward, /metrics (default: $REC_JAX_SERVE_TOKEN; empty: none)
    ttl_s: float = 600.0  # a decision's time-to-live: rewards after it are refused
    deadline_ms: float = 100.0  # a rank request not taken into a batch by then is answered 503
    queue_size: int = 1024  # rank requests waiting at most (more: 429 with Retry-After)
    buckets: tuple[int, ...] = (8, 32, 256)  # compiled micro-batch sizes
    max_slate: int = 10  # slates have at most this many slots
    slate_size: int = 10  # default slate size of a request
    capacity: int = 4096  # user states cached on the device
    epsilon: float = 0.1  # epsilon_greedy: per-slot exploration probability
    temperature: float = 1.0  # softmax: temperature on the logits
    max_body_bytes: int = 65536  # larger request bodies are refused (413)
    sync: str = "normal"  # decision log: normal (survives a killed process) | full (fsync: survives power loss)
    publish_dir: str = ""  # where a learner publishes heads (<dir>/published/LATEST); default: --model-dir
    reload_s: float = 1.0  # how often the service looks for a newly published head
    seed: int = 0  # exploration randomness (folded with the start time, so restarts draw afresh)


def _error(status: int, message: str, headers: dict | None = None) -> Response:
    return Response(orjson.dumps({"error": message}), status_code=status, media_type="application/json",
                    headers=headers)


def _json(body: dict, status: int = 200) -> Response:
    return Response(orjson.dumps(body), status_code=status, media_type="application/json")


def load_model(model_dir: str | Path):
    """(model, params, version) of a run folder; version = folder name + params digest."""
    import hashlib

    import jax
    import numpy as np

    from rec_jax.train.load import load_trained

    model, params, _ = load_trained(model_dir)
    digest = hashlib.sha256()
    for leaf in jax.tree.leaves(params):
        digest.update(np.asarray(leaf).tobytes())
    return model, params, f"{Path(model_dir).resolve().name}-{digest.hexdigest()[:12]}"


class Service:
    """What the routes share, built by the lifespan handler."""

    def __init__(self, cfg: ServiceConfig, loaded=None):
        self.cfg = cfg
        self.loaded = loaded
        self.token = cfg.token or os.environ.get(TOKEN_ENV, "")
        self.ready = False

    def start(self, loop) -> None:
        import jax

        cfg = self.cfg
        model, params, version = self.loaded or load_model(cfg.model_dir)
        db = Path(cfg.db or Path(cfg.model_dir) / "decisions.db")
        previous = read_meta(db, "model_version")
        histories = last_histories(db)
        self.log = DecisionLog(db, sync=cfg.sync)
        key = jax.random.fold_in(jax.random.key(cfg.seed), time.time_ns() % (1 << 31))
        rcfg = RankerConfig(buckets=cfg.buckets, max_slate=cfg.max_slate, capacity=cfg.capacity, policies=cfg.policy,
                            epsilon=cfg.epsilon, temperature=cfg.temperature)
        self.ranker = Ranker(model, params, rcfg, key, model_version=version, histories=histories)
        self.publish_dir = cfg.publish_dir or cfg.model_dir
        self.published: str | None = None
        self.refused: set[str] = set()
        self.reload()  # a restarted service serves the last published head at once
        self.ranker.warmup()
        self.log.set_meta("model_version", self.ranker.model_version).result()
        self.metrics = ServiceMetrics(self.ranker.model_version, queue_depth=lambda: self.batcher.depth,
                                      log_counts=lambda: (self.log.commits, self.log.jobs_committed),
                                      rebuilt=lambda: self.ranker.rebuilt_rows)
        self.batcher = Batcher(self.ranker, self.log, loop, BatcherConfig(queue_size=cfg.queue_size, ttl_s=cfg.ttl_s),
                               self.metrics, reload=self.reload if self.publish_dir else None, reload_s=cfg.reload_s)
        self.previous_version = previous
        self.restored_users = len(histories)
        # The model, JAX's caches and the compiled steps are some 230,000 objects that live as
        # long as the service: out of the collector's reach, a full collection does not traverse
        # them (in the load test's client, ~140,000 such objects made 83-108 ms pauses).
        gc.collect()
        gc.freeze()
        self.ready = True

    def reload(self) -> None:
        """Swap in the head a learner published last (rec_jax.serve.http.publish), if new.

        A version that cannot be loaded (missing, wrong shapes, non-finite) is refused
        with one line on stderr and the service keeps serving the version in force."""
        if not self.publish_dir:
            return
        version = latest_version(self.publish_dir)
        if version is None or version == self.published or version in self.refused:
            return
        try:
            head = load_head(self.publish_dir, version, self.ranker.head)
        except (OSError, ValueError, KeyError) as err:
            self.refused.add(version)
            print(f"rec_jax service: published head {version} refused ({err}); still serving "
                  f"{self.ranker.model_version}", file=sys.stderr, flush=True)
            return
        self.ranker.swap_head(head, version)
        self.published = version
        if self.ready:
            self.metrics.set_model(self.ranker.model_version)
            self.log.set_meta("model_version", self.ranker.model_version)

    def stop(self) -> None:
        if self.ready:
            self.batcher.stop()
            self.log.close()
            self.ready = False

    def authorised_header(self, given: bytes) -> bool:
        """Whether the Authorization header value ``given`` carries the token (constant time)."""
        if not self.token:
            return True
        return hmac.compare_digest(given, f"Bearer {self.token}".encode())


def make_app(cfg: ServiceConfig, loaded=None, *, on_ready=None) -> "ServiceApp":
    """The app. ``loaded`` = (model, params, version) instead of loading ``cfg.model_dir``;
    ``on_ready(service)`` runs once the model is compiled (the CLI prints a line)."""
    if not cfg.model_dir and loaded is None:
        raise ValueError("--model-dir: expected a train_sequential.py run folder")
    if not cfg.db and not cfg.model_dir:
        raise ValueError("--db: expected a path for the decision log (no --model-dir to put it in)")
    if cfg.slate_size > cfg.max_slate:
        raise ValueError(f"--slate-size {cfg.slate_size} exceeds --max-slate {cfg.max_slate}")
    service = Service(cfg, loaded)

    @contextlib.asynccontextmanager
    async def lifespan(app):
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, service.start, loop)
        app.state.service = service
        if on_ready is not None:
            on_ready(service)
        try:
            yield
        finally:
            await loop.run_in_executor(None, service.stop)

    unauthorised = (401, orjson.dumps({"error": "authorization: expected the header 'Authorization: Bearer "
                                                 "<token>'"}), [(b"www-authenticate", b"Bearer")])

    async def rank(body: bytes):
        obj = parse_json(body)
        parsed = parse_rank(obj, num_items=service.ranker.num_items, max_slate=cfg.max_slate,
                            default_slate=cfg.slate_size, policies=cfg.policy)
        try:
            future = service.batcher.submit(parsed, time.monotonic() + cfg.deadline_ms / 1e3)
        except QueueFull as err:
            return 429, orjson.dumps({"error": str(err)}), [(b"retry-after", b"1")]
        answer = await future
        return answer.status, orjson.dumps(answer.body), []

    async def reward(body: bytes):
        decision_id, rewards = parse_reward(parse_json(body), max_slate=cfg.max_slate)
        outcome = await service.log.log_reward(decision_id, rewards, loop=asyncio.get_running_loop())
        if outcome.status in REWARD_STATUS:
            return REWARD_STATUS[outcome.status], orjson.dumps({"error": outcome.message}), []
        if outcome.status == "ok":
            service.batcher.add_clicks(outcome.user, outcome.clicked)
        return 200, orjson.dumps({"decision_id": decision_id, "status": outcome.status}), []

    hot = {"/rank": rank, "/reward": reward}

    async def serve_hot(scope, receive, send) -> None:
        """POST /rank and /reward straight on ASGI: the same answers Starlette's routes
        would give, without its per-request middleware layers (measured: most of the
        event loop's time at 1,000 requests/s was spent in them)."""
        start = time.perf_counter()
        path = scope["path"]
        headers = dict(scope["headers"])
        try:
            if not service.authorised_header(headers.get(b"authorization", b"")):
                status, payload, extra = unauthorised
            else:
                declared = headers.get(b"content-length")
                if declared is not None and declared.isdigit() and int(declared) > cfg.max_body_bytes:
                    raise BadRequest(f"body: {int(declared)} bytes, at most {cfg.max_body_bytes} accepted", 413)
                status, payload, extra = await hot[path](await _receive_body(receive, cfg.max_body_bytes))
        except BadRequest as err:
            status, payload, extra = err.status, orjson.dumps({"error": str(err)}), []
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", b"application/json"),
                                (b"content-length", str(len(payload)).encode())] + extra})
        await send({"type": "http.response.body", "body": payload})
        if service.ready:
            service.metrics.request(path[1:], status, time.perf_counter() - start)

    def guarded(endpoint: str, handler, auth: bool = True):
        async def route(request: Request) -> Response:
            start = time.perf_counter()
            if auth and not service.authorised_header(request.headers.get("authorization", "").encode()):
                response = Response(unauthorised[1], 401, media_type="application/json",
                                    headers={"WWW-Authenticate": "Bearer"})
            else:
                response = await handler(request)
            if service.ready:
                service.metrics.request(endpoint, response.status_code, time.perf_counter() - start)
            return response

        return route

    async def healthz(request: Request) -> Response:
        return _json({"status": "ok", "model_version": service.ranker.model_version,
                      "policies": list(cfg.policy), "users": len(service.ranker.user_ids)})

    async def metrics(request: Request) -> Response:
        return Response(service.metrics.render(), media_type=service.metrics.content_type)

    routes = [
        Route("/healthz", guarded("healthz", healthz, auth=False), methods=["GET"]),
        Route("/metrics", guarded("metrics", metrics), methods=["GET"]),
        Route("/rank", _method_not_allowed, methods=["GET", "PUT", "DELETE", "PATCH"]),
        Route("/reward", _method_not_allowed, methods=["GET", "PUT", "DELETE", "PATCH"]),
    ]
    return ServiceApp(Starlette(routes=routes, lifespan=lifespan), serve_hot, hot)


async def _method_not_allowed(request: Request) -> Response:
    return _error(405, f"method: {request.method} {request.url.path} is not served (expected POST)",
                  {"Allow": "POST"})


async def _receive_body(receive, limit: int) -> bytes:
    chunks, size, more = [], 0, True
    while more:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise BadRequest("body: the client disconnected before sending it", 400)
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise BadRequest(f"body: more than {limit} bytes, at most {limit} accepted", 413)
        chunks.append(chunk)
        more = message.get("more_body", False)
    return b"".join(chunks)


class ServiceApp:
    """The ASGI app: POST /rank and /reward on the direct path, everything else
    (lifespan, /healthz, /metrics, errors for other paths and methods) by Starlette."""

    def __init__(self, starlette: Starlette, serve_hot, hot: dict):
        self.starlette, self.serve_hot, self.hot = starlette, serve_hot, hot
        self.state = starlette.state

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST" and scope["path"] in self.hot:
            await self.serve_hot(scope, receive, send)
        else:
            await self.starlette(scope, receive, send)
