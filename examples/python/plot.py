#!/usr/bin/python3
"""Plot the five series' closes (and volume) of a universal snapshot to a PNG, no notebook.

    PYTHONPATH=build/python /usr/bin/python3 examples/python/plot.py --instance demo -o five.png
"""

import argparse
from datetime import datetime, timezone

import mdshm

try:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
except ImportError:
    raise SystemExit("this example needs python3-matplotlib: apt-get install python3-matplotlib")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--instance", default="default")
    ap.add_argument("--window", type=int, default=300)
    ap.add_argument("-o", "--output", default="mdshm-five.png")
    args = ap.parse_args()
    u = mdshm.universal(window=args.window, instance=args.instance)
    names = ("eth_ticks", "eth_1m", "eth_1h", "eth_1d", "btc_ticks")
    fig, axes = plt.subplots(len(names), 1, figsize=(10, 2.2 * len(names)), constrained_layout=True)
    for ax, sid in zip(axes, names):
        rows = getattr(u, sid)
        m = u.metadata[sid]
        if len(rows) == 0:
            ax.set_title(f"{sid}: no bars ({m['status']})")
            continue
        t = [datetime.fromtimestamp(ms / 1000, timezone.utc) for ms in rows[:, 0]]
        ax.plot(t, rows[:, 4], lw=1)
        ax.set_title(f"{sid}: {m['bars']} bars, missing {m['missing']}, {m['writer_state']}", fontsize=9)
        vol = ax.twinx()
        vol.bar(t, rows[:, 5], width=(t[-1] - t[0]) / max(len(t), 1), alpha=0.25, color="gray")
    fig.suptitle(f"mdshm instance {args.instance} at {u.timestamp:%Y-%m-%d %H:%M:%S} UTC")
    fig.savefig(args.output, dpi=100)
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
