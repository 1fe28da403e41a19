#!/usr/bin/env python
"""Peer baseline: RecBole 1.2.1 sequential recommenders on MovieLens-100K (CPU).

Runs one model (SASRec / GRU4Rec / BERT4Rec) with RecBole's own data pipeline,
trainer and evaluator, under an explicit protocol (every protocol-relevant key
is set here, not left to RecBole's defaults):

  * data: the ml-100k atomic files shipped inside the recbole wheel
    (<site-packages>/recbole/dataset_example/ml-100k), columns user_id, item_id,
    timestamp; every rating is an interaction (no threshold, no value filter);
    iterative 5-core: users and items with >= 5 interactions.
  * sequences ordered by timestamp (stable sort on (user, timestamp); equal
    timestamps keep file order), all prefixes of a user's sequence are training
    samples (RecBole's data augmentation), MAX_ITEM_LIST_LENGTH 50.
  * leave-one-out: last item = test, second-to-last = valid
    (eval_args split LS valid_and_test, order TO, group_by user, mode full:
    full ranking over all items, no sampled negatives; for sequential models
    RecBole does NOT mask already-seen items, only the padding id 0).
  * metrics Hit/NDCG/MRR @10 and @20, early stopping on valid NDCG@10.

Usage (inside the venv, see benchmarks/recbole/README.md):
    python benchmarks/recbole/recbole_seq.py SASRec [--epochs 200] [--threads 2]
        [--workdir /tmp/recbole-run] [--out-json FILE] [--dump-seqs FILE]

Writes RecBole's own log under <workdir>/<model>/log/, and a JSON summary with
per-epoch train / valid times, test metrics and dataset stats to --out-json.
"""
import argparse
import json
import os
import statistics
import sys
import time

# torch>=2.6 defaults torch.load(weights_only=True); RecBole 1.2.1's checkpoint
# holds its Config object, so loading the best model needs the old behaviour.
# This env var restores it without patching RecBole.
os.environ.setdefault("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "1")


def parse_args():
    p = argparse.ArgumentParser()
    p.add_argument("model", choices=["SASRec", "GRU4Rec", "BERT4Rec"])
    p.add_argument("--epochs", type=int, default=200)
    p.add_argument("--stopping-step", type=int, default=10)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--seed", type=int, default=2020)
    p.add_argument("--workdir", default="/tmp/recbole-run")
    p.add_argument("--out-json", default=None)
    p.add_argument("--dump-seqs", default=None,
                   help="write the per-user item sequences RecBole uses (original tokens, in order)")
    p.add_argument("--keep-anomaly-detection", action="store_true",
                   help="leave torch.autograd anomaly detection on, as importing recbole "
                        "leaves it (recbole/model/sequential_recommender/sine.py calls "
                        "torch.autograd.set_detect_anomaly(True) at import time)")
    p.add_argument("--eval-repeats", type=int, default=3,
                   help="extra timed full-ranking passes over the test set")
    return p.parse_args()


def main():
    args = parse_args()
    sys.argv = sys.argv[:1]  # RecBole's Config also parses sys.argv
    os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))
    os.environ.setdefault("MKL_NUM_THREADS", str(args.threads))

    import numpy as np
    import torch
    import recbole
    from recbole.config import Config
    from recbole.data import create_dataset, data_preparation
    from recbole.utils import init_logger, init_seed, get_model, get_trainer

    torch.set_num_threads(args.threads)
    # Importing RecBole's sequential model package imports SINE, whose module
    # body turns on autograd anomaly detection for the whole process (about 1.8x
    # slower training here, see logs/anomaly_step_bench.txt).  It only adds NaN checks and stack traces, not
    # numerics, so switch it back off unless asked to keep RecBole's behaviour.
    import recbole.model.sequential_recommender  # noqa: F401
    anomaly_from_import = torch.is_anomaly_enabled()
    if not args.keep_anomaly_detection:
        torch.autograd.set_detect_anomaly(False)

    data_path = os.path.join(os.path.dirname(recbole.__file__), "dataset_example")
    run_dir = os.path.join(args.workdir, args.model)
    os.makedirs(run_dir, exist_ok=True)
    os.chdir(run_dir)  # RecBole writes ./log, ./log_tensorboard here

    common = {
        # --- environment
        "use_gpu": False,
        "seed": args.seed,
        "reproducibility": True,
        "worker": 0,
        "show_progress": False,
        "checkpoint_dir": os.path.join(run_dir, "saved"),
        "log_wandb": False,
        "state": "INFO",
        # --- data
        "data_path": data_path,
        "USER_ID_FIELD": "user_id",
        "ITEM_ID_FIELD": "item_id",
        "TIME_FIELD": "timestamp",
        "load_col": {"inter": ["user_id", "item_id", "timestamp"]},
        "threshold": None,
        "val_interval": None,
        "rm_dup_inter": None,
        "filter_inter_by_user_or_item": True,
        "user_inter_num_interval": "[5,inf)",
        "item_inter_num_interval": "[5,inf)",
        "normalize_all": True,  # only touches the float timestamp (monotone min-max)
        "MAX_ITEM_LIST_LENGTH": 50,
        # --- training
        "epochs": args.epochs,
        "train_batch_size": 256,
        "learner": "adam",
        "learning_rate": 0.001,
        "weight_decay": 0.0,
        "clip_grad_norm": None,
        "train_neg_sample_args": None,  # CE loss over all items
        "eval_step": 1,
        "stopping_step": args.stopping_step,
        "shuffle": True,
        "enable_amp": False,
        # --- evaluation
        "eval_args": {
            "split": {"LS": "valid_and_test"},
            "group_by": "user",
            "order": "TO",
            "mode": "full",
        },
        "repeatable": True,  # RecBole requires True for sequential models
        "metrics": ["Hit", "NDCG", "MRR"],
        "topk": [10, 20],
        "valid_metric": "NDCG@10",
        "valid_metric_bigger": True,
        "eval_batch_size": 4096,
        "metric_decimal_place": 6,
    }
    per_model = {
        "SASRec": {
            "n_layers": 2, "n_heads": 2, "hidden_size": 64, "inner_size": 256,
            "hidden_dropout_prob": 0.2, "attn_dropout_prob": 0.2,
            "hidden_act": "gelu", "layer_norm_eps": 1e-12,
            "initializer_range": 0.02, "loss_type": "CE",
        },
        "GRU4Rec": {
            "embedding_size": 64, "hidden_size": 128, "num_layers": 1,
            "dropout_prob": 0.3, "loss_type": "CE",
        },
        "BERT4Rec": {
            "n_layers": 2, "n_heads": 2, "hidden_size": 64, "inner_size": 256,
            "hidden_dropout_prob": 0.2, "attn_dropout_prob": 0.2,
            "hidden_act": "gelu", "layer_norm_eps": 1e-12,
            "initializer_range": 0.02, "mask_ratio": 0.2, "loss_type": "CE",
            "transform": "mask_itemseq", "ft_ratio": 0.5,
        },
    }
    cfg = dict(common)
    cfg.update(per_model[args.model])

    t_start = time.perf_counter()
    config = Config(model=args.model, dataset="ml-100k", config_dict=cfg)
    init_seed(config["seed"], config["reproducibility"])
    init_logger(config)
    import logging
    logger = logging.getLogger()
    logger.info(f"python {sys.version.split()[0]} torch {torch.__version__} "
                f"recbole {recbole.__version__} numpy {np.__version__} "
                f"threads {torch.get_num_threads()} "
                f"anomaly_detection_after_import {anomaly_from_import} "
                f"anomaly_detection_now {torch.is_anomaly_enabled()}")
    logger.info(config)

    t0 = time.perf_counter()
    dataset = create_dataset(config)
    logger.info(dataset)
    train_data, valid_data, test_data = data_preparation(config, dataset)
    t_data = time.perf_counter() - t0

    # ---- dataset stats: rebuild each user's full (ordered) sequence from the
    # augmented samples: sample k has target = item k+1 and prefix items[:k+1]
    # (truncated to 50); the sample with item_length == 1 carries the first item.
    inter = dataset.inter_feat
    uid = inter[dataset.uid_field].numpy()
    iid = inter[dataset.iid_field].numpy()
    ilen = inter[dataset.item_list_length_field].numpy()
    ilist = inter[dataset.item_id_list_field].numpy()
    seqs = {}
    for u, tgt, ln, lst in zip(uid, iid, ilen, ilist):
        if ln == 1:
            seqs.setdefault(int(u), []).append(int(lst[0]))
        seqs.setdefault(int(u), []).append(int(tgt))
    n_users = len(seqs)
    n_inter = sum(len(s) for s in seqs.values())
    items_seen = set(i for s in seqs.values() for i in s)
    stats = {
        "n_users": n_users,
        "n_items": len(items_seen),
        "n_items_incl_padding": int(dataset.item_num),
        "n_interactions": n_inter,
        "avg_seq_len": n_inter / n_users,
        "n_train_samples": len(train_data._dataset),
        "n_valid_samples": len(valid_data._dataset),
        "n_test_samples": len(test_data._dataset),
        "data_prep_s": t_data,
    }
    logger.info(f"STATS {json.dumps(stats)}")
    if args.dump_seqs:
        utok = dataset.field2id_token[dataset.uid_field]
        itok = dataset.field2id_token[dataset.iid_field]
        with open(args.dump_seqs, "w") as f:
            f.write("# user_id<TAB>item_ids in RecBole's training order (last = test, "
                    "second-to-last = valid); original ml-100k tokens\n")
            for u in sorted(seqs, key=lambda x: int(utok[x])):
                f.write(utok[u] + "\t" + " ".join(itok[i] for i in seqs[u]) + "\n")

    init_seed(config["seed"] + config["local_rank"], config["reproducibility"])
    model = get_model(config["model"])(config, train_data._dataset).to(config["device"])
    logger.info(model)
    n_params = sum(p.numel() for p in model.parameters() if p.requires_grad)
    trainer = get_trainer(config["MODEL_TYPE"], config["model"])(config, model)

    # ---- timing wrappers (in-process only; RecBole itself is unmodified)
    train_times, valid_times = [], []
    orig_train, orig_valid = trainer._train_epoch, trainer._valid_epoch

    def timed_train(*a, **k):
        s = time.perf_counter()
        r = orig_train(*a, **k)
        train_times.append(time.perf_counter() - s)
        return r

    def timed_valid(*a, **k):
        s = time.perf_counter()
        r = orig_valid(*a, **k)
        valid_times.append(time.perf_counter() - s)
        return r

    trainer._train_epoch = timed_train
    trainer._valid_epoch = timed_valid

    t0 = time.perf_counter()
    best_valid_score, best_valid_result = trainer.fit(
        train_data, valid_data, saved=True, show_progress=False)
    t_fit = time.perf_counter() - t0

    t0 = time.perf_counter()
    test_result = trainer.evaluate(test_data, load_best_model=True, show_progress=False)
    t_test_first = time.perf_counter() - t0
    test_pass_times = []
    for _ in range(args.eval_repeats):
        t0 = time.perf_counter()
        r = trainer.evaluate(test_data, load_best_model=False, show_progress=False)
        test_pass_times.append(time.perf_counter() - t0)
        assert all(abs(r[k] - test_result[k]) < 1e-9 for k in r), (r, test_result)
    t_total = time.perf_counter() - t_start

    # best epoch as RecBole defines it (last epoch whose valid score improved)
    ckpt = torch.load(trainer.saved_model_file, map_location="cpu")
    best_epoch = int(ckpt["epoch"])

    summary = {
        "model": args.model,
        "versions": {
            "python": sys.version.split()[0], "torch": torch.__version__,
            "recbole": recbole.__version__, "numpy": np.__version__,
        },
        "threads": torch.get_num_threads(),
        "anomaly_detection_after_recbole_import": anomaly_from_import,
        "anomaly_detection_during_run": torch.is_anomaly_enabled(),
        "config": cfg,
        "n_params": n_params,
        "dataset": stats,
        "epochs_run": len(train_times),
        "best_epoch_0based": best_epoch,
        "best_valid": {k: float(v) for k, v in best_valid_result.items()},
        "test": {k: float(v) for k, v in test_result.items()},
        "train_epoch_s": train_times,
        "train_epoch_median_s": statistics.median(train_times),
        "valid_pass_s": valid_times,
        "valid_pass_median_s": statistics.median(valid_times),
        "test_pass_with_ckpt_load_s": t_test_first,
        "test_pass_s": test_pass_times,
        "test_pass_median_s": statistics.median(test_pass_times) if test_pass_times else None,
        "fit_s": t_fit,
        "total_s": t_total,
        "recbole_log": logging.getLogger().handlers[0].baseFilename
        if hasattr(logging.getLogger().handlers[0], "baseFilename") else None,
    }
    for h in logging.getLogger().handlers:
        if hasattr(h, "baseFilename"):
            summary["recbole_log"] = h.baseFilename
    logger.info("SUMMARY " + json.dumps({k: summary[k] for k in (
        "model", "epochs_run", "best_epoch_0based", "test", "train_epoch_median_s",
        "valid_pass_median_s", "test_pass_median_s", "fit_s", "total_s")}))
    if args.out_json:
        with open(args.out_json, "w") as f:
            json.dump(summary, f, indent=1, default=str)
    print(json.dumps({k: summary[k] for k in (
        "model", "epochs_run", "best_epoch_0based", "test", "train_epoch_median_s",
        "valid_pass_median_s", "test_pass_median_s", "fit_s", "total_s", "recbole_log")},
        indent=1))


if __name__ == "__main__":
    main()
