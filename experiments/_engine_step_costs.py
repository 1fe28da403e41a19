"""Analytic per-user-step costs of the MINIMAL algorithms ``experiments/bench_engine.py``
reports its roofline against (``flops_per_step``, ``bytes_per_step``, ``flops_source``):
redundant work in an implementation never raises its score. Standard library only (the
device benchmark imports this through bench_engine on an image without the dev tools).
"""
from __future__ import annotations


def linucb_step_cost(items: int, dim: int, mode: str = "per_stream", streams: int = 1) -> tuple[float, float, str]:
    """(flops, bytes, how) per user-step of the MINIMAL LinUCB on the linear env, f32.

    Per-stream mode, K = items, d = dim, one stream and one step, state A^-1 f32[d, d],
    theta f32[d] and the per-item variances v f32[K] (v_n = x_n^T A^-1 x_n, kept by a
    rank-one correction: valid because the item features are fixed and shared):

      score       mean = X theta                      2Kd
                  mean + alpha sqrt(v)                 3K   (sqrt counted as 1; argmax not counted)
      reward      <x, theta*> + noise                  2d + 1  (the env; the normal draw not counted)
      u = A^-1 x                                       2d^2
      c = 1 + x.u, u / c                               3d
      A^-1 -= u (u / c)^T                              2d^2
      theta += u (r - x.theta) / c                     4d + 2
      v_n -= (x_n.u)^2 / c                             2Kd + 3K
      total                                            4Kd + 6K + 4d^2 + 9d + 3

    Bytes: the per-stream state read and written once, A^-1 8d^2, theta 8d, v 8K, plus
    theta* of the env read 4d and the reward written 4; the item features f32[K, d] are
    one copy for all streams (cache-resident), so they are not counted.

    Shared mode (one model for all S streams, identical scores since the features are
    fixed): per stream Gram and b accumulation 2d^2 + 2d, the reward 2d + 1 and its
    argmax share K; once per step, amortised over S, the Cholesky and inverse (d^3/3 +
    2d^3), theta 2d^2 and the K means and variances 2Kd + 2Kd^2 + 3K. Bytes: theta*
    4d and the reward 4 (the shared state is cache-resident).
    """
    k, d = items, dim
    if mode == "per_stream":
        flops = 4 * k * d + 6 * k + 4 * d * d + 9 * d + 3
        nbytes = 8 * d * d + 8 * d + 8 * k + 4 * d + 4
        how = "analytic minimal LinUCB, incremental variances: 4Kd + 6K + 4d^2 + 9d + 3 per user-step"
    else:
        once = d**3 / 3 + 2 * d**3 + 2 * d * d + 2 * k * d + 2 * k * d * d + 3 * k
        flops = 2 * d * d + 4 * d + 1 + k + once / streams
        nbytes = 4 * d + 4
        how = "analytic minimal shared LinUCB: 2d^2 + 4d + 1 + K per user-step + per-step refit / S"
    return float(flops), float(nbytes), how


def epsilon_greedy_step_cost(items: int, dim: int) -> tuple[float, float, str]:
    """(flops, bytes, how) per user-step of the MINIMAL per-stream epsilon-greedy on the linear env.

    The state a minimal implementation keeps per stream is the N empirical means (and the
    pulled item's count): act reads the N means and takes their argmax (N compares; the
    exploration coin not counted), the env's reward <x, theta*> + noise costs 2d + 1 and
    reads theta* (4d bytes), the update moves one item's mean and count (mean += (r - mean)
    / count: 4 flops, 16 bytes read and written), the reward is written (4 bytes). The
    item features are one copy for all streams (cache-resident), not counted."""
    flops = items + 2 * dim + 1 + 4
    nbytes = 4 * items + 16 + 4 * dim + 4
    return float(flops), float(nbytes), "analytic minimal epsilon-greedy: N + 2d + 5 flops, 4N + 4d + 20 bytes"


def model_step_cost(items: int, dim: int, max_len: int, layers: int, ff_dim: int, adapter_rank: int,
                    mode: str, streams: int) -> tuple[float, float, str]:
    """(flops, bytes, how) per user-step of the MINIMAL incremental NeuralLinear TS step.

    One new item through the SASRec blocks (N = items, D = dim, L = max_len, F = ff_dim):
    per layer the fused QKV 6D^2, attention over the ring 4LD, the output projection
    2D^2 and the feed-forward 4DF; the adapter 4Dr; the scores of one posterior draw
    x_n . theta = (h * theta) . e_n, 2ND + D; the top-1 N; the ridge update 2D^2 + 2D;
    the per-step draw theta = mu + L z, 2D^2, once for all streams in shared mode (else
    per stream). LayerNorms, GELU and the softmax are not counted. Bytes: the K/V ring
    read (2 layers L D f32) and one slot written, the window int32[L]; the item table and
    the shared posterior are one copy for all streams (cache-resident), not counted."""
    n, d, length = items, dim, max_len
    per_layer = 8 * d * d + 4 * length * d + 4 * d * ff_dim
    draw = 2 * d * d / (streams if mode == "shared" else 1)
    flops = layers * per_layer + 4 * d * adapter_rank + 2 * n * d + d + n + 2 * d * d + 2 * d + draw
    nbytes = 4 * (2 * layers * length * d + 2 * layers * d) + 4 * length
    how = ("analytic minimal incremental step: layers (8D^2 + 4LD + 4DF) + 4Dr + 2ND + D + N + 2D^2 + 2D "
           "+ the draw 2D^2 (/ S shared)")
    return float(flops), float(nbytes), how
