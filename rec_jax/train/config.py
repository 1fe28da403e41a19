"""Training configuration and the named presets of the offline study.

A preset fixes a protocol; variants are made with ``dataclasses.replace`` or
command-line overrides. The resolved config is saved with every run.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass


@dataclass(frozen=True)
class TrainConfig:
    """Everything a sequential-recommender training run needs (all fields are JSON-able)."""

    # --- data ---
    data: str = "ml-100k"  # "synthetic", "ml-100k", "ml-1m", "ml-20m" or a path to a u.data / ratings.dat / .inter / .csv / .txt / .parquet file
    min_user_interactions: int = 5  # k-core: users with fewer interactions are dropped (iterated)
    min_item_interactions: int = 5  # k-core: items with fewer interactions are dropped (iterated)
    filter: str = "kcore"  # "kcore": the thresholds iterated (RecBole), ids by sorted raw id; "sasrec": one pass on raw counts, ids by first appearance (SASRec's DataProcessing.py)
    max_len: int = 50  # L, the longest history the model sees
    window_stride: int = 25  # sliding-window stride; every training target is counted once
    # --- model ---
    model: str = "sasrec"  # sasrec | bert4rec | gru4rec
    dim: int = 64  # D, embedding and hidden width
    num_layers: int = 2  # Transformer blocks (GRU layers for gru4rec)
    num_heads: int = 2  # attention heads
    ff_dim: int = 256  # feed-forward width of a Transformer block
    hidden_dim: int = 128  # GRU hidden width (gru4rec only)
    dropout: float = 0.2  # hidden dropout
    attn_dropout: float = 0.2  # attention-probability dropout
    mask_prob: float = 0.2  # Cloze masking probability (bert4rec only)
    ft_ratio: float = 0.5  # fraction of rows with only the last item hidden (next-item task; bert4rec only)
    cloze_whole_window: bool = True  # Cloze may hide any item of a window, not only its counted targets (bert4rec only)
    ft_random_prefix: bool = False  # next-item rows end at a uniformly drawn item, not the window's last (bert4rec only)
    # --- optimisation ---
    loss: str = "ce"  # "ce": full softmax cross-entropy over all items; "bce": one sampled negative; "sampled_softmax": log-Q corrected, num_negatives; "gbce": gSASRec, num_negatives, gbce_t; "ce_chunked": exact full CE over item chunks
    num_negatives: int = 256  # k, negatives drawn per sequence for the "sampled_softmax" and "gbce" losses
    gbce_t: float = 0.75  # gBCE calibration t in [0, 1] (0: plain BCE with k negatives; "gbce" only)
    negative_alpha: float = 0.0  # "sampled_softmax" proposal Q(i) ∝ (training count(i) + 1)^alpha (0 = uniform)
    loss_chunk_size: int = 8192  # items per chunk of the "ce_chunked" loss
    batch_size: int = 256  # batch size per step, counted in ``batch_unit``s
    batch_unit: str = "target"  # "target": windows per step = batch_size / mean targets per window; "window": batch_size windows
    window_repeats: int = 1  # copies of every window per epoch, each with its own dropout/Cloze draws (BERT4Rec's dupe_factor)
    learning_rate: float = 1e-3  # Adam(W) step size (the peak of the schedule)
    lr_schedule: str = "constant"  # "constant", or "cosine": linear warm-up to learning_rate, cosine decay to lr_final_fraction x it
    warmup_epochs: float = 0.0  # linear warm-up from 0 over this many epochs ("cosine" only)
    decay_epochs: float = 0.0  # the cosine reaches its floor after this many epochs, warm-up included, and stays there ("cosine" only)
    lr_final_fraction: float = 0.0  # the floor of the cosine, as a fraction of learning_rate
    adam_b2: float = 0.999  # Adam's second-moment decay (SASRec's code uses 0.98)
    weight_decay: float = 0.0  # decoupled weight decay; > 0 switches Adam to AdamW
    epochs: int = 200  # upper bound on epochs
    patience: int = 10  # early stopping: epochs without a valid NDCG@10 improvement
    # --- evaluation ---
    mask_history: bool = True  # exclude already-seen items from the ranking (False = RecBole's convention)
    eval_batch_size: int = 256  # users per full-ranking evaluation batch (smaller batches stay in cache on CPU)
    # --- run ---
    seed: int = 0  # the root PRNG seed
    checkpoint_every: int = 1  # epochs between Orbax checkpoints (0 = never)


def _ml100k(model: str, **kw) -> TrainConfig:
    # 16 windows a step (about 440 next-item targets): measured better than 256 targets
    # a step (RecBole's batch of 256 prefixes; ``--batch-unit target --batch-size 256``)
    # at the same learning rate, and it reaches its best epoch sooner.
    return TrainConfig(data="ml-100k", model=model, batch_unit="window", batch_size=16, **kw)


def _paper(data: str, model: str, **kw) -> TrainConfig:
    # The SASRec/BERT4Rec papers' protocol: their one-pass 5-core with ids by first appearance,
    # leave-one-out, full ranking, L = 200, D = 64, 2 blocks, 128 windows a step. Windows overlap
    # by half (stride 100) so most targets see a long context; each target still counts once.
    base = dict(data=data, filter="sasrec", model=model, max_len=200, window_stride=100, dim=64, num_layers=2,
                batch_unit="window", batch_size=128)
    return TrainConfig(**{**base, **kw})


PRESETS = {
    # The protocol compared with RecBole 1.2.1 (benchmarks/recbole/): 5-core ML-100K, LOO,
    # L=50, D=64, 2 layers, 2 heads, FF 256, dropout 0.2, full CE (RecBole: batch 256, Adam 1e-3).
    # SASRec: Adam at 1.5e-3 warmed up over 1 epoch, cosine-decayed to 0 at epoch 20 (measured:
    # the same 3-seed accuracy as a constant 1e-3 with its best epoch at 13-15 instead of 17-31).
    "ml100k-sasrec": lambda: _ml100k("sasrec", learning_rate=1.5e-3, lr_schedule="cosine", warmup_epochs=1.0,
                                     decay_epochs=20.0),
    "ml100k-bert4rec": lambda: _ml100k("bert4rec", mask_prob=0.2),
    "ml100k-gru4rec": lambda: _ml100k("gru4rec", num_layers=1, dropout=0.2),
    # ML-1M / ML-20M as the SASRec+ (Klenitskiy & Vasilev 2023), gSASRec and HSTU papers run them.
    # SASRec: one head and a feed-forward as wide as the model, as in the SASRec paper; full CE.
    "ml1m-sasrec": lambda: _paper("ml-1m", "sasrec", num_heads=1, ff_dim=64, dropout=0.2, attn_dropout=0.2,
                                  loss="ce"),
    # BERT4Rec's own ML-1M setting: 2 heads, FF 4 x 64, dropout 0.1, Cloze masking 0.2.
    "ml1m-bert4rec": lambda: _paper("ml-1m", "bert4rec", num_heads=2, ff_dim=256, dropout=0.1, attn_dropout=0.1,
                                    mask_prob=0.2, loss="ce"),
    # ML-20M: the same SASRec; the exact full CE over its ~27k items in chunks (the logits of a
    # 128 x 200 batch would be 2.7 GB at once).
    "ml20m-sasrec": lambda: _paper("ml-20m", "sasrec", num_heads=1, ff_dim=64, dropout=0.2, attn_dropout=0.2,
                                   loss="ce_chunked"),
    # tiny sizes for tests and smoke runs on generated data
    "tiny-sasrec": lambda: TrainConfig(
        data="synthetic", model="sasrec", max_len=12, window_stride=6, dim=16, num_layers=1,
        num_heads=1, ff_dim=32, batch_size=32, batch_unit="window", epochs=3, patience=2, eval_batch_size=64),
    "tiny-bert4rec": lambda: TrainConfig(
        data="synthetic", model="bert4rec", max_len=12, window_stride=6, dim=16, num_layers=1,
        num_heads=1, ff_dim=32, batch_size=32, batch_unit="window", epochs=3, patience=2, eval_batch_size=64),
    "tiny-gru4rec": lambda: TrainConfig(
        data="synthetic", model="gru4rec", max_len=12, window_stride=6, dim=16, hidden_dim=16,
        num_layers=1, batch_size=32, batch_unit="window", epochs=3, patience=2, eval_batch_size=64),
}


def windows_per_batch(config: TrainConfig, num_windows: int, num_targets: int) -> int:
    """Training windows per optimizer step.

    With ``batch_unit="target"`` a step holds about ``batch_size`` next-item targets
    on average (RecBole's batch of 256 prefixes is 256 targets), however many targets
    each window carries; with ``"window"`` it holds ``batch_size`` windows.
    """
    if config.batch_unit == "window":
        return max(1, min(config.batch_size, num_windows))
    if config.batch_unit != "target":
        raise ValueError(f"batch_unit={config.batch_unit!r}: expected 'target' or 'window'")
    per_window = num_targets / max(num_windows, 1)
    return max(1, min(num_windows, round(config.batch_size / max(per_window, 1e-9))))


def get_preset(name: str) -> TrainConfig:
    """The named preset's config; an unknown name raises a one-line ValueError."""
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; expected one of: {', '.join(sorted(PRESETS))}")
    return PRESETS[name]()


def model_config(config: TrainConfig, num_items: int):
    """Build the model's own frozen config from the training config's fields."""
    from rec_jax.models import MODEL_CONFIGS

    if config.model not in MODEL_CONFIGS:
        raise ValueError(f"unknown model {config.model!r}; expected one of: {', '.join(sorted(MODEL_CONFIGS))}")
    cls = MODEL_CONFIGS[config.model]
    names = {f.name for f in dataclasses.fields(cls)}
    values = {k: v for k, v in dataclasses.asdict(config).items() if k in names}
    values["num_items"] = num_items
    return cls(**values)
