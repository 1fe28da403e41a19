"""The engine's incremental model view (rec_jax.policies.model_view_cache) against
computations done another way: the model's own ``encode`` of every prefix up to L, the
serving module's one banded pass (``sasrec_kv.rebuild``) beyond L, the re-encoding
engine path, the view rebuilt with new encoder params, and the uninterrupted run."""
from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rec_jax.models import make_model
from rec_jax.models.sasrec import SASRecConfig
from rec_jax.online import EngineConfig, jit_run_chunk, make_run, run_with_checkpoints
from rec_jax.online.checkpointing import to_saveable
from rec_jax.online.large_model import model_policy
from rec_jax.online.model_learning import OnlineLearningConfig, make_online_learning
from rec_jax.policies import _factored
from rec_jax.policies.base import Observation
from rec_jax.policies.model_backed import adapt, item_view, model_observation
from rec_jax.serve import sasrec_kv
from rec_jax.sim.ground_truth import synthetic_ground_truth
from rec_jax.sim.recsys import make_recsys_env

N, U, L, S = 12, 6, 5, 4
CONFIG = SASRecConfig(num_items=N, max_len=L, dim=8, num_layers=2, num_heads=2, ff_dim=16)


@pytest.fixture(scope="module")
def model():
    m = make_model("sasrec", CONFIG)
    return m, m.init(jax.random.key(1))


def _env(slate_size, hist):
    gt = synthetic_ground_truth(jax.random.key(0), U, N, 3)
    sim, ep = make_recsys_env(gt, slate_size=slate_size, history_len=L, initial_history=hist, observe_history=True)
    # every examined item is clicked: each step appends the whole slate to the history
    return sim, ep.replace(offset=jnp.float32(50.0), examination=jnp.ones((slate_size,), jnp.float32))


def _left_pad(seq):
    out = np.zeros(L, np.int32)
    if len(seq):
        out[L - min(L, len(seq)):] = seq[-L:]
    return out


def _obs(hist, count=None):
    """A one-stream observation carrying only ``hist`` (and its count: the view reads nothing else)."""
    return Observation(features=jnp.zeros((N, 0)), available=jnp.ones((N,), bool), scores=jnp.zeros((N,)),
                       history=jnp.asarray(hist, jnp.int32),
                       history_count=None if count is None else jnp.int32(count))


@pytest.mark.parametrize("per_step", [1, pytest.param(2, marks=pytest.mark.slow)])
def test_scores_equal_reencoding_up_to_L_and_the_streaming_pass_beyond(model, per_step):
    m, params = model
    policy, pp, _, _ = model_policy("neural_linear_ucb", m, params, N, per_step, jax.random.key(2))
    # a non-identity adapter and head, so the view's params are exercised too
    pp = pp.replace(view={**pp.view, "adapter": {**pp.view["adapter"], "up": 0.3 * jnp.ones_like(pp.view["adapter"]["up"])},
                          "head": {**pp.view["head"], "w": 1.5 * pp.view["head"]["w"]}})
    view = policy.view
    init, advance, observe = jax.jit(view.init), jax.jit(view.advance), jax.jit(view.observe)
    seq = list(np.random.default_rng(per_step).integers(1, N + 1, 4 * L))
    vs = init(pp, _obs(_left_pad([])))
    for t in range(per_step, len(seq) + 1, per_step):
        obs = _obs(_left_pad(seq[:t]))
        vs, hit = advance(pp, vs, obs)
        assert bool(hit)
        got = observe(pp, vs, obs)
        if t <= L:  # the model's own encode of the left-padded prefix
            want = model_observation(m, pp.view, obs)
            want_scores, want_features = want.scores, want.features
        else:  # the streaming semantics: one banded pass over the last R items
            r = sasrec_kv.rebuild_len(CONFIG)
            tail = np.zeros(r, np.int32)
            tail[r - min(r, t):] = seq[:t][-r:]
            _, h = sasrec_kv.rebuild(CONFIG, params, jnp.asarray(tail), jnp.int32(t))
            want_scores, want_features = item_view(m, pp.view, adapt(pp.view, h), N)
        np.testing.assert_allclose(got.scores, want_scores, rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(_factored.dense(got.features), want_features, rtol=1e-4, atol=1e-5)


def test_advance_misses_what_a_shift_cannot_explain(model):
    m, params = model
    policy, pp, _, _ = model_policy("neural_linear_ucb", m, params, N, 1, jax.random.key(2))
    view = policy.view._replace(init=jax.jit(policy.view.init), advance=jax.jit(policy.view.advance))
    vs = view.init(pp, _obs([0, 0, 3, 4, 5]))
    assert bool(view.advance(pp, vs, _obs([0, 0, 3, 4, 5]))[1])  # nothing new
    assert bool(view.advance(pp, vs, _obs([0, 3, 4, 5, 6]))[1])  # one click
    assert not bool(view.advance(pp, vs, _obs([3, 4, 5, 6, 7]))[1])  # two clicks > max_appends = 1
    assert not bool(view.advance(pp, vs, _obs([0, 0, 9, 9, 1]))[1])  # another user
    same = view.init(pp, _obs([7] * L))
    assert not bool(view.advance(pp, same, _obs([7] * L))[1])  # 0 or 1 appended: ambiguous without a count
    # with the count, L copies of one item are told apart (and a count the windows contradict is a miss)
    counted = view.init(pp, _obs([7] * L, 9))
    kept, hit0 = view.advance(pp, counted, _obs([7] * L, 9))
    grown, hit1 = view.advance(pp, counted, _obs([7] * L, 10))
    assert bool(hit0) and bool(hit1)
    np.testing.assert_array_equal(kept.h, counted.h)
    assert np.abs(np.asarray(grown.h) - np.asarray(counted.h)).max() > 1e-4
    assert not bool(view.advance(pp, counted, _obs([7] * L, 11))[1])  # 2 new > max_appends
    assert not bool(view.advance(pp, counted, _obs([0, 7, 7, 7, 7], 10))[1])


def _metrics_close(a, b):
    np.testing.assert_array_equal(a["log"]["action"], b["log"]["action"])
    for k in ("reward", "propensity"):
        np.testing.assert_allclose(a[k], b[k], rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("variant,slate,modes", [
    ("neural_linear_ucb", 2, ("shared",)),
    pytest.param("neural_linear_ucb", 2, ("per_stream",), marks=pytest.mark.slow),
    pytest.param("softmax", 1, ("shared", "per_stream"), marks=pytest.mark.slow),
    pytest.param("bootstrapped_heads", 1, ("shared",), marks=pytest.mark.slow),
])
def test_engine_with_the_cache_equals_reencoding_while_histories_fit(model, variant, slate, modes):
    m, params = model
    hist = np.zeros((U, L), np.int32)
    hist[:, L - 1] = np.arange(U) + 1  # one item each: L - 1 more fit
    sim, ep = _env(slate, hist)
    policy, pp, spec, _ = model_policy(variant, m, params, N, slate, jax.random.key(2))
    steps = (L - 1) // slate
    out = {}
    for name, p in (("cached", policy), ("reencode", policy._replace(view=None))):
        for mode in modes:
            run = make_run(EngineConfig(num_streams=S, slate_size=slate, mode=mode, log_tuples=True,
                                        log_context="history"), p, sim, spec=spec)
            out[name, mode] = jax.jit(run.run, static_argnums=3)(jax.random.key(3), pp, ep, steps)[1]
    for mode in modes:
        _metrics_close(out["cached", mode], out["reencode", mode])


def test_a_reset_history_held_once_gives_every_stream_the_same_view_state(model):
    # Without initial_history every stream resets to the same (empty) history, which the
    # engine holds once (obs axis None): the states must still come out with the [S] axis.
    m, params = model
    gt = synthetic_ground_truth(jax.random.key(0), U, N, 3)
    sim, ep = make_recsys_env(gt, slate_size=1, history_len=L, observe_history=True)
    policy, pp, spec, _ = model_policy("neural_linear_ucb", m, params, N, 1, jax.random.key(2))
    run = make_run(EngineConfig(num_streams=S, slate_size=1, mode="shared"), policy, sim, spec=spec)
    rs = jax.jit(run.init_run)(jax.random.key(3), pp, ep)
    assert rs.obs.history.ndim == 1  # held once, the case under test
    one = policy.view.init(pp, _obs(rs.obs.history, rs.obs.history_count))
    for got, want in zip(jax.tree.leaves(rs.view_state.states), jax.tree.leaves(one)):
        assert got.shape == (S,) + want.shape
        np.testing.assert_allclose(got, np.broadcast_to(want, got.shape), rtol=1e-6, atol=1e-6)


@functools.partial(jax.jit, static_argnums=0)
def _init_all(view, params, obs):
    return jax.vmap(lambda h, c: view.init(params, _obs(h, c)))(obs.history, obs.history_count)


@functools.partial(jax.jit, static_argnums=0)
def _advance_all(view, params, states, obs):
    return jax.vmap(lambda s, h, c: view.advance(params, s, _obs(h, c)))(states, obs.history, obs.history_count)


@pytest.mark.slow  # ~13 s (a one-step chunk compiled, L + 3 steps); the default suite was over 6 min cold
def test_encoder_update_rebuilds_the_states_and_head_update_keeps_them(model):
    m, params = model
    hist = np.tile(np.arange(1, L + 1, dtype=np.int32), (U, 1))  # full windows: beyond L at once
    sim, ep = _env(1, hist)
    policy, pp, spec, _ = model_policy("neural_linear_ts", m, params, N, 1, jax.random.key(2))
    run, view = make_run(EngineConfig(num_streams=S, mode="shared"), policy, sim, spec=spec), policy.view
    chunk = jax.jit(run.run_chunk, static_argnums=1)  # one compile: one step at a time
    rs = chunk(run.init_run(jax.random.key(3), pp, ep), 1)[0]
    for _ in range(L + 1):  # streaming states now differ from a window re-encode
        rs = chunk(rs, 1)[0]
    enc = rs.policy_params.view["encoder"]
    new_enc = jax.tree.map(lambda x: x * 1.1, enc)
    for what, new_view in (("encoder", {**rs.policy_params.view, "encoder": new_enc}),
                           ("head", {**rs.policy_params.view, "head": {**rs.policy_params.view["head"],
                                                                     "w": rs.policy_params.view["head"]["w"] * 2}})):
        before = rs.replace(policy_params=rs.policy_params.replace(view=new_view))
        after = chunk(before, 1)[0]
        p = before.policy_params
        states = rs.view_state.states
        if what == "encoder":  # rebuilt from the window with the new encoder, then advanced
            states = _init_all(view, p, before.obs)
        expected, hit = _advance_all(view, p, states, after.obs)
        assert bool(jnp.all(hit))
        np.testing.assert_allclose(after.view_state.states.h, expected.h, rtol=1e-5, atol=1e-6)
        stale = _advance_all(view, p, rs.view_state.states, after.obs)[0]
        if what == "encoder":  # the kept states would be something else
            assert np.abs(np.asarray(stale.h) - np.asarray(expected.h)).max() > 1e-3
            assert all(np.array_equal(a, b) for a, b in zip(jax.tree.leaves(after.view_state.built_with),
                                                            jax.tree.leaves(new_enc)))
        else:  # a head update keeps the streaming states (a rebuild would forget beyond L)
            rebuilt = _init_all(view, p, before.obs)
            assert np.abs(np.asarray(rebuilt.h) - np.asarray(rs.view_state.states.h)).max() > 1e-3


@pytest.mark.slow
@pytest.mark.parametrize("trainable", ["full", "adapter"])
def test_online_learning_flags_the_cache_stale_only_for_encoder_updates(model, trainable):
    m, params = model
    hist = np.tile(np.arange(1, L + 1, dtype=np.int32), (U, 1))
    sim, ep = _env(1, hist)
    policy, pp, spec, _ = model_policy("neural_linear_ts", m, params, N, 1, jax.random.key(2))
    run = make_run(EngineConfig(num_streams=S, mode="shared", log_tuples=True, log_context="history",
                                log_marginal=False), policy, sim, spec=spec)
    init, run_online = make_online_learning(run, m, OnlineLearningConfig(update_every=3, trainable=trainable,
                                                                         learning_rate=1e-2))
    rs = run.init_run(jax.random.key(3), pp, ep)
    rs, _, _ = jax.jit(run_online, static_argnums=2)(rs, init(rs), 2)
    same = all(np.array_equal(a, b) for a, b in zip(jax.tree.leaves(rs.view_state.built_with),
                                                    jax.tree.leaves(rs.policy_params.view["encoder"])))
    # "full": the last update changed the encoder after the chunk, so the next step rebuilds
    assert same == (trainable == "adapter")


@pytest.mark.slow
def test_resume_is_bit_identical_with_the_cache(model, tmp_path):
    m, params = model
    hist = np.tile(np.arange(1, L + 1, dtype=np.int32), (U, 1))
    sim, ep = _env(1, hist)
    policy, pp, spec, _ = model_policy("neural_linear_ts", m, params, N, 1, jax.random.key(2))
    run = make_run(EngineConfig(num_streams=S, mode="per_stream"), policy, sim, spec=spec)
    key, chunk = jax.random.key(4), jit_run_chunk(run)
    full_state, full = run_with_checkpoints(run, key, pp, ep, 9, ckpt_dir=tmp_path / "a", chunk_size=3,
                                            run_chunk_jit=chunk)
    run_with_checkpoints(run, key, pp, ep, 9, ckpt_dir=tmp_path / "b", chunk_size=3, max_chunks=2,
                         run_chunk_jit=chunk)
    resumed_state, resumed = run_with_checkpoints(run, key, pp, ep, 9, ckpt_dir=tmp_path / "b", chunk_size=3)
    assert full_state.view_state is not None
    for a, b in zip(jax.tree.leaves(to_saveable(full_state)), jax.tree.leaves(to_saveable(resumed_state)),
                    strict=True):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(full["reward"], resumed["reward"])


SHARDED_SCRIPT = """
import jax, jax.numpy as jnp, numpy as np
from rec_jax.models import make_model
from rec_jax.models.sasrec import SASRecConfig
from rec_jax.online import EngineConfig, make_run, shard_streams, streams_mesh
from rec_jax.online.large_model import model_policy
from rec_jax.sim.ground_truth import synthetic_ground_truth
from rec_jax.sim.recsys import make_recsys_env

assert len(jax.devices()) == 4, jax.devices()
N, U, L = 12, 6, 5
gt = synthetic_ground_truth(jax.random.key(0), U, N, 3)
hist = np.tile(np.arange(1, L + 1, dtype=np.int32), (U, 1))
sim, ep = make_recsys_env(gt, slate_size=1, history_len=L, initial_history=hist, observe_history=True)
model = make_model("sasrec", SASRecConfig(num_items=N, max_len=L, dim=8, num_layers=2, num_heads=2, ff_dim=16))
policy, pp, spec, _ = model_policy("neural_linear_ts", model, model.init(jax.random.key(1)), N, 1, jax.random.key(2))
for mode in ("per_stream", "shared"):
    run = make_run(EngineConfig(num_streams=8, mode=mode, log_tuples=True, log_context="none"), policy, sim, spec=spec)
    chunk = jax.jit(run.run_chunk, static_argnums=1)
    state0 = jax.jit(run.init_run)(jax.random.key(5), pp, ep)
    plain_state, plain = chunk(state0, 2 * L)
    sharded0 = shard_streams(state0, streams_mesh(), mode)
    assert len(sharded0.view_state.states.h.sharding.device_set) == 4
    sharded_state, sharded = chunk(sharded0, 2 * L)
    np.testing.assert_array_equal(plain["log"]["action"], sharded["log"]["action"])
    for a, b in zip(jax.tree.leaves(plain), jax.tree.leaves(sharded)):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(plain_state.view_state.states.h, sharded_state.view_state.states.h, rtol=1e-5, atol=1e-5)
    if mode == "per_stream":  # each device steps its own streams (make_run's mesh: shard_map)
        mapped = make_run(EngineConfig(num_streams=8, mode=mode, log_tuples=True, log_context="none"), policy, sim,
                          spec=spec, mesh=streams_mesh())
        mapped_state, out = jax.jit(mapped.run_chunk, static_argnums=1)(sharded0, 2 * L)
        np.testing.assert_array_equal(plain["log"]["action"], out["log"]["action"])
        for a, b in zip(jax.tree.leaves(plain), jax.tree.leaves(out)):
            np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(plain_state.view_state.states.h, mapped_state.view_state.states.h, rtol=1e-5,
                                   atol=1e-5)
print("SHARDING_OK")
"""


@pytest.mark.slow
def test_sharded_streams_with_the_cache_equal_unsharded():
    import os
    import subprocess
    import sys

    env = dict(os.environ, JAX_PLATFORMS="cpu", XLA_FLAGS="--xla_force_host_platform_device_count=4")
    proc = subprocess.run([sys.executable, "-c", SHARDED_SCRIPT], env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0 and "SHARDING_OK" in proc.stdout, proc.stdout[-3000:] + proc.stderr[-3000:]


@pytest.mark.slow
def test_gru_view_equals_reencoding_up_to_L_and_the_whole_stream_beyond():
    from rec_jax.models.gru4rec import GRU4RecConfig
    from rec_jax.serve import make_incremental

    m = make_model("gru4rec", GRU4RecConfig(num_items=N, dim=8, hidden_dim=8, num_layers=1, max_len=L))
    params = m.init(jax.random.key(0))
    policy, pp, _, _ = model_policy("neural_linear_ts", m, params, N, 1, jax.random.key(2))
    advance, observe = jax.jit(policy.view.advance), jax.jit(policy.view.observe)
    seq = list(np.random.default_rng(3).integers(1, N + 1, 2 * L))
    vs = policy.view.init(pp, _obs(_left_pad([]), 0))
    for t in range(1, len(seq) + 1):
        obs = _obs(_left_pad(seq[:t]), t)
        vs, hit = advance(pp, vs, obs)
        assert bool(hit)
        if t <= L:
            want = model_observation(m, pp.view, obs).scores
        else:  # the recurrent state over the whole stream (the GRU has no window)
            _, h = make_incremental(m).rebuild(params, jnp.asarray(seq[:t], jnp.int32), jnp.int32(t))
            want = item_view(m, pp.view, adapt(pp.view, h), N)[0]
        np.testing.assert_allclose(observe(pp, vs, obs).scores, want, rtol=1e-4, atol=1e-5)


@pytest.mark.slow
def test_runs_vmapped_over_seeds_equal_each_seed_alone(model):
    m, params = model
    hist = np.tile(np.arange(1, L + 1, dtype=np.int32), (U, 1))
    sim, ep = _env(2, hist)
    policy, pp, spec, _ = model_policy("neural_linear_ts", m, params, N, 2, jax.random.key(2))
    run = make_run(EngineConfig(num_streams=S, slate_size=2, mode="shared"), policy, sim, spec=spec)
    keys = jax.random.split(jax.random.key(7), 3)
    run_seed = lambda k: run.run(k, pp, ep, 2 * L)[1]["reward"]
    together = jax.jit(jax.vmap(run_seed))(keys)
    alone = [jax.jit(run_seed)(k) for k in keys]
    np.testing.assert_array_equal(np.asarray(together), np.stack(alone))
