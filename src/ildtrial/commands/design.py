"""``ildtrial design``: operating characteristics of the design by simulation at the data level.

Power, type I error, CI coverage and stopping-rule probabilities across a grid of sample
sizes, effects and related-SAE rates, each trial analysed with the project's own batched
MMRM and Fisher's exact test. Prints a table; writes CSV and a power plot when asked.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any


def _numbers(text: str, kind: type) -> list[Any]:
    try:
        return [kind(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") from None


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("design", help="power, type I error and stopping probabilities by simulation")
    parser.add_argument("--n-per-arm", default="10,15,20", type=lambda t: _numbers(t, int),
                        help="sample sizes per arm (default 10,15,20)")
    parser.add_argument("--effects", default="0,150,315", type=lambda t: _numbers(t, float),
                        help="true week-52 differences MSC - placebo in the endpoint's unit (default 0,150,315)")
    parser.add_argument("--sae-rates", default="0,0.005,0.02", type=lambda t: _numbers(t, float),
                        help="per-infusion probability of a product-related SAE in the MSC arm")
    parser.add_argument("--endpoint", default="FVC", choices=["FVC", "DLCO", "6MWD"])
    parser.add_argument("--trials", type=int, default=2000, help="simulated trials per scenario (default 2000)")
    parser.add_argument("--alpha", type=float, default=0.05)
    parser.add_argument("--seed", type=int, default=20151102)
    parser.add_argument("--out", help="folder for design.csv and design-power.png")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ildtrial.simulate.design import operating_characteristics

    if args.trials < 10:
        print("ildtrial design: --trials must be at least 10", file=sys.stderr)
        return 2
    if not 0 < args.alpha < 1:
        print("ildtrial design: --alpha must be between 0 and 1", file=sys.stderr)
        return 2
    started = time.perf_counter()
    table = operating_characteristics(args.n_per_arm, args.effects, args.trials, args.seed, endpoint=args.endpoint,
                                      alpha=args.alpha, sae_rate_grid=args.sae_rates, progress=True)
    seconds = time.perf_counter() - started
    columns = [c for c in ("n_per_arm", "effect", "related_sae_per_infusion", "rejection_rate", "coverage", "bias",
                           "n_converged", "sae_fisher_rejection", "stop_probability") if c in table.columns]
    print(table[columns].to_string(index=False, float_format=lambda x: f"{x:.3f}"))
    total = len(args.n_per_arm) * len(args.effects) * args.trials  # SAE rates reuse the same trials
    print(f"\n{total} simulated trials analysed in {seconds:.1f} s ({total / seconds:.0f} trials/s); "
          f"rejection rate = power where effect != 0, type I error where effect = 0")
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        table.to_csv(out / "design.csv", index=False)
        plot(table, args.endpoint, out / "design-power.png")
        print(f"wrote {out / 'design.csv'} and {out / 'design-power.png'}")
    return 0


def plot(table: Any, endpoint: str, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rate_col = "related_sae_per_infusion" if "related_sae_per_infusion" in table.columns else None
    view = table if rate_col is None else table[table[rate_col] == table[rate_col].min()]
    fig, ax = plt.subplots(figsize=(6, 4))
    for n, group in view.groupby("n_per_arm"):
        group = group.sort_values("effect")
        ax.plot(group["effect"], group["rejection_rate"], marker="o", label=f"{n} per arm")
    ax.axhline(0.8, color="grey", linestyle=":", linewidth=1)
    ax.axhline(0.05, color="grey", linestyle="--", linewidth=1)
    ax.set_xlabel(f"true week-52 difference in {endpoint} (MSC - placebo)")
    ax.set_ylabel("rejection rate (power; type I error at 0)")
    ax.set_ylim(0, 1)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
