"""The decision log: group commit from many threads, SIGKILL durability of acknowledged
rewards (no torn rows), the Parquet export that rec_jax.ope reads."""
import concurrent.futures
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import orjson
import pytest

from rec_jax.serve.http.decision_log import Decision, DecisionLog, last_histories
from rec_jax.serve.http.export import export_parquet, read_served_log

REPO = Path(__file__).resolve().parents[1]


def _decision(i: int, user: str = "u", slate=(1, 2, 3), props=(0.5, 0.25, 1.0), created=None, ttl=600.0):
    created = float(i) if created is None else created
    return Decision(id=f"d{i}", user=user, context=[i % 7 + 1], slate=list(slate), propensities=list(props),
                    propensity_kind="exact", policy="epsilon_greedy", policy_params={"version": "eps(0.1)"},
                    model_version="m1", created=created, expires=created + ttl)


def test_group_commit_from_many_threads_gives_each_caller_its_own_outcome(tmp_path):
    log = DecisionLog(tmp_path / "d.db", clock=lambda: 100.0)
    log.log_decisions([_decision(i, created=50.0) for i in range(200)]).result()
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        outcomes = list(pool.map(lambda i: log.log_reward(f"d{i % 250}", [0.0, float(i % 2), 0.0]).result(),
                                 range(300)))
    log.close()
    status = [o.status for o in outcomes]
    assert status[200:250] == ["unknown"] * 50  # d200..d249 were never logged
    for j in range(200):  # d0..d49 are rewarded twice with the same values (threads race: either first)
        pair = [status[j]] + ([status[j + 250]] if j < 50 else [])
        assert sorted(pair) == (["duplicate", "ok"] if j < 50 else ["ok"])
        first = outcomes[j] if status[j] == "ok" else outcomes[j + 250]
        assert first.clicked == ((2,) if j % 2 else ())
    con = sqlite3.connect(tmp_path / "d.db")
    rows = dict(con.execute("SELECT decision_id, rewards FROM rewards").fetchall())
    assert len(rows) == 200 and all(orjson.loads(rows[f"d{i}"])[1] == float(i % 2) for i in range(200))
    assert log.commits < log.jobs_committed  # several jobs shared a commit


WRITER = textwrap.dedent("""
    import sys, time
    from rec_jax.serve.http.decision_log import Decision, DecisionLog
    log = DecisionLog(sys.argv[1])
    i = 0
    while True:
        d = Decision(id=f"d{i}", user=f"u{i % 13}", context=list(range(1, 40)), slate=[1, 2, 3, 4],
                     propensities=[0.9, 0.8, 0.7, 0.6], propensity_kind="exact", policy="p", policy_params={},
                     model_version="m", created=time.time(), expires=time.time() + 600)
        log.log_decisions([d]).result()
        futures = [log.log_reward(f"d{i}", [0.0, 1.0, 0.0, 0.0])]
        for f in futures:
            assert f.result().status == "ok"
            print(f"d{i}", flush=True)   # acknowledged: only after the commit
        i += 1
""")


def test_sigkill_loses_no_acknowledged_reward_and_leaves_no_torn_row(tmp_path):
    db = tmp_path / "d.db"
    env = dict(os.environ, PYTHONPATH=str(REPO))
    proc = subprocess.Popen([sys.executable, "-c", WRITER, str(db)], stdout=subprocess.PIPE, env=env, text=True)
    acked = []
    for line in proc.stdout:
        acked.append(line.strip())
        if len(acked) >= 300:
            break
    proc.send_signal(signal.SIGKILL)  # mid-stream: the writer is committing the next ones
    rest, _ = proc.communicate()
    acked += [line for line in rest.split() if line]
    assert proc.returncode == -signal.SIGKILL
    con = sqlite3.connect(db)
    assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    rewarded = {r[0]: r[1] for r in con.execute("SELECT decision_id, rewards FROM rewards")}
    assert set(acked) <= set(rewarded)  # every acknowledged reward survived the kill
    for slate, props, context in con.execute("SELECT slate, propensities, context FROM decisions"):
        assert len(orjson.loads(slate)) == 4 == len(orjson.loads(props)) and len(orjson.loads(context)) == 39
    assert all(orjson.loads(v) == [0.0, 1.0, 0.0, 0.0] for v in rewarded.values())


def test_parquet_export_is_what_ope_reads(tmp_path):
    from rec_jax import ope

    log = DecisionLog(tmp_path / "d.db", clock=lambda: 10.0)
    log.log_decisions([_decision(i, user=f"u{i % 3}", slate=(i % 5 + 1, 7, 9)) for i in range(6)]).result()
    for i in range(4):  # decisions 4 and 5 get no reward
        assert log.log_reward(f"d{i}", [1.0, 0.0, float(i % 2)]).result().status == "ok"
    log.close()
    assert export_parquet(tmp_path / "d.db", tmp_path / "log.parquet") == 18
    served = read_served_log(tmp_path / "log.parquet")
    assert len(served["action"]) == 12
    np.testing.assert_array_equal(served["position"], np.tile([0, 1, 2], 4))
    np.testing.assert_array_equal(served["action"][0::3], [1, 2, 3, 4])
    np.testing.assert_allclose(served["slate_pscore"][:3], [0.5, 0.125, 0.125])
    np.testing.assert_array_equal(served["reward"][2::3], [0, 1, 0, 1])
    np.testing.assert_array_equal(served["greedy_action"], -1)  # these decisions logged no greedy slate
    assert set(read_served_log(tmp_path / "log.parquet", rewarded_only=False)["has_reward"]) == {True, False}
    # the same columns straight from the SQLite log
    direct = read_served_log(tmp_path / "d.db")
    np.testing.assert_array_equal(direct["action"], served["action"])
    num_items = 10
    pi_e = np.full((len(served["action"]), num_items), 1.0 / num_items)
    data = ope.validate_log(served, pi_e=pi_e)
    ipw = float(ope.ipw(data))
    w = (1.0 / num_items) / served["pscore"]
    assert ipw == pytest.approx(float(np.mean(w * served["reward"])), rel=1e-5)
    # what a restarted service resumes each user from: newest decision's context + its clicks
    hist = last_histories(tmp_path / "d.db")
    # u0: d3 (context [4]) clicked slots 0 and 2 of (4, 7, 9); d4 (u1) and d5 (u2) have no reward
    assert hist == {"u0": [4, 4, 9], "u1": [5], "u2": [6]}
