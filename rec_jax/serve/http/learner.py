"""The online learner: rewards from the decision log update the output head, published as versions.

    python -m rec_jax.serve.http.learner --model-dir runs/ml100k [--db PATH] [--interval-s 30] [--once]
                                         [--objective ce|click]

Every ``--interval-s`` it reads the rewards committed since the last published
version, oldest first (at most ``--max-clicks`` clicks, and as many rewards, per
update; a decision's reward is never split). The watermark is the newest reward's
SQLite rowid, kept in the version's ``meta.json`` as ``watermark_rowid``: the log
only ever inserts rewards, from one writer thread, so rowids grow in commit order
and no reward is read twice or skipped, however many share a commit time (a
``meta.json`` of an older learner, with the commit time ``watermark`` only, resumes
after that time). For each rewarded decision it rebuilds the user vector ``h`` that
scored the slate from the decision's logged context
(:func:`rec_jax.serve.sasrec_kv.rebuild`: the logged items are the ones that
determine the state, and ``history_len`` their positions), then takes ``--steps``
Adam steps from the version in force of the objective ``--objective``:

* ``ce`` (default): the service's own online objective (:mod:`rec_jax.serve.online`):
  full-softmax cross-entropy of each clicked item, over the head's item table and bias;
* ``click``: the CTR objective :func:`rec_jax.online.objectives.click_loss` over every
  shown slot of every rewarded decision, clicked (label 1) or not (label 0): the
  score of the shown item ``s = h . table[item] + bias[item]`` (the score the service
  ranks by) plus a per-slot position logit that absorbs position bias. The position
  logits are learned jointly but not served: they are kept in ``meta.json``
  (``position_logits``) for the next update to start from.

and publishes the result (:mod:`rec_jax.serve.http.publish`). The service swaps it
in between two batches.

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

OBJECTIVES = ("ce", "click")


@dataclasses.dataclass(frozen=True)
class Config:
    """Learn the output head from the decision log's rewards and publish it for the service."""

    model_dir: str = ""  # the served train_sequential.py run (heads are published under <model-dir>/published)
    db: str = ""  # the decision log (default: <model-dir>/decisions.db)
    publish_dir: str = ""  # where to publish (default: --model-dir)
    interval_s: float = 30.0  # seconds between two updates
    once: bool = False  # one update (if there are enough clicks), then exit
    min_clicks: int = 32  # fewer new clicks than this: wait for more
    max_clicks: int = 65536  # at most this many clicks, and rewards, per update (the oldest first, whole rewards)
    steps: int = 20  # Adam steps per update
    learning_rate: float = 1e-3  # Adam step size
    objective: str = "ce"  # ce: softmax CE of each clicked item | click: BCE of every shown slot (click_loss)


@dataclasses.dataclass(frozen=True)
class Rewards:
    """The rewarded decisions an update reads, oldest first."""

    contexts: list  # list[list[int]]: each decision's logged context
    history_len: np.ndarray  # int[m]
    slates: list  # list[list[int]]: the items shown, slot order
    rewards: list  # list[list[float]]: one per slot
    watermark_rowid: int  # rowid of the newest reward read (the one resumed after when none was read)
    watermark: float  # commit time of the newest reward read (informative; older learners resumed from it)

    @property
    def num_clicks(self) -> int:
        return sum(1 for rewards in self.rewards for r in rewards if r > 0)


def new_rewards(db: str | Path, after_rowid: int, max_clicks: int, *, after_time: float | None = None,
                ) -> Rewards:
    """The rewards committed after the one of rowid ``after_rowid`` (and, with ``after_time``,
    after that commit time), oldest first: whole rewards, stopping before the one that would
    take the update past ``max_clicks`` clicks or ``max_clicks`` rewards (the first is always read)."""
    from rec_jax.serve.http.decision_log import connect

    where, args = "r.rowid > ?", [int(after_rowid)]
    if after_time is not None:
        where, args = where + " AND r.received > ?", args + [float(after_time)]
    con = connect(db, readonly=True)
    contexts, lengths, slates, rewards = [], [], [], []
    watermark_rowid, watermark, clicks = int(after_rowid), float(after_time or 0.0), 0
    try:
        cursor = con.execute(
            "SELECT r.rowid, d.context, d.history_len, d.slate, r.rewards, r.received FROM rewards r "
            f"JOIN decisions d ON d.id = r.decision_id WHERE {where} ORDER BY r.rowid", args)
        for rowid, context, history_len, slate, reward, received in cursor:
            reward = orjson.loads(reward)
            n = sum(1 for r in reward if r > 0)
            if rewards and (clicks + n > max_clicks or len(rewards) >= max_clicks):
                break
            contexts.append(orjson.loads(context))
            lengths.append(history_len)
            slates.append(orjson.loads(slate))
            rewards.append(reward)
            clicks += n
            watermark_rowid, watermark = rowid, max(watermark, received)
    finally:
        con.close()
    return Rewards(contexts, np.asarray(lengths, np.int64), slates, rewards, watermark_rowid, watermark)


def resume_point(meta: dict) -> tuple[int, float | None]:
    """(after_rowid, after_time) to resume after a version's ``meta.json`` (an older
    learner's meta has the commit time ``watermark`` only: resume after that time)."""
    if "watermark_rowid" in meta:
        return int(meta["watermark_rowid"]), None
    if "watermark" in meta:
        return 0, float(meta["watermark"])
    return 0, None


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


def _pow2(n: int) -> int:
    return 1 << max(0, (n - 1).bit_length())


def user_vectors(model, params, contexts, lengths) -> np.ndarray:
    """f32[m, D]: the user vector each context gives (the incremental model's rebuild,
    tails left-padded; rows padded to a power of two so few shapes compile)."""
    import jax.numpy as jnp

    rebuild, width = _batched_rebuild(model.name, model.config)
    width = width or max(len(c) for c in contexts)
    m = len(contexts)
    rows = _pow2(m)
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
    size = _pow2(m)
    hh = np.zeros((size, h.shape[1]), np.float32)
    hh[:m] = h
    it = np.zeros(size, np.int32)
    it[:m] = items
    feedback = Feedback(h=jnp.asarray(hh), item=jnp.asarray(it), valid=jnp.arange(size) < m,
                        ptr=jnp.zeros((), jnp.int32))
    updater = _updater(num_items, float(learning_rate), int(steps))
    (new, _), loss = updater.update(updater.init(head), feedback)
    return new, float(loss)


def click_scores(head, h, slates):
    """f32[B, K]: the head's score of each shown item, ``h[b] . table[item] + bias[item]``: the
    service's ranking score (``tied_scores(h, table) + bias``) at the shown items."""
    import jax.numpy as jnp

    return jnp.einsum("bd,bkd->bk", h, head.table[slates]) + head.bias[slates]


@functools.lru_cache(maxsize=8)
def _click_updater(learning_rate: float, steps: int):
    """jit((head, pos, h, slates, clicks, shown) -> (head, pos, loss at the first step)):
    ``steps`` Adam steps of the mean click_loss over the shown slots, head and slot logits together."""
    import jax
    import jax.numpy as jnp
    import optax

    from rec_jax.online.objectives import click_loss

    tx = optax.adam(learning_rate)
    per_slot = jax.vmap(jax.vmap(click_loss))  # click_loss of one slot: its BCE, so padding can be masked

    def loss(params, h, slates, clicks, shown):
        head, pos = params
        scores = click_scores(head, h, slates)
        bce = per_slot(scores, jnp.broadcast_to(pos, scores.shape), clicks)
        return jnp.sum(jnp.where(shown, bce, 0.0)) / jnp.maximum(jnp.sum(shown), 1)

    def update(head, pos, h, slates, clicks, shown):
        def one(carry, _):
            params, opt_state = carry
            value, grads = jax.value_and_grad(loss)(params, h, slates, clicks, shown)
            updates, opt_state = tx.update(grads, opt_state, params)
            return (optax.apply_updates(params, updates), opt_state), value

        params = (head, pos)
        ((head, pos), _), losses = jax.lax.scan(one, (params, tx.init(params)), None, length=steps)
        return head, pos, losses[0]

    return jax.jit(update)


def update_head_clicks(head, pos, h, slates, rewards, learning_rate: float, steps: int):
    """(head, pos f32[K], loss): ``steps`` Adam steps of the click objective on the rewarded
    decisions (h f32[m, D], slates / rewards: per decision, one per shown slot), from the
    slot logits ``pos`` (zeros past their length). Decisions and slots are padded to
    powers of two (padding masked) so few shapes compile; ``loss`` is the first step's."""
    import jax.numpy as jnp

    m, k = len(slates), max(len(s) for s in slates)
    rows, slots = _pow2(m), _pow2(k)
    hh = np.zeros((rows, h.shape[1]), np.float32)
    hh[:m] = h
    items = np.zeros((rows, slots), np.int32)
    clicks = np.zeros((rows, slots), np.float32)
    shown = np.zeros((rows, slots), bool)
    for i, (slate, reward) in enumerate(zip(slates, rewards)):
        items[i, :len(slate)] = slate
        clicks[i, :len(slate)] = np.asarray(reward, np.float32) > 0
        shown[i, :len(slate)] = True
    start = np.zeros(slots, np.float32)
    given = np.asarray(pos, np.float32)[:slots]
    start[:len(given)] = given
    update = _click_updater(float(learning_rate), int(steps))
    head, new_pos, loss = update(head, jnp.asarray(start), jnp.asarray(hh), jnp.asarray(items), jnp.asarray(clicks),
                                 jnp.asarray(shown))
    return head, np.asarray(new_pos)[:k], float(loss)


def main(cfg: Config, log=print) -> int:
    import json

    from rec_jax.serve.http.publish import latest_version, load_head, publish_head
    from rec_jax.serve.recommend import initial_head
    from rec_jax.train.load import load_trained

    if cfg.objective not in OBJECTIVES:
        raise ValueError(f"--objective {cfg.objective!r}: expected one of {', '.join(OBJECTIVES)}")
    if not cfg.model_dir:
        raise ValueError("--model-dir: expected the served train_sequential.py run folder")
    db = Path(cfg.db or Path(cfg.model_dir) / "decisions.db")
    if not db.exists():
        raise FileNotFoundError(f"--db {db}: no decision log there")
    out = cfg.publish_dir or cfg.model_dir
    model, params, _ = load_trained(cfg.model_dir)
    while True:
        version = latest_version(out)
        head, meta = initial_head(model, params), {}
        if version is not None:
            head = load_head(out, version, head)
            meta = json.loads((Path(out) / "published" / version / "meta.json").read_text())
        after_rowid, after_time = resume_point(meta)
        batch = new_rewards(db, after_rowid, cfg.max_clicks, after_time=after_time)
        clicks = batch.num_clicks
        if clicks >= max(cfg.min_clicks, 1):
            note = {"watermark_rowid": batch.watermark_rowid, "watermark": batch.watermark, "clicks": clicks,
                    "rewards": len(batch.rewards), "objective": cfg.objective, "from": version}
            if cfg.objective == "ce":
                rows = [i for i, rewards in enumerate(batch.rewards) if any(r > 0 for r in rewards)]
                h = user_vectors(model, params, [batch.contexts[i] for i in rows], batch.history_len[rows])
                which = [j for j, i in enumerate(rows) for r in batch.rewards[i] if r > 0]
                items = [item for i in rows for item, r in zip(batch.slates[i], batch.rewards[i]) if r > 0]
                head, loss = update_head(head, h[which], np.asarray(items, np.int64), model.config.num_items,
                                         cfg.learning_rate, cfg.steps)
            else:
                h = user_vectors(model, params, batch.contexts, batch.history_len)
                head, pos, loss = update_head_clicks(head, meta.get("position_logits", []), h, batch.slates,
                                                     batch.rewards, cfg.learning_rate, cfg.steps)
                note["position_logits"] = [float(p) for p in pos]
            published = publish_head(out, head, note={**note, "loss": loss})
            log(f"published {published}: {clicks} clicks in {len(batch.rewards)} rewards, {cfg.objective} loss "
                f"{loss:.4f} (from {version or 'the trained head'})")
        elif cfg.once:
            log(f"{clicks} new clicks (< --min-clicks {max(cfg.min_clicks, 1)}): nothing published")
        if cfg.once:
            return 0
        time.sleep(cfg.interval_s)


def cli(argv: list[str] | None = None) -> int:
    return rec_jax.cli.main(Config, main, argv, __doc__)


if __name__ == "__main__":
    sys.exit(cli())
