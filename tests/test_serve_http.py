"""The HTTP decision service: rank/reward round trips, exact slates and propensities,
bad input (4xx, nothing logged, service unaffected), bearer token, loopback binding."""
import sqlite3

import jax
import numpy as np
import orjson
import pytest

from rec_jax.models import make_model
from rec_jax.models.sasrec import SASRecConfig
from rec_jax.serve.http.app import ServiceConfig, make_app
from rec_jax.serve.http.decision_log import Decision, last_histories
from rec_jax.serve.http.ranker import Ranker, RankerConfig, RankRequest

pytestmark = pytest.mark.xdist_group("serve_http")  # one worker compiles the tiny model once

N, L, K = 30, 6, 3
MODEL = make_model("sasrec", SASRecConfig(num_items=N, max_len=L, dim=8, num_layers=1, num_heads=1, ff_dim=16))
PARAMS = jax.jit(MODEL.init)(jax.random.key(0))  # (eager flax compiles op by op: slow)
SCORES = jax.jit(lambda params, windows: MODEL.score(params, MODEL.encode(params, windows)))


@pytest.fixture(scope="module")
def service(tmp_path_factory):
    from starlette.testclient import TestClient

    db = tmp_path_factory.mktemp("serve") / "decisions.db"
    cfg = ServiceConfig(db=str(db), buckets=(4,), max_slate=5, slate_size=K, capacity=8, max_body_bytes=2048,
                        publish_dir=str(db.parent / "pub"), reload_s=0.05)
    app = make_app(cfg, (MODEL, PARAMS, "tiny-1"))
    with TestClient(app) as client:
        yield client, db, app


def _count(db, table):
    con = sqlite3.connect(db)
    try:
        return con.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]
    finally:
        con.close()


def test_rank_then_reward_is_logged_and_duplicates_are_idempotent(service):
    client, db, _ = service
    r = client.post("/rank", json={"user": "alice", "events": [3, 1, 4]})
    assert r.status_code == 200
    d = r.json()
    assert len(d["slate"]) == K == len(d["propensities"]) and not {3, 1, 4} & set(d["slate"])
    assert d["model_version"] == "tiny-1" and d["propensity_kind"] == "exact"
    con = sqlite3.connect(db)
    row = con.execute("SELECT user, context, slate, propensities FROM decisions WHERE id = ?",
                      (d["decision_id"],)).fetchone()
    assert row[0] == "alice" and orjson.loads(row[1]) == [3, 1, 4]
    assert orjson.loads(row[2]) == d["slate"] and np.allclose(orjson.loads(row[3]), d["propensities"])
    ok = client.post("/reward", json={"decision_id": d["decision_id"], "rewards": [0, 1, 0]})
    assert ok.status_code == 200 and ok.json()["status"] == "ok"
    assert con.execute("SELECT rewards FROM rewards WHERE decision_id = ?", (d["decision_id"],)).fetchone()[0] \
        == "[0.0,1.0,0.0]"
    again = client.post("/reward", json={"decision_id": d["decision_id"], "rewards": [0, 1, 0]})
    assert again.status_code == 200 and again.json()["status"] == "duplicate"
    other = client.post("/reward", json={"decision_id": d["decision_id"], "rewards": [1, 1, 0]})
    assert other.status_code == 409
    # the logged greedy slate: what the greedy policy shows; the slate equals it iff every pick was greedy
    for _ in range(12):
        e = client.post("/rank", json={"user": "zed"}).json()
        g = orjson.loads(con.execute("SELECT greedy FROM decisions WHERE id = ?", (e["decision_id"],)).fetchone()[0])
        assert (e["slate"] == g) == all(p > 0.5 for p in e["propensities"])  # epsilon 0.1: greedy picks > 0.9
        client.post("/reward", json={"decision_id": e["decision_id"], "rewards": [0, 0, 0]})
    con.close()
    # the clicked item joined alice's history: never shown again, and what a restart resumes from
    clicked = d["slate"][1]
    nxt = client.post("/rank", json={"user": "alice"}).json()
    assert clicked not in nxt["slate"]
    assert last_histories(db)["alice"] == [3, 1, 4, clicked]


def test_bad_requests_get_one_line_4xx_and_change_nothing(service):
    client, db, app = service
    svc = app.state.service
    before = (_count(db, "decisions"), _count(db, "rewards"), len(svc.ranker.user_ids))
    good = client.post("/rank", json={"user": "bob"}).json()["decision_id"]
    before = (before[0] + 1, before[1], before[2] + 1)
    svc.log.log_decisions([Decision(id="old", user="bob", context=[], slate=[1, 2, 3], propensities=[1, 1, 1],
                                    propensity_kind="exact", policy="greedy", policy_params={},
                                    model_version="tiny-1", created=0.0, expires=1.0)]).result()
    before = (before[0] + 1,) + before[1:]
    cases = [
        ("/rank", b"{not json", 400, "body"),
        ("/rank", b"[1, 2]", 400, "body"),
        ("/rank", orjson.dumps({"events": [1]}), 422, "user"),
        ("/rank", orjson.dumps({"user": "x", "colour": "red"}), 422, "colour"),
        ("/rank", orjson.dumps({"user": "x", "events": [N + 1]}), 422, "events[0]"),
        ("/rank", orjson.dumps({"user": "x", "events": ["7"]}), 422, "events[0]"),
        ("/rank", orjson.dumps({"user": "x", "candidates": [0]}), 422, "candidates[0]"),
        ("/rank", orjson.dumps({"user": "x", "slate_size": N + 1}), 422, "slate_size"),
        ("/rank", orjson.dumps({"user": "x", "candidates": [1, 2], "slate_size": 3}), 422, "slate_size"),
        ("/rank", orjson.dumps({"user": "x", "policy": "oracle"}), 422, "policy"),
        ("/rank", orjson.dumps({"user": "x", "events": list(range(1, 30)) * 40}), 413, "body"),
        ("/reward", orjson.dumps({"decision_id": "nope", "rewards": [1, 0, 0]}), 404, "decision_id"),
        ("/reward", orjson.dumps({"decision_id": "old", "rewards": [1, 0, 0]}), 410, "decision_id"),
        ("/reward", orjson.dumps({"decision_id": good, "rewards": [1, 0]}), 422, "rewards"),
        ("/reward", orjson.dumps({"decision_id": good, "rewards": [1, "a", 0]}), 422, "rewards[1]"),
        ("/reward", orjson.dumps({"decision_id": good}), 422, "rewards"),
    ]
    for path, body, status, field in cases:
        r = client.post(path, content=body, headers={"Content-Type": "application/json"})
        message = r.json()["error"]
        assert r.status_code == status, (body, r.status_code, message)
        assert message.startswith(field) and "\n" not in message, (body, message)
    wrong_method = client.get("/rank")
    assert wrong_method.status_code == 405 and wrong_method.json()["error"].startswith("method")
    assert client.post("/nowhere", json={}).status_code == 404
    assert (_count(db, "decisions"), _count(db, "rewards"), len(svc.ranker.user_ids)) == before
    assert "x" not in svc.ranker.user_ids
    assert client.post("/reward", json={"decision_id": good, "rewards": [0, 0, 1]}).json()["status"] == "ok"
    metrics = client.get("/metrics").text
    assert 'rec_jax_model_info{version="tiny-1"} 1.0' in metrics
    assert 'rec_jax_requests_total{endpoint="rank",status="422"}' in metrics


def test_bearer_token_guards_every_route_but_healthz(service):
    client, _, app = service
    svc = app.state.service
    svc.token = "s3cret"
    try:
        assert client.post("/rank", json={"user": "carol"}).status_code == 401
        assert client.post("/rank", json={"user": "carol"}, headers={"Authorization": "Bearer wrong"}).status_code \
            == 401
        assert client.get("/metrics").status_code == 401
        assert client.get("/healthz").status_code == 200
        ok = client.post("/rank", json={"user": "carol"}, headers={"Authorization": "Bearer s3cret"})
        assert ok.status_code == 200
    finally:
        svc.token = ""


def test_binds_loopback_unless_told_otherwise():
    from rec_jax.serve.http.__main__ import uvicorn_config

    assert ServiceConfig().host == "127.0.0.1"
    assert uvicorn_config(ServiceConfig(), app=None).host == "127.0.0.1"
    assert uvicorn_config(ServiceConfig(host="0.0.0.0"), app=None).host == "0.0.0.0"


def _greedy_reference(window, exclude, k):
    """Top-k of the model's scores for a full re-encode of ``window`` (at most L items; seen excluded)."""
    padded = np.zeros((1, L), np.int32)
    padded[0, L - len(window):] = window
    scores = np.asarray(SCORES(PARAMS, padded))[0].astype(np.float64)
    scores[0] = -np.inf
    scores[list(exclude)] = -np.inf
    return np.argsort(-scores, kind="stable")[:k].tolist()


@pytest.mark.parametrize("capacity", [pytest.param(2, marks=pytest.mark.slow), 8])  # 2 < 3 users: evictions
# and rebuilds (slow: the restart test rebuilds too); 8: every path on cached states
def test_incremental_states_give_the_full_reencode_slates(capacity):
    ranker = Ranker(MODEL, PARAMS, RankerConfig(buckets=(4,), max_slate=4, capacity=capacity, policies=("greedy",)),
                    jax.random.key(1), model_version="t")
    rng = np.random.default_rng(0)
    histories = {u: [] for u in ("a", "b", "c")}
    excluded = {}
    for step in range(12):  # one or two new items (folded), three (rebuild), none (stored h)
        users = list(rng.choice(list(histories), size=2, replace=False))
        requests = []
        for u in users:
            pool = [i for i in range(1, N + 1) if i not in histories[u]]
            size = min([1, 0, 2, 3][step % 4], L - len(histories[u]))  # up to L items: the windowed model exactly
            new = [int(i) for i in rng.choice(pool, size=size, replace=False)]
            histories[u] += new
            excluded[u] = tuple(int(i) for i in rng.choice(N, size=step % 3, replace=False) + 1)  # 0-2 items
            requests.append(RankRequest(user=u, events=tuple(new), slate_size=4, exclude=excluded[u]))
        for u, out in zip(users, ranker.rank(requests)):
            assert out.context == histories[u]
            if histories[u]:  # (a cold-start user's scores all tie: greedy breaks ties at random)
                reference = _greedy_reference(histories[u], histories[u] + list(excluded[u]), 4)
                assert out.slate == reference, (step, u)


def test_epsilon_greedy_propensities_are_exact_and_match_frequencies():
    eps = 0.5
    ranker = Ranker(MODEL, PARAMS, RankerConfig(buckets=(64,), max_slate=3, capacity=0, epsilon=eps),
                    jax.random.key(2), model_version="t")
    candidates = (4, 9, 17)
    counts, logged = {}, {}
    for batch in range(20):  # new users, empty histories: every user has the same scores (h = 0)
        out = ranker.rank([RankRequest(user=f"{batch}-{i}", slate_size=2, candidates=candidates)
                           for i in range(64)])
        for o in out:
            counts[tuple(o.slate)] = counts.get(tuple(o.slate), 0) + 1
            logged[tuple(o.slate)] = float(np.prod(o.propensities))
    # closed form: greedy order = scores' order (ties by item id): first slot best w.p. (1-eps) + eps/3 ...
    scores = np.asarray(MODEL.score(PARAMS, np.zeros((1, 8), np.float32)))[0]
    order = sorted(candidates, key=lambda i: (-scores[i], i))
    total = sum(counts.values())
    for slate, c in counts.items():
        first, second = slate
        p1 = (1 - eps) * (first == order[0]) + eps / 3
        rest = [i for i in order if i != first]
        p2 = (1 - eps) * (second == rest[0]) + eps / 2
        assert logged[slate] == pytest.approx(p1 * p2, rel=1e-6)
        assert abs(c / total - p1 * p2) < 4 * np.sqrt(p1 * p2 * (1 - p1 * p2) / total) + 1e-3
    assert len(counts) == 6  # every ordered pair of the 3 candidates was explored


def test_a_restarted_ranker_rebuilds_each_users_exact_state_from_the_log(tmp_path):
    from rec_jax.serve.http.decision_log import DecisionLog

    cfg = RankerConfig(buckets=(4,), max_slate=3, capacity=4, policies=("greedy",))
    first = Ranker(MODEL, PARAMS, cfg, jax.random.key(3), model_version="t")
    log = DecisionLog(tmp_path / "d.db")
    rng = np.random.default_rng(1)
    for step in range(9):  # histories grow past rebuild_len (= L for one layer): positions matter
        requests = [RankRequest(user=u, events=tuple(int(i) for i in rng.choice(np.arange(1, N + 1), 2)),
                                slate_size=3) for u in ("p", "q")]
        for r, out in zip(requests, first.rank(requests)):
            log.log_decisions([Decision(id=f"{r.user}{step}", user=r.user, context=out.context,
                                        history_len=out.history_len, slate=out.slate,
                                        propensities=out.propensities, propensity_kind="exact", policy="greedy",
                                        policy_params={}, model_version="t", created=float(step),
                                        expires=1e12)]).result()
            clicks = [float(k == step % 3) for k in range(3)]
            outcome = log.log_reward(f"{r.user}{step}", clicks).result()
            first.add_clicks(r.user, outcome.clicked)
    log.close()
    restored = Ranker(MODEL, PARAMS, cfg, jax.random.key(3), model_version="t",
                      histories=last_histories(tmp_path / "d.db"))
    for ranker in (first, restored):
        ranker.rank([RankRequest(user=u, slate_size=3) for u in ("p", "q")])  # folds the last click / rebuilds
    for u in ("p", "q"):
        assert first.history.lengths[first.user_ids[u]] == restored.history.lengths[restored.user_ids[u]] > L
        h = [np.asarray(r.store["h"][r.table.order[r.user_ids[u]]]) for r in (first, restored)]
        np.testing.assert_allclose(h[1], h[0], rtol=1e-5, atol=1e-6)


def test_full_queue_is_429_with_retry_after_and_a_late_request_is_503_unlogged(service, tmp_path):
    import asyncio
    import time

    from rec_jax.serve.http.batcher import Batcher, BatcherConfig
    from rec_jax.serve.http.decision_log import DecisionLog

    client, db, app = service
    svc = app.state.service
    before = _count(db, "decisions")
    normal, svc.batcher.cfg = svc.batcher.cfg, BatcherConfig(queue_size=0)
    try:
        full = client.post("/rank", json={"user": "dave"})
    finally:
        svc.batcher.cfg = normal
    assert full.status_code == 429 and full.headers["retry-after"] == "1"
    assert full.json()["error"].startswith("queue")
    assert _count(db, "decisions") == before
    # a request whose deadline passed before a batch took it: 503, not served, not logged
    loop = asyncio.new_event_loop()
    log = DecisionLog(tmp_path / "late.db")
    ranker = Ranker(MODEL, PARAMS, RankerConfig(buckets=(4,), max_slate=5, capacity=8), jax.random.key(4),
                    model_version="t")
    batcher = Batcher(ranker, log, loop, BatcherConfig())
    try:
        late = loop.run_until_complete(batcher.submit(RankRequest(user="erin", slate_size=3), time.monotonic() - 1))
        on_time = loop.run_until_complete(batcher.submit(RankRequest(user="erin", slate_size=3),
                                                         time.monotonic() + 60))
    finally:
        batcher.stop()
        log.close()
        loop.close()
    assert late.status == 503 and late.body["error"].startswith("deadline")
    assert on_time.status == 200
    assert _count(tmp_path / "late.db", "decisions") == 1  # only the request served on time


def test_a_published_head_is_swapped_in_and_a_bad_one_refused(service):
    import time

    from rec_jax.serve.http.publish import publish_head
    from rec_jax.serve.recommend import Head

    client, db, app = service
    svc = app.state.service
    bias = np.zeros(N + 1, np.float32)
    bias[7] = 50.0  # item 7 first for everyone who has not consumed it
    publish_head(svc.publish_dir, Head(table=np.asarray(svc.ranker.head.table), bias=bias))
    deadline = time.time() + 20
    while not client.get("/healthz").json()["model_version"].endswith("+v0001") and time.time() < deadline:
        time.sleep(0.05)
    greedy_first = 0
    for u in range(12):
        d = client.post("/rank", json={"user": f"swap{u}"}).json()
        assert d["model_version"] == "tiny-1+v0001"
        if d["propensities"][0] > 0.5:  # the greedy pick of slot 0
            assert d["slate"][0] == 7
            greedy_first += 1
    assert greedy_first > 0
    assert 'rec_jax_model_info{version="tiny-1+v0001"} 1.0' in client.get("/metrics").text
    (db.parent / "pub" / "published" / "LATEST").write_text("v0009\n")  # names no complete version
    time.sleep(0.3)
    after = client.post("/rank", json={"user": "swap-after"})
    assert after.status_code == 200 and after.json()["model_version"] == "tiny-1+v0001"
