"""``python -m rec_jax.policies``: the registered policies and what each declares."""
from rec_jax.policies import POLICY_NAMES, policy_info


def main() -> None:
    rows = [("name", "kind", "features", "propensities", "slate marginals", "params")]
    for name in POLICY_NAMES:
        info = policy_info(name)
        rows.append((name, info.kind, "yes" if info.needs_features else "no", info.propensities, info.marginals,
                     info.params.__name__))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip())


if __name__ == "__main__":
    main()
