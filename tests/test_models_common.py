"""The SequentialModel contract, checked for every registered model (tiny configs)."""
import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rec_jax.models import MODEL_CONFIGS, MODEL_NAMES, PAD_LOGIT, make_model, mask_pad_column, model_info
from rec_jax.models import base

N, L, D = 20, 8, 16
NAMES = MODEL_NAMES  # every registered model


def tiny_config(name, **overrides):
    return dataclasses.replace(model_info(name).tiny(N, L, D), **overrides)


SEQ = np.array(
    [
        [0, 0, 0, 3, 7, 1, 20, 5],  # left-padded
        [2, 4, 6, 8, 10, 12, 14, 16],  # full
        [0, 0, 0, 0, 0, 0, 0, 0],  # all padding
        [0, 0, 0, 0, 0, 0, 0, 9],  # one item
    ],
    np.int32,
)


@pytest.fixture(scope="module", params=NAMES)
def built(request):
    """(name, model, params, init, fwd): ``init`` and ``fwd`` are jitted once per model."""
    name = request.param
    model = make_model(name, tiny_config(name))
    init = jax.jit(model.init)
    params = init(jax.random.key(0))

    @jax.jit
    def fwd(params, seq, key):
        h = model.hidden(params, seq, train=False)
        u = model.encode(params, seq)
        return {
            "h": h,
            "h_train": model.hidden(params, seq, train=True, key=key),
            "h_train_nokey": model.hidden(params, seq, train=True),
            "u": u,
            "logits": model.score(params, u),
            "logits_all": model.score(params, h),
        }

    return name, model, params, init, fwd


def test_registry():
    assert {"sasrec", "bert4rec", "gru4rec"} <= set(MODEL_CONFIGS) == set(NAMES)  # the three built-ins
    assert base.MODEL_CONFIGS == MODEL_CONFIGS  # the lazy attribute agrees with the package's
    with pytest.raises(ValueError, match="known models.*bert4rec.*gru4rec.*sasrec"):
        make_model("transformer", tiny_config("sasrec"))
    with pytest.raises(ValueError, match="SASRecConfig"):
        make_model("sasrec", tiny_config("gru4rec"))
    with pytest.raises(ValueError, match="num_heads"):
        model_info("sasrec").config(num_items=N, dim=10, num_heads=3)
    for name in NAMES:  # each declaration's tiny config is of its own config class
        assert isinstance(tiny_config(name), model_info(name).config)


def test_shapes_dtypes_and_no_nan(built):
    name, model, params, init, fwd = built
    out = fwd(params, jnp.asarray(SEQ), jax.random.key(1))
    assert out["h"].shape == out["h_train"].shape == (4, L, D)
    assert out["u"].shape == (4, D)
    assert out["logits"].shape == (4, N + 1) and out["logits_all"].shape == (4, L, N + 1)
    assert model.item_embeddings(params).shape == (N + 1, D)
    for key, x in out.items():
        assert x.dtype == jnp.float32, key
        assert np.isfinite(np.asarray(x)).all(), key
    # Column 0 is the padding logit; padding positions are zero states.
    np.testing.assert_array_equal(np.asarray(out["logits_all"])[..., 0], PAD_LOGIT)
    np.testing.assert_array_equal(np.asarray(out["h"])[SEQ == 0], 0.0)
    assert {x.dtype for x in jax.tree.leaves(params)} == {jnp.dtype(jnp.float32)}


def test_tied_output_matches_numpy(built):
    name, model, params, init, fwd = built
    h = np.asarray(jax.random.normal(jax.random.key(3), (2, 3, D)))
    table = np.asarray(model.item_embeddings(params), np.float64)
    expected = h @ table.T
    if name == "bert4rec":
        expected = expected + np.asarray(params["output_bias"])
        # The tied table is the encoder's input table (rows 0..N; row N+1 is [MASK]).
        full = np.asarray(params["encoder"]["item_embed"]["embedding"])
        np.testing.assert_array_equal(full[: N + 1], table)
        assert full.shape == (N + 2, D)
    got = np.asarray(model.score(params, jnp.asarray(h)))
    np.testing.assert_allclose(got[..., 1:], expected[..., 1:], rtol=1e-5, atol=1e-5)


def test_output_layer_chunks_equal_score(built):
    """Chunked scoring (h @ table chunk.T + bias chunk, chunks of 6 over N+1 = 21 columns) = model.score."""
    from rec_jax.train.evaluate import chunk_source

    name, model, params, init, fwd = built
    assert model.output_layer is not None, name
    table, bias = model.output_layer(params)
    assert table.shape == (N + 1, D) and (bias is None or bias.shape == (N + 1,))
    u = fwd(params, jnp.asarray(SEQ), jax.random.key(0))["u"]
    fn, chunks, num_chunks, chunk = chunk_source(model, params, u, N, 6)
    assert (num_chunks, chunk) == (4, 6)
    got = np.concatenate([np.asarray(fn(jax.tree.map(lambda x: x[i], chunks))) for i in range(num_chunks)], axis=1)
    np.testing.assert_array_equal(got[:, N + 1:], 0.0)  # padding columns: zero rows of the table
    got = np.asarray(mask_pad_column(jnp.asarray(got[:, : N + 1])))
    np.testing.assert_allclose(got, np.asarray(model.score(params, u)), rtol=1e-5, atol=1e-5)


def test_determinism_and_jit_equals_eager(built):
    name, model, params, init, fwd = built
    leaves = jax.tree.leaves(params)
    assert all(np.array_equal(a, b) for a, b in zip(leaves, jax.tree.leaves(init(jax.random.key(0)))))
    assert not all(
        np.array_equal(a, b) for a, b in zip(leaves, jax.tree.leaves(init(jax.random.key(1))))
    )
    seq = jnp.asarray(SEQ)
    eager = model.score(params, model.encode(params, seq))
    jitted = fwd(params, seq, jax.random.key(1))["logits"]
    np.testing.assert_allclose(np.asarray(jitted), np.asarray(eager), rtol=1e-5, atol=1e-5)


def test_dropout_only_with_train_and_key(built):
    name, model, params, init, fwd = built
    seq = jnp.asarray(SEQ)
    a = fwd(params, seq, jax.random.key(5))
    b = fwd(params, seq, jax.random.key(5))
    c = fwd(params, seq, jax.random.key(6))
    np.testing.assert_array_equal(np.asarray(a["h_train_nokey"]), np.asarray(a["h"]))
    np.testing.assert_array_equal(np.asarray(a["h_train"]), np.asarray(b["h_train"]))
    assert not np.allclose(np.asarray(a["h_train"]), np.asarray(a["h"]))
    assert not np.allclose(np.asarray(a["h_train"]), np.asarray(c["h_train"]))


def test_encode_is_a_state_of_hidden(built):
    name, model, params, init, fwd = built
    out = fwd(params, jnp.asarray(SEQ), jax.random.key(0))
    if name == "bert4rec":
        # encode = the state at an appended [MASK] after shifting the window left.
        shifted = np.concatenate([SEQ[:, 1:], np.full((4, 1), N + 1, np.int32)], axis=1)
        expected = fwd(params, jnp.asarray(shifted), jax.random.key(0))["h"][:, -1]
    else:
        expected = out["h"][:, -1]
    np.testing.assert_allclose(np.asarray(out["u"]), np.asarray(expected), rtol=1e-6, atol=1e-6)


def test_init_rejects_other_config(built):
    name, model, params, init, fwd = built
    same = jax.eval_shape(lambda k: model.init(k, model.config), jax.random.key(0))  # no compile
    assert jax.tree.structure(same) == jax.tree.structure(params)
    with pytest.raises(ValueError, match="built for"):
        model.init(jax.random.key(0), dataclasses.replace(model.config, dim=32))


@pytest.mark.parametrize("name", ["sasrec", "gru4rec"])
def test_next_item_training_batch(name):
    model = make_model(name, tiny_config(name))
    window = np.array([[0, 0, 1, 2, 3, 4, 5, 6, 7], [1, 2, 3, 4, 5, 6, 7, 8, 9]], np.int32)
    target_mask = np.ones((2, L), bool)
    target_mask[1, :4] = False
    inputs, targets, loss_mask = model.training_batch(jax.random.key(0), window, target_mask)
    np.testing.assert_array_equal(inputs, window[:, :L])
    np.testing.assert_array_equal(targets, window[:, 1:])
    # Position by position: counts iff allowed, the target is an item, and it has history.
    expected = np.array(
        [[target_mask[b, t] and window[b, t + 1] > 0 and window[b, t] > 0 for t in range(L)]
         for b in range(2)]
    )
    np.testing.assert_array_equal(loss_mask, expected)


@pytest.mark.slow  # vmaps init and forward of every model over params (~14 s cold)
def test_vmap_over_params():
    """A population of SASRec models (vmapped params) scores like each member alone.

    One model suffices: the others go through the same pure init/encode/score path.
    """
    model = make_model("sasrec", tiny_config("sasrec"))
    seq = jnp.asarray(SEQ)

    @jax.jit
    def population(keys):
        stacked = jax.vmap(model.init)(keys)
        return stacked, jax.vmap(lambda p: model.score(p, model.encode(p, seq)))(stacked)

    stacked, batched = population(jax.random.split(jax.random.key(7), 2))
    assert batched.shape == (2, 4, N + 1)
    member = jax.tree.map(lambda x: x[1], stacked)
    np.testing.assert_allclose(
        np.asarray(batched[1]), np.asarray(model.score(member, model.encode(member, seq))),
        rtol=1e-5, atol=1e-5,
    )


def test_full_softmax_ce_is_finite_with_padding_targets_eagerly():
    """Padding targets (id 0, masked out) must not turn the loss into inf * 0 = NaN,
    eagerly or under vmap (NumPy reference for the value)."""
    import jax
    import jax.numpy as jnp
    import numpy as np

    from rec_jax.train.losses import full_softmax_ce

    logits = np.random.default_rng(0).normal(size=(2, 3, 5)).astype(np.float32)
    targets = np.array([[1, 0, 2], [0, 0, 4]])
    mask = targets > 0
    lse = np.log(np.exp(logits[..., 1:]).sum(-1))
    ref = np.mean([lse[b, j] - logits[b, j, targets[b, j]] for b in range(2) for j in range(3) if mask[b, j]])
    value = full_softmax_ce(jnp.asarray(logits), jnp.asarray(targets), jnp.asarray(mask))
    np.testing.assert_allclose(float(value), ref, rtol=1e-5)
    batched = jax.vmap(full_softmax_ce)(jnp.asarray(logits)[:, None], jnp.asarray(targets)[:, None], jnp.asarray(mask)[:, None])
    assert np.all(np.isfinite(np.asarray(batched)))
    assert np.all(np.isfinite(np.asarray(jax.grad(full_softmax_ce)(jnp.asarray(logits), jnp.asarray(targets), jnp.asarray(mask)))))
