"""The decision service: rank and reward over HTTP, every decision in a durable log.

    python -m rec_jax.serve.http --model-dir runs/ml100k [--policy epsilon_greedy softmax] [--db PATH]

Rooms, one idea each:

* :mod:`.schema`        the JSON bodies, checked field by field (one-line errors);
* :mod:`.ranker`        users, histories, cached model states; one micro-batch at a time;
* :mod:`.rank_step`     the jitted step (one incremental event, scores, the policy's slate);
* :mod:`.batcher`       micro-batching thread, bounded queue, deadlines;
* :mod:`.decision_log`  SQLite (WAL) with group commit; what a restart resumes from;
* :mod:`.export`        the log as Parquet, per slot, which ``rec_jax.ope`` reads;
* :mod:`.metrics`       Prometheus text for ``GET /metrics``;
* :mod:`.app`           the Starlette routes and lifespan.

``experiments/serve_load.py`` measures it under load and SIGKILL.
"""
