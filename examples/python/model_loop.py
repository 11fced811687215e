#!/usr/bin/python3
"""A model loop on the live stream: every second (or on each update, with --on-update) take a
snapshot of the five series through the adapter, run a tiny torch CNN on the [S, F, T] tensor
(random weights: the point is the data path) and print the latency from the newest bar's
update_wall_ns (when the daemon applied the trade) to the model's output.

    PYTHONPATH=build/python /usr/bin/python3 examples/python/model_loop.py --instance demo
"""

import argparse
import time

import numpy as np

import mdshm

try:
    import torch
except ImportError:  # python3-torch (Debian) is optional for the package, not for this example
    raise SystemExit("this example needs python3-torch: apt-get install python3-torch")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--instance", default="default")
    ap.add_argument("--window", type=int, default=300)
    ap.add_argument("--iterations", type=int, default=0, help="stop after this many (0: run until Ctrl-C)")
    ap.add_argument("--on-update", action="store_true", help="run on each eth_ticks update instead of each second")
    args = ap.parse_args()

    ticks = mdshm.Series("eth_ticks", instance=args.instance)
    # 6 features: open, high, low, close, volume and elapsed_frac (in_progress=True below).
    model = torch.nn.Sequential(
        torch.nn.Conv1d(6, 16, kernel_size=5, padding=2), torch.nn.ReLU(),
        torch.nn.AdaptiveAvgPool1d(1), torch.nn.Flatten(), torch.nn.Linear(16, 3))
    model.eval()
    lat_us = []
    i = 0
    while args.iterations == 0 or i < args.iterations:
        if args.on_update:
            ticks.wait(1.0)
        else:
            time.sleep(1.0 - time.time() % 1.0)
        newest = ticks.latest()
        x = mdshm.tensors(window=args.window, instance=args.instance, price="relative", volume="log1p",
                          in_progress=True)
        cnn, mask = x.torch()
        with torch.no_grad():
            out = model(cnn * mask[:, None, :])  # the series are the batch: [S, F, T] -> [S, 3]
        lat = (time.time_ns() - int(newest["update_wall_ns"])) / 1000
        lat_us.append(lat)
        q = x.quality["eth_ticks"]
        print(f"{x.as_of:%H:%M:%S.%f} close={newest['close']:.2f} out={out[0].numpy().round(3)} "
              f"completeness={q['completeness']:.3f} latency={lat:.0f} us")
        i += 1
    if lat_us:
        print(f"latency p50 {np.percentile(lat_us, 50):.0f} us, p99 {np.percentile(lat_us, 99):.0f} us over {len(lat_us)}")


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        pass
