"""The online learner: clicks from the decision log update the output head, published as versions.

    python -m rec_jax.serve.http.learner --model-dir runs/ml100k [--db PATH] [--interval-s 30] [--once]

Every ``--interval-s`` it reads the rewards committed since the last published
version (the watermark is the newest reward's commit time, kept in the version's
``meta.json``), and for each clicked slot rebuilds the user vector that scored that
slate from the decision's logged context (:func:`rec_jax.serve.sasrec_kv.rebuild`:
the logged items are the ones that determine the state, and ``history_len`` their
positions), then takes ``--steps`` Adam steps of the service's own online objective
(:mod:`rec_jax.serve.online`: full-softmax cross-entropy of the clicked item, over the
head's item table and bias) from the version in force, and publishes the result
(:mod:`rec_jax.serve.http.publish`). The service swaps it in between two batches.

A learner that crashes (or is killed) mid-way publishes nothing: the service keeps
the last good version. Only the head learns: every cached user state stays exact.
"""
from __future__ import annotations

import dataclasses
import functools
import sys
import time
from pathlib import Path

import numpy as np
import orjson

import rec_jax.cli


@dataclasses.dataclass(frozen=True)
class Config:
    """Learn the output head from the decision log's clicks and publish it for the service."""

    model_dir: str = ""  # the served train_sequential.py run (heads are published under <model-dir>/published)
    db: str = ""  # the decision log (default: <model-dir>/decisions.db)
    publish_dir: str = ""  # where to publish (default: --model-dir)
    interval_s: float = 30.0  # seconds between two updates
    once: bool = False  # one update (if there are enough clicks), then exit
    min_clicks: int = 32  # fewer new clicks than this: wait for more
    max_clicks: int = 65536  # at most this many clicks per update (the oldest first)
    steps: int = 20  # Adam steps per update
    learning_rate: float = 1e-3  # Adam step size


def new_clicks(db: str | Path, since: float, limit: int):
    """(contexts list[list[int]], history_len int[m], item int[m], newest commit time) of the
    clicked slots whose reward was committed after ``since``, oldest first."""
    from rec_jax.serve.http.decision_log import connect

    con = connect(db, readonly=True)
    try:
        rows = con.execute(
            "SELECT d.context, d.history_len, d.slate, r.rewards, r.received FROM rewards r "
            "JOIN decisions d ON d.id = r.decision_id WHERE r.received > ? ORDER BY r.received LIMIT ?",
            (since, limit)).fetchall()
    finally:
        con.close()
    contexts, lengths, items, newest = [], [], [], since
    for context, history_len, slate, rewards, received in rows:
        context = orjson.loads(context)
        for item, r in zip(orjson.loads(slate), orjson.loads(rewards)):
            if r > 0:
                contexts.append(context)
                lengths.append(history_len)
                items.append(item)
        newest = max(newest, received)
    return contexts, np.asarray(lengths, np.int64), np.asarray(items, np.int64), newest


@functools.lru_cache(maxsize=8)
def _batched_rebuild(name: str, config):
    """jit(vmap(rebuild)) of the model ``name`` with ``config``, built once per process."""
    import jax

    from rec_jax.models import make_model
    from rec_jax.serve.incremental import make_incremental

    inc = make_incremental(make_model(name, config))
    return jax.jit(jax.vmap(inc.rebuild, in_axes=(None, 0, 0))), inc.rebuild_len


@functools.lru_cache(maxsize=8)
def _updater(num_items: int, learning_rate: float, steps: int):
    from rec_jax.serve.online import make_head_updater

    return make_head_updater(num_items, learning_rate, steps)


def user_vectors(model, params, contexts, lengths) -> np.ndarray:
    """f32[m, D]: the user vector each context gives (the incremental model's rebuild,
    tails left-padded; rows padded to a power of two so few shapes compile)."""
    import jax.numpy as jnp

    rebuild, width = _batched_rebuild(model.name, model.config)
    width = width or max(len(c) for c in contexts)
    m = len(contexts)
    rows = 1 << max(0, (m - 1).bit_length())
    tails = np.zeros((rows, width), np.int32)
    counts = np.zeros(rows, np.int32)
    for i, c in enumerate(contexts):
        c = c[-width:]
        tails[i, width - len(c):] = c
    counts[:m] = lengths
    return np.asarray(rebuild(params, jnp.asarray(tails), jnp.asarray(counts))[1])[:m]


def update_head(head, h, items, num_items: int, learning_rate: float, steps: int):
    """(head, loss): ``steps`` Adam steps of the online objective on (h f32[m, D], items int[m]);
    the rows are padded to a power of two (invalid rows masked) so few shapes compile."""
    import jax.numpy as jnp

    from rec_jax.serve.recommend import Feedback

    m = len(items)
    size = 1 << max(0, (m - 1).bit_length())
    hh = np.zeros((size, h.shape[1]), np.float32)
    hh[:m] = h
    it = np.zeros(size, np.int32)
    it[:m] = items
    feedback = Feedback(h=jnp.asarray(hh), item=jnp.asarray(it), valid=jnp.arange(size) < m,
                        ptr=jnp.zeros((), jnp.int32))
    updater = _updater(num_items, float(learning_rate), int(steps))
    (new, _), loss = updater.update(updater.init(head), feedback)
    return new, float(loss)


def main(cfg: Config, log=print) -> int:
    import json

    from rec_jax.serve.http.publish import latest_version, load_head, publish_head
    from rec_jax.serve.recommend import initial_head
    from rec_jax.train.load import load_trained

    if not cfg.model_dir:
        raise ValueError("--model-dir: expected the served train_sequential.py run folder")
    db = Path(cfg.db or Path(cfg.model_dir) / "decisions.db")
    if not db.exists():
        raise FileNotFoundError(f"--db {db}: no decision log there")
    out = cfg.publish_dir or cfg.model_dir
    model, params, _ = load_trained(cfg.model_dir)
    while True:
        version = latest_version(out)
        head, since = initial_head(model, params), 0.0
        if version is not None:
            head = load_head(out, version, head)
            since = json.loads((Path(out) / "published" / version / "meta.json").read_text()).get("watermark", 0.0)
        contexts, lengths, items, newest = new_clicks(db, since, cfg.max_clicks)
        if len(items) >= cfg.min_clicks:
            h = user_vectors(model, params, contexts, lengths)
            head, loss = update_head(head, h, items, model.config.num_items, cfg.learning_rate, cfg.steps)
            published = publish_head(out, head, note={"watermark": newest, "clicks": int(len(items)),
                                                      "loss": loss, "from": version})
            log(f"published {published}: {len(items)} clicks, loss {loss:.4f} (from {version or 'the trained head'})")
        elif cfg.once:
            log(f"{len(items)} new clicks (< --min-clicks {cfg.min_clicks}): nothing published")
        if cfg.once:
            return 0
        time.sleep(cfg.interval_s)


def cli(argv: list[str] | None = None) -> int:
    return rec_jax.cli.main(Config, main, argv, __doc__)


if __name__ == "__main__":
    sys.exit(cli())
