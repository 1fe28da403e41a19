"""The online learner: clicks in the decision log -> an Adam-updated head, published as a
version the service can swap in; checked against a direct optax computation on
re-encoded contexts."""
import json

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from rec_jax import checkpoint, runs
from rec_jax.models import make_model
from rec_jax.serve.http.decision_log import Decision, DecisionLog
from rec_jax.serve.http.learner import Config, main
from rec_jax.serve.http.publish import latest_version, load_head, publish_head
from rec_jax.serve.recommend import Head, initial_head
from rec_jax.train.config import get_preset, model_config

N = 30


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("run")
    config = get_preset("tiny-sasrec")
    model = make_model(config.model, model_config(config, N))
    checkpoint.save(folder / "checkpoints", 0, {"best_params": jax.jit(model.init)(jax.random.key(0))})
    runs.write_config(folder, config)
    return folder, model, config


def _log_clicks(db, rows, start):
    log = DecisionLog(db, clock=lambda: float(start))
    for i, (context, slate, rewards) in enumerate(rows):
        did = f"d{start}-{i}"
        log.log_decisions([Decision(id=did, user=f"u{i}", context=context, slate=slate, propensities=[1.0] * 3,
                                    propensity_kind="exact", policy="greedy", policy_params={}, model_version="m",
                                    created=float(start), expires=1e12)])
        log.log_reward(did, rewards)
    log.close()


def _reference(model, params, head, pairs, steps, lr):
    """Adam on full-softmax CE of the clicked items, user vectors from model.encode."""
    L = model.config.max_len
    windows = np.zeros((len(pairs), L), np.int32)
    for i, (context, _) in enumerate(pairs):
        windows[i, L - len(context):] = context
    h = jax.jit(model.encode)(params, jnp.asarray(windows))  # (eager flax compiles op by op: slow)
    items = jnp.asarray([item for _, item in pairs])

    def loss(hd):
        logits = h @ hd.table.T + hd.bias
        logits = logits.at[:, 0].set(-jnp.inf)  # padding is never a target
        return jnp.mean(jax.nn.logsumexp(logits, axis=1) - logits[jnp.arange(len(pairs)), items])

    tx = optax.adam(lr)

    @jax.jit
    def step(head, state):
        updates, state = tx.update(jax.grad(loss)(head), state, head)
        return optax.apply_updates(head, updates), state

    state = tx.init(head)
    for _ in range(steps):
        head, state = step(head, state)
    return head


def test_learner_publishes_the_head_update_of_the_logged_clicks(run_dir, tmp_path):
    folder, model, config = run_dir
    from rec_jax.train.load import load_trained

    _, params, _ = load_trained(folder)
    rng = np.random.default_rng(0)
    rows = []
    for _ in range(40):  # contexts of at most L items: re-encoding is exact there
        context = [int(i) for i in rng.choice(np.arange(1, N + 1), rng.integers(1, config.max_len + 1), False)]
        rows.append((context, [int(i) for i in rng.choice(np.arange(1, N + 1), 3, False)],
                     [float(rng.random() < 0.4) for _ in range(3)]))
    db = tmp_path / "d.db"
    _log_clicks(db, rows, start=1)
    assert main(Config(model_dir=str(folder), db=str(db), once=True, min_clicks=1, steps=3), log=lambda s: None) == 0
    assert latest_version(folder) == "v0001"
    pairs = [(c, item) for c, slate, rewards in rows for item, r in zip(slate, rewards) if r > 0]
    start = initial_head(model, params)
    expected = _reference(model, params, start, pairs, steps=3, lr=1e-3)
    got = load_head(folder, "v0001", start)
    np.testing.assert_allclose(got.table, expected.table, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(got.bias, expected.bias, rtol=1e-4, atol=1e-6)
    assert not np.allclose(got.table, start.table)  # the update did something
    meta = json.loads((folder / "published" / "v0001" / "meta.json").read_text())
    assert meta["clicks"] == len(pairs) and meta["watermark"] == 1.0
    # no new clicks: nothing published; new ones: v0002, learned from v0001 on the new clicks only
    assert main(Config(model_dir=str(folder), db=str(db), once=True, min_clicks=1, steps=3), log=lambda s: None) == 0
    assert latest_version(folder) == "v0001"
    more = [([5, 6], [7, 8, 9], [1.0, 0.0, 1.0])]
    _log_clicks(db, more, start=2)
    main(Config(model_dir=str(folder), db=str(db), once=True, min_clicks=1, steps=2), log=lambda s: None)
    assert latest_version(folder) == "v0002"
    second = _reference(model, params, got, [([5, 6], 7), ([5, 6], 9)], steps=2, lr=1e-3)
    np.testing.assert_allclose(load_head(folder, "v0002", start).table, second.table, rtol=1e-4, atol=1e-6)


def test_a_publication_cut_short_leaves_the_last_good_version(tmp_path):
    head = Head(table=np.ones((4, 2), np.float32), bias=np.zeros(4, np.float32))
    assert publish_head(tmp_path, head) == "v0001"
    (tmp_path / "published" / ".v0002.half").mkdir()  # a learner killed while writing
    (tmp_path / "published" / ".v0002.half" / "head.npz").write_bytes(b"garbage")
    assert latest_version(tmp_path) == "v0001"
    np.testing.assert_array_equal(load_head(tmp_path, "v0001", head).table, head.table)
    bad = Head(table=np.ones((5, 2), np.float32), bias=np.zeros(5, np.float32))
    with pytest.raises(ValueError, match="shapes"):
        load_head(tmp_path, "v0001", bad)


def test_swapping_a_published_head_recompiles_nothing(tmp_path):
    from rec_jax.serve.http.ranker import Ranker, RankerConfig, RankRequest

    model = make_model("sasrec", model_config(get_preset("tiny-sasrec"), N))
    params = jax.jit(model.init)(jax.random.key(1))
    ranker = Ranker(model, params, RankerConfig(buckets=(4,), max_slate=3, capacity=4), jax.random.key(0),
                    model_version="t")
    ranker.warmup()
    compute, commit = ranker.policies["epsilon_greedy"][2].compiled
    sizes = (compute._cache_size(), commit._cache_size())
    start = initial_head(model, params)
    publish_head(tmp_path, Head(table=np.asarray(start.table) + 0.1, bias=np.ones(N + 1, np.float32)))
    ranker.swap_head(load_head(tmp_path, "v0001", start), "v0001")
    out = ranker.rank([RankRequest(user="a", events=(3,), slate_size=3)])
    assert out[0].slate and ranker.model_version == "t+v0001"
    assert (compute._cache_size(), commit._cache_size()) == sizes  # same placement: the same executables
    np.testing.assert_allclose(np.asarray(ranker.head.bias), 1.0)
