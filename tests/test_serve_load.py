"""experiments/serve_load.py end to end (slow: two service start-ups and the in-process replay):
every reward the client saw acknowledged is in the log after a SIGKILL and restart."""
import math
import sqlite3

import pytest

pytestmark = pytest.mark.slow


def test_serve_load_small_run_loses_no_acknowledged_reward(tmp_path):
    from experiments.serve_load import Config, main

    lines = []
    result = main(Config(quick=True, rate=150.0, duration_s=2.0, concurrency=(8,), closed_duration_s=2.0,
                         kill_duration_s=5.0, kill_rate=100.0, in_process_events=3072, workdir=str(tmp_path)),
                  log=lines.append)
    assert result["rewards_acknowledged"] > 100
    assert result["rewards_lost"] == 0
    con = sqlite3.connect(tmp_path / "decisions.db")
    logged = con.execute("SELECT COUNT(*) FROM rewards").fetchone()[0]
    assert logged >= result["rewards_acknowledged"]  # the log may hold rewards whose ack the kill cut off
    assert result["resumed_model_version"] is True
    assert result["kill"]["after_restart_rank_ok"] > 0
    assert result["http_rank_p50_ms"] <= result["http_rank_p99_ms"]
    for key in ("in_process_events_per_s/batch=256", "incremental_speedup/batch=256"):
        assert math.isfinite(result[key]) and result[key] > 0, key
    # max_requests_per_s counts only levels whose rank p99 stayed under 100 ms: on a loaded CI
    # machine (slow tests run side by side) even 8 workers may miss it, so the figure may be NaN;
    # the level itself must have run and served
    level = result["closed_loop"][0]
    assert level["rank_ok"] > 0 and level["requests_per_s"] > 0
    assert math.isnan(result["max_requests_per_s"]) or result["max_requests_per_s"] == level["requests_per_s"]
