"""A head published while clients rank without pause is swapped in by the service without a
failed request; every slate, and its decision-log row, names the head that ranked it."""
import jax
import numpy as np
import orjson

from rec_jax.models import make_model
from rec_jax.serve.http.publish import publish_head
from rec_jax.serve.recommend import Head, initial_head
from rec_jax.train.config import get_preset, model_config

N = 30


def test_a_head_published_under_load_is_swapped_in_without_a_failed_request(tmp_path):
    """The service on uvicorn (its production settings, an ephemeral loopback port), 4 client
    threads ranking without pause, a head published mid-way. Each slate is checked against a
    full re-encode scored by the head its response names, so the version reported (and logged)
    is the one that ranked it."""
    import http.client
    import sqlite3
    import threading
    import time

    import uvicorn

    from rec_jax.serve.http.__main__ import uvicorn_config
    from rec_jax.serve.http.app import ServiceConfig, make_app

    model = make_model("sasrec", model_config(get_preset("tiny-sasrec"), N))
    params = jax.jit(model.init)(jax.random.key(1))
    L, K = model.config.max_len, 3
    histories = [(3, 9), (4, 1, 15), (22, 8), (30, 2, 7), (11, 12), (5, 26, 19)]
    bias = np.zeros(N + 1, np.float32)
    bias[[7, 11, 19, 23, 5, 2]] = [60, 50, 40, 30, 20, 10]  # the new head: these first
    windows = np.zeros((len(histories), L), np.int32)
    for i, events in enumerate(histories):
        windows[i, L - len(events):] = events
    old_scores = np.asarray(jax.jit(lambda p, w: model.score(p, model.encode(p, w)))(params, windows), np.float64)

    def top(scores, events):
        scores = scores.copy()
        scores[[0, *events]] = -np.inf
        return np.argsort(-scores, kind="stable")[:K].tolist()

    expected = {"tiny": [top(s, e) for s, e in zip(old_scores, histories)],
                "tiny+v0001": [top(s + bias, e) for s, e in zip(old_scores, histories)]}
    assert all(a != b for a, b in zip(*expected.values()))  # a slate tells which head ranked it

    db, pub = tmp_path / "decisions.db", tmp_path / "pub"
    cfg = ServiceConfig(db=str(db), policy=("greedy",), buckets=(4,), max_slate=K, slate_size=K, capacity=16,
                        publish_dir=str(pub), reload_s=0.02, deadline_ms=30000.0)
    server = uvicorn.Server(uvicorn_config(ServiceConfig(port=0), make_app(cfg, (model, params, "tiny"))))
    serving = threading.Thread(target=server.run, daemon=True)
    serving.start()
    deadline = time.monotonic() + 120  # a guard against a hang, not a timing check
    while not server.started and serving.is_alive() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert server.started
    port = server.servers[0].sockets[0].getsockname()[1]

    stop = threading.Event()
    answers: list[list] = [[] for _ in range(4)]  # per thread, in order: (history index, status, body)
    failures: list = []

    def client(t):
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        try:
            n = 0
            while not stop.is_set():
                i = (t + n) % len(histories)
                body = orjson.dumps({"user": f"t{t}-{n}", "events": list(histories[i])})
                conn.request("POST", "/rank", body, {"Content-Type": "application/json"})
                response = conn.getresponse()
                answers[t].append((i, response.status, orjson.loads(response.read())))
                n += 1
        except Exception as err:  # noqa: BLE001 (reported by the main thread)
            failures.append(repr(err))
        finally:
            conn.close()

    def count(version):
        return [sum(1 for _, _, b in a if b.get("model_version") == version) for a in answers]

    threads = [threading.Thread(target=client, args=(t,)) for t in range(4)]
    try:
        for thread in threads:
            thread.start()
        while min(count("tiny")) < 10 and not failures and time.monotonic() < deadline:
            time.sleep(0.01)
        start = initial_head(model, params)
        assert publish_head(pub, Head(table=np.asarray(start.table), bias=bias)) == "v0001"
        while min(count("tiny+v0001")) < 10 and not failures and time.monotonic() < deadline:
            time.sleep(0.01)
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=60)
        server.should_exit = True
        serving.join(timeout=60)
    assert not failures
    assert min(count("tiny+v0001")) >= 10, "the published head was not swapped in"
    responses = [r for a in answers for r in a]
    assert all(status == 200 for _, status, _ in responses), [b for _, s, b in responses if s != 200][:3]
    for a in answers:  # each client: the old version, then the new one, never back
        versions = [b["model_version"] for _, _, b in a]
        switch = versions.index("tiny+v0001")
        assert switch >= 10 and set(versions[:switch]) == {"tiny"} and set(versions[switch:]) == {"tiny+v0001"}
    for i, _, b in responses:  # ranked by the head it names
        assert b["slate"] == expected[b["model_version"]][i], (i, b)
    con = sqlite3.connect(db)
    try:
        logged = con.execute("SELECT id, model_version, slate FROM decisions ORDER BY rowid").fetchall()
    finally:
        con.close()
    by_id = {b["decision_id"]: b for _, _, b in responses}
    assert len(logged) == len(responses) and {row[0] for row in logged} == set(by_id)  # none dropped
    for decision_id, version, slate in logged:  # the log records the version that ranked each slate
        assert version == by_id[decision_id]["model_version"] and orjson.loads(slate) == by_id[decision_id]["slate"]
    versions = [version for _, version, _ in logged]
    switch = versions.index("tiny+v0001")
    assert set(versions[:switch]) == {"tiny"} and set(versions[switch:]) == {"tiny+v0001"}
