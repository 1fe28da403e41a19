"""``python -m rec_jax.data fetch ml-100k|ml-1m|ml-20m|obd`` and ``python -m rec_jax.data stats NAME|PATH``.

A ``DataError`` prints one ``error: ...`` line on stderr and exits with status 1.
"""
from __future__ import annotations

import dataclasses
import sys

import rec_jax.cli
from rec_jax.data import fetch, load


@dataclasses.dataclass(frozen=True)
class Fetch:
    """Download a dataset into the cache and print its folder."""

    name: str  # ml-100k, ml-1m, ml-20m (GroupLens archives, MD5-checked) or obd


@dataclasses.dataclass(frozen=True)
class Stats:
    """Print users/items/interactions after the filter."""

    data: str  # ml-100k, synthetic, or a path to an interaction file
    min_user: int = 5  # k-core: users with fewer interactions are dropped
    min_item: int = 5  # k-core: items with fewer interactions are dropped
    filter: str = "kcore"  # kcore (iterated) or sasrec (one pass on raw counts, ids by first appearance)


def run(cmd: Fetch | Stats) -> None:
    if isinstance(cmd, Fetch):
        print(fetch(cmd.name))
    else:
        seqs = load(cmd.data, min_user=cmd.min_user, min_item=cmd.min_item, filter=cmd.filter)
        print(f"users: {seqs.num_users}\nitems: {seqs.num_items}\ninteractions: {seqs.num_interactions}")


def main(argv: list[str] | None = None) -> int:
    return rec_jax.cli.main({"fetch": Fetch, "stats": Stats}, run, argv, __doc__.splitlines()[0],
                            prog="python -m rec_jax.data", error_code=1)


if __name__ == "__main__":
    sys.exit(main())
