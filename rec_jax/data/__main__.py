"""``python -m rec_jax.data fetch ml-100k|obd`` and ``python -m rec_jax.data stats ml-100k|synthetic|PATH``.

A ``DataError`` prints one ``error: ...`` line on stderr and exits with status 1.
"""
from __future__ import annotations

import argparse
import sys

from rec_jax.data import DataError, fetch, load


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m rec_jax.data", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p_fetch = sub.add_parser("fetch", help="download a dataset into the cache and print its folder")
    p_fetch.add_argument("name", help="ml-100k or obd")
    p_stats = sub.add_parser("stats", help="print users/items/interactions after the k-core filter")
    p_stats.add_argument("data", help="ml-100k, synthetic, or a path to an interaction file")
    p_stats.add_argument("--min-user", type=int, default=5)
    p_stats.add_argument("--min-item", type=int, default=5)
    args = parser.parse_args(argv)
    try:
        if args.command == "fetch":
            print(fetch(args.name))
        else:
            seqs = load(args.data, min_user=args.min_user, min_item=args.min_item)
            print(f"users: {seqs.num_users}\nitems: {seqs.num_items}\ninteractions: {seqs.num_interactions}")
    except DataError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
