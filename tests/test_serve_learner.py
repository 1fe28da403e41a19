"""The online learner: clicks in the decision log -> an Adam-updated head, published as a
version the service can swap in; checked against a direct optax computation on
re-encoded contexts (--objective ce) and a NumPy BCE and Adam step (--objective click);
successive updates read every reward once, whatever their commit times (the swap of a
published head under load: test_serve_head_swap.py)."""
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
    assert meta["clicks"] == len(pairs) and meta["watermark"] == 1.0 and meta["watermark_rowid"] == len(rows)
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


def _log_rewards(db, rows, received, prefix):
    """Decisions ``prefix0, prefix1, ...`` and their rewards, every reward committed at ``received``."""
    log = DecisionLog(db, clock=lambda: float(received))
    for i, (context, slate, rewards) in enumerate(rows):
        log.log_decisions([Decision(id=f"{prefix}{i}", user=f"{prefix}u{i}", context=context, slate=slate,
                                    propensities=[1.0] * len(slate), propensity_kind="exact", policy="greedy",
                                    policy_params={}, model_version="m", created=float(received), expires=1e12)])
        log.log_reward(f"{prefix}{i}", rewards)
    log.close()


def _rowid(db, decision_id):
    import sqlite3

    con = sqlite3.connect(db)
    try:
        return con.execute("SELECT rowid FROM rewards WHERE decision_id = ?", (decision_id,)).fetchone()[0]
    finally:
        con.close()


def _meta(folder, version):
    return json.loads((folder / "published" / version / "meta.json").read_text())


def test_successive_updates_read_every_click_once_when_rewards_share_a_commit_time(run_dir, tmp_path, monkeypatch):
    """The learner's ce data path (which clicks, with which context) recorded by stand-ins for
    the encoder and the Adam update: the logged rows decide what every update must see."""
    from rec_jax.serve.http import learner

    folder, model, _ = run_dir
    seen_contexts, updates = [], []

    def fake_user_vectors(model, params, contexts, lengths):
        h = np.zeros((len(contexts), model.config.dim), np.float32)
        h[:, 0] = np.arange(len(seen_contexts), len(seen_contexts) + len(contexts))  # which context a row is
        seen_contexts.extend(contexts)
        return h

    def fake_update_head(head, h, items, num_items, learning_rate, steps):
        updates.append([(seen_contexts[int(row[0])], int(item)) for row, item in zip(h, items)])
        return head, 0.0

    monkeypatch.setattr(learner, "user_vectors", fake_user_vectors)
    monkeypatch.setattr(learner, "update_head", fake_update_head)
    clicks_per_row = [1, 2, 0, 1, 3, 1, 0, 2]  # 10 clicks; at most 6 an update: 4 (rows 0-3), then 6
    rows = [([i + 1, i + 2], [i + 3, i + 4, i + 5], [1.0] * c + [0.0] * (3 - c)) for i, c in enumerate(clicks_per_row)]
    db, out = tmp_path / "d.db", tmp_path / "out"
    _log_rewards(db, rows, received=1.0, prefix="a")  # every reward: the same commit time
    expected = [(context, item) for context, slate, rewards in rows for item, r in zip(slate, rewards) if r > 0]
    cfg = Config(model_dir=str(folder), db=str(db), publish_dir=str(out), once=True, min_clicks=1, max_clicks=6)
    for _ in range(3):  # the third finds nothing new
        assert main(cfg, log=lambda s: None) == 0
    assert [len(u) for u in updates] == [4, 6] and latest_version(out) == "v0002"
    assert updates[0] + updates[1] == expected  # every click once, oldest first
    assert _meta(out, "v0001")["watermark_rowid"] == _rowid(db, "a3")
    assert _meta(out, "v0002")["watermark_rowid"] == _rowid(db, "a7")
    # a version of an older learner (commit-time watermark only) resumes after that time ...
    publish_head(out, load_head(out, "v0002", initial_head(model, _params(folder))),
                 note={"watermark": 1.0})
    later = [([20, 21], [22, 23, 24], [0.0, 1.0, 1.0]), ([25], [26, 27, 28], [1.0, 0.0, 0.0])]
    _log_rewards(db, later, received=2.0, prefix="b")
    main(cfg, log=lambda s: None)
    assert updates[2] == [([20, 21], 23), ([20, 21], 24), ([25], 26)]
    assert _meta(out, "v0004")["watermark_rowid"] == _rowid(db, "b1")
    # ... and from there on by rowid: a reward committed at the same time as the last one read is not lost
    _log_rewards(db, [([29], [30, 1, 2], [0.0, 0.0, 1.0])], received=2.0, prefix="c")
    main(cfg, log=lambda s: None)
    assert updates[3] == [([29], 2)] and len(updates) == 4


def _params(folder):
    from rec_jax.train.load import load_trained

    return load_trained(folder)[1]


def _bce_and_adam_step(table, bias, pos, h, slates, rewards, lr):
    """NumPy (float64): the mean BCE of every shown slot, P(click) = sigmoid(h . table[item] +
    bias[item] + pos[slot]), and the parameters after one Adam step on it (the first Adam step
    moves each parameter by -lr * g / (|g| + 1e-8))."""
    table, bias, pos = (np.asarray(a, np.float64) for a in (table, bias, pos))
    scores_all = np.asarray(h, np.float64) @ table.T + bias  # the service's score of every item
    losses, grads = [], []
    g_table, g_bias, g_pos = np.zeros_like(table), np.zeros_like(bias), np.zeros_like(pos)
    for b, (slate, reward) in enumerate(zip(slates, rewards)):
        for k, (item, r) in enumerate(zip(slate, reward)):
            z, y = scores_all[b, item] + pos[k], float(r > 0)
            p = 1.0 / (1.0 + np.exp(-z))
            losses.append(-(y * np.log(p) + (1 - y) * np.log(1 - p)))
            grads.append((b, k, item, p - y))
    for b, k, item, g in grads:
        g /= len(losses)
        g_table[item] += g * np.asarray(h[b], np.float64)
        g_bias[item] += g
        g_pos[k] += g

    def step(x, g):
        return x - lr * g / (np.abs(g) + 1e-8)

    return np.mean(losses), step(table, g_table), step(bias, g_bias), step(pos, g_pos)


def test_click_objective_matches_a_numpy_bce_and_adam_step(run_dir, tmp_path, monkeypatch):
    from rec_jax.serve.http import learner
    from rec_jax.serve.http.learner import update_head_clicks

    # a tiny head, fixed user vectors; 3 decisions (padded to 4) of 3 and 2 slots (padded to 4),
    # an item shown twice, slot logits given for 2 slots only (the third starts at 0)
    rng = np.random.default_rng(3)
    n, d, lr = 5, 3, 0.05
    head = Head(table=rng.normal(size=(n + 1, d)).astype(np.float32), bias=rng.normal(size=n + 1).astype(np.float32))
    h = rng.normal(size=(3, d)).astype(np.float32)
    slates, rewards, pos = [[2, 5, 1], [4, 2], [3, 1, 5]], [[1.0, 0.0, 0.0], [0.0, 0.0], [0.0, 1.0, 1.0]], [0.3, -0.2]
    loss, table, bias, new_pos = _bce_and_adam_step(head.table, head.bias, pos + [0.0], h, slates, rewards, lr)
    got, got_pos, got_loss = update_head_clicks(head, pos, h, slates, rewards, lr, steps=1)
    assert got_loss == pytest.approx(loss, rel=1e-5)
    np.testing.assert_allclose(got.table, table, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(got.bias, bias, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(got_pos, new_pos, rtol=1e-5, atol=1e-6)
    assert got.table[0].tolist() == head.table[0].tolist()  # padding slots (item 0) learn nothing
    # through the learner: every shown slot of every rewarded decision (a slate without a click too),
    # h stood in by a fixed function of the context, the slot logits carried to the next version
    folder, model, _ = run_dir

    def h_of(context):
        return (0.3 * np.cos(np.arange(model.config.dim) + sum(context))).astype(np.float32)

    monkeypatch.setattr(learner, "user_vectors", lambda model, params, contexts, lengths:
                        np.stack([h_of(c) for c in contexts]))
    rows = [([1, 2], [3, 4, 5], [0.0, 1.0, 0.0]), ([6], [7, 8, 9], [0.0, 0.0, 0.0]),
            ([10, 11, 12], [13, 14], [1.0, 1.0])]
    db, out = tmp_path / "d.db", tmp_path / "out"
    _log_rewards(db, rows, received=1.0, prefix="a")
    cfg = Config(model_dir=str(folder), db=str(db), publish_dir=str(out), once=True, min_clicks=1, steps=1,
                 learning_rate=lr, objective="click")
    assert main(cfg, log=lambda s: None) == 0
    start = initial_head(model, _params(folder))
    hs = np.stack([h_of(c) for c, _, _ in rows])
    loss, table, bias, new_pos = _bce_and_adam_step(start.table, start.bias, np.zeros(3), hs,
                                                    [s for _, s, _ in rows], [r for _, _, r in rows], lr)
    meta = _meta(out, "v0001")
    assert meta["objective"] == "click" and meta["clicks"] == 3 and meta["rewards"] == 3
    assert meta["loss"] == pytest.approx(loss, rel=1e-5)
    np.testing.assert_allclose(meta["position_logits"], new_pos, rtol=1e-5, atol=1e-6)
    v1 = load_head(out, "v0001", start)
    np.testing.assert_allclose(v1.table, table, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(v1.bias, bias, rtol=1e-5, atol=1e-6)
    more = [([15], [16, 17, 18], [0.0, 0.0, 1.0])]
    _log_rewards(db, more, received=1.0, prefix="b")
    main(cfg, log=lambda s: None)
    loss2 = _bce_and_adam_step(v1.table, v1.bias, new_pos, h_of([15])[None], [more[0][1]], [more[0][2]], lr)[0]
    assert _meta(out, "v0002")["loss"] == pytest.approx(loss2, rel=1e-5)  # from v0001's head and slot logits


def test_an_unknown_objective_is_one_line(capsys):
    from rec_jax.serve.http.learner import cli

    with pytest.raises(ValueError, match=r"^--objective 'hinge': expected one of ce, click$"):
        main(Config(model_dir="x", objective="hinge"))
    assert cli(["--model-dir", "x", "--objective", "hinge"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "'hinge'" in err and "ce, click" in err
