"""User-state cache (LRU/FIFO), micro-batching, the serving step and the online head."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rec_jax.models import make_model
from rec_jax.models.sasrec import SASRecConfig
from rec_jax.serve.online import head_loss, make_head_updater
from rec_jax.serve.recommend import Feedback, Head
from rec_jax.serve.server import Server, ServerConfig
from rec_jax.serve.stream import MicroBatcher
from rec_jax.serve.user_cache import HistoryStore, SlotTable


def _reference_cache(accesses, capacity, policy):
    """Brute force: a list of cached users, oldest first; returns hit flags."""
    cached, hits = [], []
    for batch in accesses:
        for u in batch:
            hits.append(u in cached)
            if u in cached and policy == "lru":
                cached.remove(u)
                cached.append(u)
        for u in batch:
            if u not in cached:
                victims = [v for v in cached if v not in batch]
                if len(cached) >= capacity:
                    if not victims:
                        continue  # served from scratch, not cached
                    cached.remove(victims[0])
                cached.append(u)
    return hits


@pytest.mark.parametrize("policy", ["lru", "fifo"])
def test_slot_table_hits_match_a_brute_force_cache(policy):
    rng = np.random.default_rng(0)
    accesses = [list(rng.choice(9, size=rng.integers(1, 5), replace=False)) for _ in range(200)]
    table = SlotTable(capacity=4, scratch=4, policy=policy)
    hits = []
    for batch in accesses:
        slots, miss = table.assign(batch)
        hits.extend(~miss)
        assert len(set(slots.tolist())) == len(batch)  # distinct rows within a batch
        assert all(0 <= s < table.capacity + table.scratch for s in slots)
    assert hits == _reference_cache(accesses, 4, policy)
    assert table.hits == sum(hits) and table.misses == len(hits) - sum(hits)


def test_slot_table_smaller_than_batch_uses_scratch_rows():
    table = SlotTable(capacity=2, scratch=3)
    slots, miss = table.assign([5, 6, 7])
    assert miss.all() and sorted(slots.tolist()) == [0, 1, 2]  # 2 cached slots, 1 scratch row
    assert len(table.order) == 2
    with pytest.raises(ValueError, match="distinct"):
        table.assign([1, 1])


def test_history_tails_are_left_padded_last_items():
    store = HistoryStore.from_sequences([np.array([1, 2, 3]), np.array([], np.int32)])
    store.append([1, 0], [9, 4])
    np.testing.assert_array_equal(store.tails([0, 1], 3), [[2, 3, 4], [0, 0, 9]])


def test_micro_batches_hold_distinct_users_and_keep_each_users_order():
    rng = np.random.default_rng(1)
    users = rng.integers(0, 5, size=60)
    batcher = MicroBatcher(users, 3)
    pending = list(range(60))  # brute-force reference: scan the waiting events in arrival order and
    seen_events = []           # take each user's earliest one, at most 3 users a batch
    while batcher.remaining:
        idx = batcher.next_batch()
        expected, batch_users = [], set()
        for e in pending:
            if len(expected) < 3 and users[e] not in batch_users:
                expected.append(e)
            batch_users.add(users[e])  # a user's later events wait behind their earliest
        pending = [e for e in pending if e not in expected]
        assert idx.tolist() == expected
        seen_events.extend(idx.tolist())
    assert sorted(seen_events) == list(range(60))
    for u in range(5):  # per-user order preserved
        order = [e for e in seen_events if users[e] == u]
        assert order == sorted(order)
    # only arrived events are taken
    assert MicroBatcher(users, 3).next_batch(arrived=1).tolist() == [0]


SMALL = SASRecConfig(num_items=12, max_len=4, dim=8, num_layers=2, num_heads=2, ff_dim=16)


@pytest.fixture(scope="module")
def served_model():
    model = make_model("sasrec", SMALL)
    return model, model.init(jax.random.key(0))


def _replay(model, params, histories, users, items, cfg):
    server = Server(model, params, histories, cfg, jax.random.key(7))
    out = []
    for start in range(0, len(users), cfg.batch_size):
        idx = np.arange(start, min(start + cfg.batch_size, len(users)))
        out.append(server.serve(users[idx], items[idx], idx))
        server.maybe_update()
    return server, [np.concatenate(x) for x in zip(*out)]


@pytest.mark.slow  # two serving runs over every event
def test_bounded_cache_returns_the_slates_of_an_unbounded_cache(served_model):
    model, params = served_model
    rng = np.random.default_rng(2)
    histories = [rng.integers(1, 13, size=n) for n in (0, 2, 6, 9, 1, 3)]
    # batches of 3 distinct users, histories beyond L and beyond R = 7 (rebuilt after eviction)
    users = np.concatenate([rng.choice(6, size=3, replace=False) for _ in range(12)])
    items = rng.integers(1, 13, size=len(users))
    base = ServerConfig(batch_size=3, update_every=3, policy="epsilon_greedy", epsilon=0.3, slate_size=3,
                        eval_k=3, learning_rate=0.05, mask_seen=False)
    small, (slate_s, prop_s, top_s) = _replay(model, params, histories, users, items,
                                              ServerConfig(**{**base.__dict__, "capacity": 2}))
    big, (slate_b, prop_b, top_b) = _replay(model, params, histories, users, items,
                                            ServerConfig(**{**base.__dict__, "capacity": 6}))
    assert small.table.evictions > 0 and small.rebuilt_rows > big.rebuilt_rows
    np.testing.assert_array_equal(slate_s, slate_b)
    np.testing.assert_array_equal(top_s, top_b)
    np.testing.assert_allclose(prop_s, prop_b, rtol=1e-6)
    assert small.num_updates == len(users) // 3


def test_greedy_step_is_the_masked_top_k_of_the_model_scores(served_model):
    model, params = served_model
    histories = [np.array([1, 2]), np.array([3])]
    cfg = ServerConfig(batch_size=2, capacity=2, update_every=2, policy="greedy", slate_size=4, eval_k=4,
                       online=False)
    server = Server(model, params, histories, cfg, jax.random.key(0))
    slate, propensity, topk = server.serve(np.array([0, 1]), np.array([5, 6]), np.array([0, 1]))
    windows = np.array([[0, 1, 2, 5], [0, 0, 3, 6]], np.int32)
    logits = np.array(model.score(params, model.encode(params, jnp.asarray(windows))))
    logits[0, [1, 2, 5]] = -np.inf  # seen items are masked
    logits[1, [3, 6]] = -np.inf
    logits[:, 0] = -np.inf
    np.testing.assert_array_equal(slate, np.argsort(-logits, axis=1)[:, :4])
    np.testing.assert_array_equal(topk, slate)
    np.testing.assert_allclose(propensity, 1.0)


def test_uniform_exploration_propensities_are_one_over_items_left(served_model):
    model, params = served_model
    cfg = ServerConfig(batch_size=1, capacity=1, update_every=1, policy="epsilon_greedy", epsilon=1.0,
                       slate_size=3, online=False)
    server = Server(model, params, [np.array([1, 2, 3])], cfg, jax.random.key(0))
    slate, propensity, _ = server.serve(np.array([0]), np.array([4]), np.array([0]))
    left = 12 - 4  # 12 items, 4 seen
    np.testing.assert_allclose(propensity[0], [1 / left, 1 / (left - 1), 1 / (left - 2)], rtol=1e-6)
    assert not set(slate[0].tolist()) & {1, 2, 3, 4} and len(set(slate[0].tolist())) == 3


def test_feedback_ring_and_head_update():
    fb = Feedback.empty(4, 2)
    h = jnp.arange(6, dtype=jnp.float32).reshape(3, 2)
    fb = fb.push(h, jnp.array([1, 2, 3]), jnp.array([True, False, True]))
    fb = fb.push(h, jnp.array([4, 5, 6]), jnp.array([True, True, True]))
    # rows written in order 0..4 wrap around a ring of 4: items [1, 3, 4, 5, 6] -> [6, 3, 4, 5]
    np.testing.assert_array_equal(fb.item, [6, 3, 4, 5])
    assert int(fb.ptr) == 1 and bool(fb.valid.all())
    rng = np.random.default_rng(3)
    head = Head(table=jnp.asarray(rng.normal(size=(7, 2)), jnp.float32), bias=jnp.zeros(7))
    logits = np.asarray(fb.h) @ np.asarray(head.table).T
    logits[:, 0] = -1e9
    ref = np.mean(np.log(np.exp(logits).sum(1)) - logits[np.arange(4), np.asarray(fb.item)])
    np.testing.assert_allclose(head_loss(head, fb.h, fb.item, fb.valid, 6), ref, rtol=1e-5)
    updater = make_head_updater(6, learning_rate=0.1, steps=5)
    (new_head, _), _ = updater.update(updater.init(head), fb)
    assert float(head_loss(new_head, fb.h, fb.item, fb.valid, 6)) < ref


def test_no_step_recompiles_after_an_online_update(served_model):
    """Each bucket is compiled once, by warmup: the head an online update returns is
    placed like the one warmup saw (with a restored, committed model, an uncommitted
    initial head bias made the first step of every bucket after an update compile
    again: 1.3-2 s each on ML-100K)."""
    model, params = served_model
    params = jax.device_put(params, jax.devices()[0])  # committed, as a restored checkpoint is
    histories = [np.array([1, 2]), np.array([3]), np.array([4, 5, 6]), np.array([], np.int32), np.array([7])]
    cfg = ServerConfig(batch_size=4, capacity=5, update_every=4, slate_size=2, eval_k=2)
    server = Server(model, params, histories, cfg, jax.random.key(3))
    server.warmup()
    jitted = (*server.fns["recommend"].compiled, server.fns["rebuild"])
    sizes = [f._cache_size() for f in jitted]
    server.serve(np.array([0, 1, 2, 3]), np.array([8, 9, 10, 11]), np.arange(4))
    assert server.maybe_update()  # the head is now an output of the jitted update
    server.serve(np.array([4]), np.array([12]), np.array([4]))  # bucket 1
    server.serve(np.array([2, 0, 1]), np.array([1, 3, 4]), np.arange(5, 8))  # bucket 4
    assert [f._cache_size() for f in jitted] == sizes
