#!/usr/bin/env python3
"""Host training speed: convkit's host-blas backend against PyTorch on the same CPU, same threads.

    python3 bench/host_training_vs_torch.py [--build-dir build] [--batch 128,64] [--threads 2]
                                            [--rounds 3] [--steps 20] [--epoch] [--json out.json]
                                            [--baseline-build-dir other-build]

The model is the main job's (samples/common/fashion_mnist_model.cpp) at --width 32:
conv3x3(1->32, pad 1, no bias)-BN-ReLU-maxpool2, conv3x3(32->64)-BN-ReLU-maxpool2, flatten,
Linear(3136, 128), ReLU, Dropout(0.25), Linear(128, 10); cross-entropy; Adam. A step is
zero_grad, forward, loss, backward, Adam step on a fixed batch of random 28x28 images (data
loading excluded from both). Both frameworks run as child processes with the same environment
(OMP_NUM_THREADS = --threads; torch.set_num_threads(--threads)), one after the other, and the
order alternates between rounds so that a busy neighbour slows both alike; each reports the
median step time of --steps steps after warm-up. The ratio is convkit / PyTorch images/s per round.

The breakdown (mean ms per step over a few more steps) times each module's forward around its
call in both; backward per autograd node: convkit's BackwardProfiler, PyTorch's autograd profiler
(the inclusive CPU time of each "evaluate_function: XBackward" event).

--epoch also trains one epoch of Fashion-MNIST (/usr/share/datasets/fashion-mnist) in both as the
main job does (Adam, one-cycle max lr 3e-3, batch --batch's first value) and prints test accuracy.
"""
import argparse
import gzip
import json
import os
import platform
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))


# ---------------------------------------------------------------- the PyTorch twin (child process)

def torch_model(width, torch):
    nn = torch.nn

    def stage(cin, cout):
        return [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(), nn.MaxPool2d(2)]

    return nn.Sequential(*stage(1, width), *stage(width, 2 * width), nn.Flatten(),
                         nn.Linear(2 * width * 7 * 7, 128), nn.ReLU(), nn.Dropout(0.25), nn.Linear(128, 10))


def torch_steps(args):
    import torch
    torch.set_num_threads(args.threads)
    torch.manual_seed(1)
    model = torch_model(args.width, torch)
    model.train()
    adam = torch.optim.Adam(model.parameters(), lr=1e-3)
    images = torch.randn(args.batch, 1, 28, 28)
    labels = torch.arange(args.batch) % 10
    loss_fn = torch.nn.functional.cross_entropy
    forward_s = [0.0] * len(model)
    totals = {"loss": 0.0, "backward": 0.0, "zero_grad": 0.0, "optimizer": 0.0}

    def step(profile):
        t = time.perf_counter()
        adam.zero_grad()
        if profile:
            totals["zero_grad"] += time.perf_counter() - t
        h = images
        if profile:
            for i, m in enumerate(model):
                t = time.perf_counter()
                h = m(h)
                forward_s[i] += time.perf_counter() - t
        else:
            h = model(h)
        t = time.perf_counter()
        loss = loss_fn(h, labels)
        if profile:
            totals["loss"] += time.perf_counter() - t
        t = time.perf_counter()
        loss.backward()
        if profile:
            totals["backward"] += time.perf_counter() - t
        t = time.perf_counter()
        adam.step()
        if profile:
            totals["optimizer"] += time.perf_counter() - t

    step(False)
    step(False)
    times = []
    for _ in range(args.steps):
        t = time.perf_counter()
        step(False)
        times.append(time.perf_counter() - t)
    times.sort()
    median = times[len(times) // 2]

    backward = {}
    start = time.perf_counter()
    for _ in range(args.profile_steps):
        # Only backward under the profiler: its overhead stays out of the forward timings.
        adam.zero_grad()
        loss = loss_fn(model(images), labels)
        with torch.autograd.profiler.profile() as prof:
            loss.backward()
        for e in prof.function_events:
            if "evaluate_function: " in e.name:
                node = e.name.split("evaluate_function: ")[1]
                backward[node] = backward.get(node, 0.0) + e.cpu_time_total / 1e3
        adam.step()
    del start
    for _ in range(args.profile_steps):
        step(True)
    per = 1e3 / max(args.profile_steps, 1)
    result = {
        "framework": "pytorch", "version": torch.__version__, "threads": torch.get_num_threads(),
        "width": args.width, "batch": args.batch, "steps": args.steps,
        "median_step_ms": median * 1e3, "min_step_ms": times[0] * 1e3, "max_step_ms": times[-1] * 1e3,
        "images_per_second": args.batch / median,
        "forward_ms": {f"{i} {type(m).__name__}": s * per for i, m in enumerate(model) for s in [forward_s[i]]},
        "backward_ms": {k: v / max(args.profile_steps, 1) for k, v in backward.items()},
        "backward_total_ms": totals["backward"] * per, "zero_grad_ms": totals["zero_grad"] * per,
        "optimizer_ms": totals["optimizer"] * per,
    }
    result["forward_ms"]["cross_entropy"] = totals["loss"] * per
    print(json.dumps(result))


def read_idx(path):
    import numpy as np
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as f:
        data = f.read()
    dims = data[3]
    shape = [int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(dims)]
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * dims).reshape(shape)


def find_idx(directory, stem):
    for name in (stem, stem + ".gz"):
        if os.path.exists(os.path.join(directory, name)):
            return os.path.join(directory, name)
    raise FileNotFoundError(f"{stem}[.gz] in {directory}")


def torch_epoch(args):
    import torch
    torch.set_num_threads(args.threads)
    torch.manual_seed(1)
    load = lambda stem: torch.from_numpy(read_idx(find_idx(args.data, stem)).copy())
    train_x = load("train-images-idx3-ubyte").float().div_(255).unsqueeze(1)
    train_y = load("train-labels-idx1-ubyte").long()
    test_x = load("t10k-images-idx3-ubyte").float().div_(255).unsqueeze(1)
    test_y = load("t10k-labels-idx1-ubyte").long()
    model = torch_model(args.width, torch)
    adam = torch.optim.Adam(model.parameters(), lr=3e-3)
    batches = (len(train_x) + args.batch - 1) // args.batch
    schedule = torch.optim.lr_scheduler.OneCycleLR(adam, max_lr=3e-3, total_steps=batches)
    model.train()
    order = torch.randperm(len(train_x))
    start = time.perf_counter()
    for b in range(batches):
        idx = order[b * args.batch:(b + 1) * args.batch]
        adam.zero_grad()
        torch.nn.functional.cross_entropy(model(train_x[idx]), train_y[idx]).backward()
        adam.step()
        schedule.step()
    seconds = time.perf_counter() - start
    model.eval()
    with torch.no_grad():
        correct = sum((model(test_x[i:i + 500]).argmax(1) == test_y[i:i + 500]).sum().item()
                      for i in range(0, len(test_x), 500))
    print(json.dumps({"framework": "pytorch", "width": args.width, "batch": args.batch,
                      "test_accuracy": correct / len(test_x), "train_seconds": seconds,
                      "train_images_per_second": len(train_x) / seconds}))


# ---------------------------------------------------------------- the driver

def run_json(command, env):
    """The child's JSON: convkit prints one object over a few lines, the PyTorch worker one line last."""
    out = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    if out.returncode != 0:
        sys.exit(f"{' '.join(command)} failed ({out.returncode}):\n{out.stderr}")
    text = out.stdout.strip()
    return json.loads(text if text.startswith("{\"framework\": \"convkit\"") else text.splitlines()[-1])


def convkit_command(args, batch, mode, build_dir=None):
    exe = os.path.join(build_dir or args.build_dir, "bench", "bench_host_training_profile")
    return [exe, "--mode", mode, "--width", str(args.width), "--batch", str(batch), "--steps", str(args.steps),
            "--profile-steps", str(args.profile_steps), "--data", args.data]


def torch_command(args, batch, mode):
    return [args.python, os.path.abspath(__file__), "--torch-worker", mode, "--width", str(args.width),
            "--batch", str(batch), "--steps", str(args.steps), "--profile-steps", str(args.profile_steps),
            "--threads", str(args.threads), "--data", args.data]


def breakdown_table(ck, pt):
    lines = [f"  {'forward (ms/step)':<28}{'convkit':>10}{'pytorch':>10}"]
    for key in ck["forward_ms"]:
        lines.append(f"  {key:<28}{ck['forward_ms'][key]:>10.2f}{pt['forward_ms'].get(key, float('nan')):>10.2f}")
    lines.append(f"  {'backward total':<28}{ck['backward_total_ms']:>10.2f}{pt['backward_total_ms']:>10.2f}")
    width = max(len(ck["backward_ms"]), len(pt["backward_ms"]))
    ck_back = sorted(ck["backward_ms"].items(), key=lambda kv: -kv[1])
    pt_back = sorted(pt["backward_ms"].items(), key=lambda kv: -kv[1])
    lines.append(f"  {'backward node: convkit':<36}{'ms':>8}    {'pytorch':<36}{'ms':>8}")
    for i in range(width):
        a = ck_back[i] if i < len(ck_back) else ("", None)
        b = pt_back[i] if i < len(pt_back) else ("", None)
        fa = f"{a[1]:8.2f}" if a[1] is not None else " " * 8
        fb = f"{b[1]:8.2f}" if b[1] is not None else " " * 8
        lines.append(f"  {a[0]:<36}{fa}    {b[0]:<36}{fb}")
    lines.append(f"  {'zero_grad / optimizer step':<28}{ck['zero_grad_ms']:>5.2f} /{ck['optimizer_ms']:>5.2f}"
                 f"    {pt['zero_grad_ms']:>5.2f} /{pt['optimizer_ms']:>5.2f}")
    return "\n".join(lines)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--build-dir", default="build")
    p.add_argument("--batch", default="128,64", help="comma-separated batch sizes")
    p.add_argument("--width", type=int, default=32)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--rounds", type=int, default=3, help="0: no speed rounds (with --epoch: accuracy only)")
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--profile-steps", type=int, default=5)
    p.add_argument("--epoch", action="store_true", help="also one epoch of Fashion-MNIST in both: test accuracy")
    p.add_argument("--data", default="/usr/share/datasets/fashion-mnist")
    p.add_argument("--json", help="write every result here")
    p.add_argument("--python", default="/usr/bin/python3", help="a Python with torch (Debian's python3-torch)")
    p.add_argument("--baseline-build-dir", help="also run the convkit of this build (e.g. the commit before a change)")
    p.add_argument("--torch-worker", choices=["steps", "epoch"], help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.torch_worker:
        args.batch = int(args.batch)
        return torch_steps(args) if args.torch_worker == "steps" else torch_epoch(args)

    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads))
    print(f"host training, width {args.width}, {args.threads} threads, {platform.processor() or platform.machine()}, "
          f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; load average {os.getloadavg()[0]:.1f}; "
          f"OMP_WAIT_POLICY={env.get('OMP_WAIT_POLICY', '(unset)')}")
    everything = {"threads": args.threads, "width": args.width, "date": time.strftime("%Y-%m-%dT%H:%MZ", time.gmtime()),
                  "runs": []}
    for batch in [int(b) for b in args.batch.split(",")] if args.rounds > 0 else []:
        ratios, best_ratios, last = [], [], None
        for r in range(args.rounds):
            order = [("convkit", convkit_command), ("pytorch", torch_command)]
            if args.baseline_build_dir:
                order.insert(1, ("baseline", lambda a, b, m: convkit_command(a, b, m, a.baseline_build_dir)))
            order = order[r % len(order):] + order[:r % len(order)]  # rotate: each goes first in turn
            results = {name: run_json(make(args, batch, "steps"), env) for name, make in order}
            ck, pt = results["convkit"], results["pytorch"]
            ratio = ck["images_per_second"] / pt["images_per_second"]
            ratios.append(ratio)
            last = (ck, pt)
            run = {"batch": batch, "round": r, "convkit": ck, "pytorch": pt, "ratio": ratio}
            # The fastest step of each is the least disturbed by neighbours on a shared machine.
            best_ratio = pt["min_step_ms"] / ck["min_step_ms"]
            run["best_step_ratio"] = best_ratio
            best_ratios.append(best_ratio)
            line = (f"batch {batch:4d} round {r}: convkit {ck['images_per_second']:8.1f} img/s, "
                    f"pytorch {pt['images_per_second']:8.1f} img/s, ratio {ratio:.2f} "
                    f"(fastest steps {ck['min_step_ms']:.1f} / {pt['min_step_ms']:.1f} ms: {best_ratio:.2f})")
            if "baseline" in results:
                base = results["baseline"]
                run["baseline_best_step_ratio"] = pt["min_step_ms"] / base["min_step_ms"]
                run["baseline"] = base
                run["baseline_ratio"] = base["images_per_second"] / pt["images_per_second"]
                line += (f"; baseline convkit {base['images_per_second']:8.1f} img/s, "
                         f"ratio {run['baseline_ratio']:.2f} (fastest steps {run['baseline_best_step_ratio']:.2f})")
            everything["runs"].append(run)
            print(line, flush=True)
        print(f"batch {batch:4d}: ratio convkit/pytorch median {statistics.median(ratios):.2f} "
              f"(min {min(ratios):.2f}, max {max(ratios):.2f}); of the fastest steps, median "
              f"{statistics.median(best_ratios):.2f}; breakdown of the last round:")
        print(breakdown_table(*last), flush=True)
    if args.epoch:
        batch = int(args.batch.split(",")[0])
        for name, make in (("convkit", convkit_command), ("pytorch", torch_command)):
            res = run_json(make(args, batch, "epoch"), env)
            everything.setdefault("epoch", {})[name] = res
            print(f"one epoch, batch {batch}: {name} test accuracy {res['test_accuracy']:.4f}, "
                  f"{res['train_images_per_second']:.0f} img/s over the epoch", flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(everything, f, indent=1)


if __name__ == "__main__":
    main()
