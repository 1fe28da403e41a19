"""GRU4Rec against a NumPy GRU and flax's GRUCell; padding leaves the state at zero."""
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from rec_jax.models import GRU4RecConfig, make_gru4rec

N, L, D, H = 20, 8, 16, 12
CFG = GRU4RecConfig(num_items=N, max_len=L, dim=D, hidden_dim=H, num_layers=2)


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def numpy_gru4rec(params, seq):
    """Reference forward for one sequence (eval mode), a plain per-step loop."""
    p = jax.tree.map(lambda a: np.asarray(a, np.float64), params)
    x = p["item_embed"]["embedding"][seq]
    for layer in range(CFG.num_layers):
        g = p[f"gru_{layer}"]
        w_ir, w_iz, w_in = np.split(g["w_i"], 3, axis=1)
        b_ir, b_iz, b_in = np.split(g["b_i"], 3)
        w_hr, w_hz, w_hn = np.split(g["w_h"], 3, axis=1)
        h = np.zeros(H)
        out = []
        for t in range(len(seq)):
            if seq[t] > 0:  # padding: the state is carried unchanged
                r = _sigmoid(x[t] @ w_ir + b_ir + h @ w_hr)
                z = _sigmoid(x[t] @ w_iz + b_iz + h @ w_hz)
                n = np.tanh(x[t] @ w_in + b_in + r * (h @ w_hn + g["b_hn"]))
                h = (1 - z) * n + z * h
            out.append(h)
        x = np.stack(out)
    y = x @ p["proj"]["kernel"] + p["proj"]["bias"]
    return y * (seq > 0)[:, None], x


def test_matches_numpy_gru_and_pads_keep_zero_state():
    model = make_gru4rec(CFG)
    params = jax.jit(model.init)(jax.random.key(0))
    seqs = np.array([[0, 0, 0, 3, 7, 1, 20, 5], [2, 4, 6, 8, 10, 12, 14, 16]], np.int32)
    got = np.asarray(jax.jit(lambda p, s: model.hidden(p, s, train=False))(params, jnp.asarray(seqs)))
    for b in range(2):
        expected, states = numpy_gru4rec(params, seqs[b])
        np.testing.assert_allclose(got[b], expected, rtol=1e-4, atol=1e-5)
        # The GRU state before the first item is exactly zero.
        np.testing.assert_array_equal(states[seqs[b] == 0], 0.0)
    # Left padding is invisible: the padded history gives the unpadded history's state.
    short = np.asarray(model.encode(params, jnp.asarray(seqs[:1, 3:])))
    np.testing.assert_allclose(short[0], got[0, -1], rtol=1e-5, atol=1e-6)


def test_cell_equals_flax_grucell():
    """Our fused layer computes exactly flax.linen.GRUCell with the same weights."""
    model = make_gru4rec(GRU4RecConfig(num_items=N, max_len=L, dim=D, hidden_dim=H))
    params = jax.jit(model.init)(jax.random.key(1))
    g = params["gru_0"]
    w_ir, w_iz, w_in = jnp.split(g["w_i"], 3, axis=1)
    b_ir, b_iz, b_in = jnp.split(g["b_i"], 3)
    w_hr, w_hz, w_hn = jnp.split(g["w_h"], 3, axis=1)
    cell_params = {
        "ir": {"kernel": w_ir, "bias": b_ir}, "iz": {"kernel": w_iz, "bias": b_iz},
        "in": {"kernel": w_in, "bias": b_in}, "hr": {"kernel": w_hr}, "hz": {"kernel": w_hz},
        "hn": {"kernel": w_hn, "bias": g["b_hn"]},
    }
    seq = jnp.array([[5, 9, 1, 13]], jnp.int32)

    @jax.jit
    def both(params, cell_params):
        x = params["item_embed"]["embedding"][seq]
        states = nn.RNN(nn.GRUCell(H)).apply({"params": {"cell": cell_params}}, x)
        expected = states @ params["proj"]["kernel"] + params["proj"]["bias"]
        return model.hidden(params, seq, train=False), expected

    got, expected = both(params, cell_params)
    np.testing.assert_allclose(np.asarray(got), np.asarray(expected), rtol=1e-5, atol=1e-6)
