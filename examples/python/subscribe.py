#!/usr/bin/python3
"""Print every closed bar of one series as it closes, as a registered consumer (`mdshm show`
lists it).

    PYTHONPATH=build/python /usr/bin/python3 examples/python/subscribe.py --instance demo eth_ticks
"""

import argparse
from datetime import datetime, timezone

import mdshm


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("series", nargs="?", default="eth_ticks")
    ap.add_argument("--instance", default="default")
    ap.add_argument("--name", default="py-subscribe")
    ap.add_argument("--count", type=int, default=0, help="stop after this many bars (0: run until Ctrl-C)")
    args = ap.parse_args()
    printed = 0
    with mdshm.Subscription(args.name, args.series, instance=args.instance) as sub:
        while args.count == 0 or printed < args.count:
            bars, lapped = sub.poll()
            if lapped:
                print(f"lost {lapped} bars to lapping (reading too slowly)")
            for b in bars:
                t = datetime.fromtimestamp(b["open_time_ms"] / 1000, timezone.utc)
                print(f"{args.series} {t:%Y-%m-%d %H:%M:%S} o={b['open']:.2f} h={b['high']:.2f} l={b['low']:.2f} "
                      f"c={b['close']:.2f} v={b['volume']:.4f} trades={b['trade_count']} flags={b['flags']:#x}")
                printed += 1
            if not len(bars) and sub.wait(1.0) == "writer_dead":
                print("writer dead; waiting for it to come back")


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        pass
