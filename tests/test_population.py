"""A vmapped population of training configs equals training each config alone (tiny SASRec, synthetic data)."""
import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rec_jax.data.batching import Windows
from rec_jax.models import make_model
from rec_jax.models.dropout import Dropout
from rec_jax.train.config import get_preset, model_config, windows_per_batch
from rec_jax.train.evaluate import Evaluator
from rec_jax.train.pipeline import prepare
from rec_jax.train.population import (
    PopulationEvaluator,
    dropout_as_data,
    fit_population,
    member_params,
    population_hparams,
)
from rec_jax.train.trainer import fit

# A warm-up + cosine schedule and b2 0.98 shared by the members, so the population follows both.
BASE = dataclasses.replace(get_preset("tiny-sasrec"), batch_size=16, epochs=2, patience=5, lr_schedule="cosine",
                           warmup_epochs=0.5, decay_epochs=2.0, lr_final_fraction=0.1, adam_b2=0.98)
# Adam (wd 0, no dropout) and AdamW with hidden and attention dropout apart.
CONFIGS = [
    dataclasses.replace(BASE, learning_rate=1e-3, weight_decay=0.0, dropout=0.0, attn_dropout=0.0),
    dataclasses.replace(BASE, learning_rate=5e-3, weight_decay=0.1, dropout=0.3, attn_dropout=0.1),
]


@pytest.fixture(scope="module")
def data():
    """Tiny synthetic data: 40 windows (3 steps an epoch at 16 a step) and 64 validation users."""
    prepared = prepare(BASE)
    w = prepared.windows
    windows = Windows(seq=w.seq[:40], target_mask=w.target_mask[:40], user=w.user[:40])
    v = prepared.valid
    valid = v.take(slice(0, 64))
    return prepared.num_items, windows, valid


def _model(num_items, config):
    return make_model(config.model, model_config(config, num_items))


def _without_key_bias(params):
    """A copy without the attention KEY bias: its gradient is zero in exact arithmetic (softmax ignores a
    constant added to every logit of a row), so Adam's update there is normalised rounding noise."""
    params = jax.tree.map(np.array, params)
    for block in (k for k in params["encoder"] if k.startswith("block_")):
        params["encoder"][block]["attn"]["qkv"]["bias"][1] = 0.0
    return params


def _assert_trees_close(a, b, rtol, atol):
    for (path, x), y in zip(jax.tree_util.tree_leaves_with_path(a), jax.tree.leaves(b)):
        np.testing.assert_allclose(np.asarray(x), np.asarray(y), rtol=rtol, atol=atol, err_msg=str(path))


@pytest.mark.slow  # two fits and a population fit of a tiny SASRec (~30 s cold)
def test_population_trains_like_fit_trains_each_config_alone(data):
    """P=2 members for 2 epochs (6 Adam steps) vs ``fit`` on each config alone (its model built with its own
    static dropout rates): per-epoch loss and validation NDCG@10, best epoch, best params; the argmax is selected.
    """
    num_items, windows, valid = data
    base, hparams = population_hparams(CONFIGS)
    model = _model(num_items, base)
    batch = windows_per_batch(base, len(windows), int(windows.target_mask.sum()))
    assert -(-len(windows) // batch) == 3  # 3 steps an epoch
    result = fit_population(model, base, hparams, windows, PopulationEvaluator(model, valid, 32), progress=False)
    assert result.epochs_run == 2 and result.compile_s > 0
    shared_eval = Evaluator(model, valid, 32)  # evaluation is deterministic: one compile serves every config
    for i, config in enumerate(CONFIGS):
        alone = _model(num_items, config)
        single = fit(alone, config, windows, shared_eval, progress=False, log=lambda *_: None)
        np.testing.assert_allclose(result.history["train_loss"][:, i], single.history["train_loss"], rtol=1e-5)
        np.testing.assert_allclose(result.history["valid_ndcg@10"][:, i], single.history["valid_ndcg@10"],
                                   rtol=1e-5, atol=1e-6)
        assert result.best_epoch[i] == single.best_epoch
        np.testing.assert_allclose(result.best_metric[i], np.max(single.history["valid_ndcg@10"]), rtol=1e-5)
        _assert_trees_close(_without_key_bias(member_params(result.best_params, i)),
                            _without_key_bias(single.best_params), rtol=1e-4, atol=1e-6)
    assert result.best_member == int(np.argmax(result.history["valid_ndcg@10"].max(axis=0)))
    # The hyperparameters act: members end up apart by far more than the tolerance above.
    emb = [np.asarray(member_params(result.best_params, i)["encoder"]["item_embed"]["embedding"]) for i in range(2)]
    assert np.abs(emb[0] - emb[1]).max() > 1e-3


def test_traced_dropout_matches_the_layers_dropout():
    """Under dropout_as_data a layer built with rate 0.7 drops at the traced rate, bit for bit like the layer."""
    x = jnp.arange(1.0, 1 + 4 * 64).reshape(4, 64)
    key = jax.random.key(3)

    def apply(static_rate, traced_rate=None):
        module = Dropout(static_rate)

        def run(rate):
            if rate is None:
                return module.apply({}, x, deterministic=False, rngs={"dropout": key})
            with dropout_as_data(rate, rate):
                return module.apply({}, x, deterministic=False, rngs={"dropout": key})

        return jax.jit(run)(traced_rate)

    for rate in (0.0, 0.25, 0.6):
        np.testing.assert_allclose(apply(0.7, jnp.float32(rate)), apply(rate), rtol=1e-6)
    dropped = np.mean(np.asarray(apply(0.7, jnp.float32(0.25))) == 0)
    assert 0.15 < dropped < 0.35  # 256 draws at p = 0.25


def test_population_rejects_shape_changes_and_bad_rates():
    with pytest.raises(ValueError, match=r"configs\[1\]\.dim=32 differs"):
        population_hparams([BASE, dataclasses.replace(BASE, dim=32)])
    with pytest.raises(ValueError, match=r"configs\[1\]\.dropout=1\.0: expected 0 <= dropout < 1"):
        population_hparams([BASE, dataclasses.replace(BASE, dropout=1.0)])
    with pytest.raises(ValueError, match=r"learning_rate=0\.0: expected > 0"):
        population_hparams([dataclasses.replace(BASE, learning_rate=0.0)])
    with pytest.raises(ValueError, match="at least one"):
        population_hparams([])
