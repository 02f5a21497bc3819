#!/usr/bin/env python3
"""End-to-end training throughput: convkit's Fashion-MNIST trainer against the same model in
PyTorch (eager and torch.compile), same GPU, batch size and precision. Writes the fields of
docs/bench/e2e.json: convkit_img_s, pytorch_eager_img_s, torch_compile_img_s, batch, precision,
accuracies (and how each number was taken).

    python3 bench/e2e_fashion_mnist.py --build-dir build-gpu --output e2e.json [--data-dir DIR]

The PyTorch twin is samples/common/fashion_mnist_model.cpp written in torch.nn: two
conv(3x3, pad 1, no bias)-BN-ReLU-maxpool(2) stages (1 -> 32 -> 64 channels, 28 -> 14 -> 7),
flatten, Linear(64*7*7, 128), ReLU, Dropout(0.25), Linear(128, 10); cross-entropy; Adam
(lr 3e-3, weight decay 5e-4) with a one-cycle schedule, as the trainer. Its inputs are already on the GPU (random images unless
--data-dir holds the Fashion-MNIST IDX files), so its numbers exclude data loading.

The convkit number comes from the trainer (samples/fashion_mnist): with its throughput-only flag
when `--help` lists one (--throughput-only, --benchmark); else it trains max(2, --epochs) epochs
without augmentation into a temporary --out and reads the last epoch's train_images_per_second
from metrics.json (the first epoch is the warm-up), falling back to the median of the "img/s"
values it prints. --trainer and --trainer-args (e.g. its data folder) override what is run.
Throughput is images per second after warm-up; timing uses torch.cuda.synchronize.
"""
import argparse
import gzip
import json
import os
import re
import shlex
import statistics
import subprocess
import sys
import tempfile
import time

THROUGHPUT_FLAGS = ("--throughput-only", "--benchmark")


def find_trainer(build_dir):
    for root, _, files in os.walk(os.path.join(build_dir, "samples")):
        for name in sorted(files):
            path = os.path.join(root, name)
            if name.startswith("fashion_mnist") and os.access(path, os.X_OK) and not name.endswith((".so", ".a")):
                return path
    return None


def images_per_second_from_metrics(metrics):
    """The last epoch's train_images_per_second in the trainer's metrics.json (an "epochs" list)."""
    epochs = metrics.get("epochs") if isinstance(metrics, dict) else None
    rates = [e.get("train_images_per_second") for e in epochs or [] if isinstance(e, dict)]
    rates = [r for r in rates if r]
    accuracy = metrics.get("test_accuracy") if isinstance(metrics, dict) else None
    if accuracy is None and epochs:
        accuracy = epochs[-1].get("test_accuracy")
    return (rates[-1] if rates else None), accuracy, len(rates)


def run_convkit(trainer, batch, epochs, extra_args, timeout):
    help_text = subprocess.run([trainer, "--help"], capture_output=True, text=True, timeout=60).stdout
    flag = next((f for f in THROUGHPUT_FLAGS if f in help_text), None)
    with tempfile.TemporaryDirectory() as out_dir:
        command = [trainer] + ([flag] if flag else []) + ["--batch-size", str(batch)]
        if "--epochs" in help_text and not flag:
            command += ["--epochs", str(epochs)]  # the first epoch is the warm-up
        if "--no-augment" in help_text:
            command += ["--no-augment"]  # PyTorch's twin does not augment either
        if "--out" in help_text:
            command += ["--out", out_dir]
        command += shlex.split(extra_args)
        started = time.time()
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
        output = done.stdout + done.stderr
        metrics_path = os.path.join(out_dir, "metrics.json")
        metrics = json.load(open(metrics_path)) if os.path.exists(metrics_path) else None
    if done.returncode != 0:
        return None, None, f"trainer failed (exit {done.returncode}): {output[-400:]}"
    rate, accuracy, count = images_per_second_from_metrics(metrics)
    if rate and count > 1:
        how = f"{' '.join(command)}: metrics.json, train images/s of the last of {count} epochs"
    else:
        # The progress bar's "N img/s", redrawn in place: the median of the values after the first.
        rates = [float(m) for m in re.findall(r"([0-9]+(?:\.[0-9]+)?)\s*(?:images|img)/s", output)]
        if not rates:
            return None, None, f"trainer printed no images/s: {output[-400:]}"
        measured = rates[1:] if len(rates) > 1 else rates
        rate = statistics.median(measured)
        how = f"{' '.join(command)}: median of {len(measured)} printed img/s values after the first"
        if accuracy is None:
            found = re.findall(r"test accuracy[:= ]+([0-9.]+)", output, flags=re.I)
            accuracy = float(found[-1]) if found else None
    return rate, accuracy, how + f" ({time.time() - started:.0f} s)"


def load_idx(path):
    import numpy as np

    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as f:
        data = f.read()
    dims = data[3]
    shape = [int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(dims)]
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * dims).reshape(shape)


def find_idx(data_dir, stem):
    for suffix in ("", ".gz"):
        path = os.path.join(data_dir, stem + suffix)
        if os.path.exists(path):
            return path
    raise FileNotFoundError(os.path.join(data_dir, stem))


def make_model(torch):
    nn = torch.nn

    def stage(cin, cout):
        return [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(), nn.MaxPool2d(2)]

    return nn.Sequential(*stage(1, 32), *stage(32, 64), nn.Flatten(), nn.Linear(64 * 7 * 7, 128), nn.ReLU(),
                         nn.Dropout(0.25), nn.Linear(128, 10))


def images_count(train):
    return train[0].shape[0]


def run_pytorch(torch, compiled, args, train, test):
    torch.manual_seed(0)
    model = make_model(torch).to(args.device)
    if args.optimizer == "adam":
        optimizer = torch.optim.Adam(model.parameters(), lr=3e-3, weight_decay=5e-4)
    else:
        optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    total_steps = max(args.warmup_steps + args.steps, args.epochs * (images_count(train) // args.batch))
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=optimizer.param_groups[0]["lr"],
                                                   total_steps=total_steps + 1)
    loss_fn = torch.nn.CrossEntropyLoss()
    step_model = torch.compile(model) if compiled else model
    images, labels = train
    n = images.shape[0] // args.batch * args.batch

    def step(i):
        start = (i * args.batch) % n
        x, y = images[start : start + args.batch], labels[start : start + args.batch]
        optimizer.zero_grad(set_to_none=True)
        loss = loss_fn(step_model(x), y)
        loss.backward()
        optimizer.step()
        schedule.step()

    model.train()
    for i in range(args.warmup_steps):
        step(i)
    synchronize = torch.cuda.synchronize if args.device == "cuda" else (lambda: None)
    synchronize()
    started = time.perf_counter()
    for i in range(args.steps):
        step(args.warmup_steps + i)
    synchronize()
    rate = args.steps * args.batch / (time.perf_counter() - started)
    accuracy = None
    if test is not None:
        for i in range(args.steps + args.warmup_steps, args.epochs * (n // args.batch)):
            step(i)
        model.eval()
        with torch.no_grad():
            test_x, test_y = test
            predictions = torch.cat([step_model(test_x[i : i + 1000]).argmax(1) for i in range(0, len(test_x), 1000)])
            accuracy = (predictions == test_y).float().mean().item()
    return rate, accuracy


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--build-dir", default="build")
    parser.add_argument("--trainer", help="the convkit trainer (default: found under BUILD_DIR/samples)")
    parser.add_argument("--trainer-args", default="", help="extra arguments for the trainer (data folder, epochs)")
    parser.add_argument("--data-dir", help="Fashion-MNIST IDX files; without them PyTorch trains on random images")
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--precision", default="f32", choices=["f32"], help="convkit trains in float32")
    parser.add_argument("--optimizer", default="adam", choices=["adam", "sgd"], help="adam: as the trainer")
    parser.add_argument("--warmup-steps", type=int, default=50)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--epochs", type=int, default=1, help="epochs for the accuracies (with --data-dir)")
    parser.add_argument("--train-limit", type=int, help="train both on the first N images only (plumbing checks)")
    parser.add_argument("--test-limit", type=int, help="test both on the first N images only")
    parser.add_argument("--timeout", type=int, default=600)
    parser.add_argument("--output", default="e2e.json")
    parser.add_argument("--device", default="cuda", choices=["cuda", "cpu"], help="cpu: a smoke test of the script only")
    args = parser.parse_args()

    try:
        import torch
    except ImportError:
        print("e2e_fashion_mnist: PyTorch is not installed; nothing compared", file=sys.stderr)
        return 77
    if args.device == "cuda" and not torch.cuda.is_available():
        print("e2e_fashion_mnist: PyTorch sees no CUDA device; nothing compared", file=sys.stderr)
        return 77
    torch.backends.cudnn.benchmark = True
    # Same math as convkit's float32 training: no TF32.
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False

    device = torch.device(args.device)
    test = None
    if args.data_dir:
        to_images = lambda a: torch.tensor(a, dtype=torch.float32, device=device).div_(255).unsqueeze(1)
        to_labels = lambda a: torch.tensor(a, dtype=torch.int64, device=device)
        train = (to_images(load_idx(find_idx(args.data_dir, "train-images-idx3-ubyte"))),
                 to_labels(load_idx(find_idx(args.data_dir, "train-labels-idx1-ubyte"))))
        test = (to_images(load_idx(find_idx(args.data_dir, "t10k-images-idx3-ubyte"))),
                to_labels(load_idx(find_idx(args.data_dir, "t10k-labels-idx1-ubyte"))))
        if args.train_limit:
            train = (train[0][: args.train_limit], train[1][: args.train_limit])
        if args.test_limit:
            test = (test[0][: args.test_limit], test[1][: args.test_limit])
    else:
        generator = torch.Generator(device=device).manual_seed(0)
        train = (torch.rand(60000, 1, 28, 28, device=device, generator=generator),
                 torch.randint(0, 10, (60000,), device=device, generator=generator))

    result = {"gpu": torch.cuda.get_device_name() if args.device == "cuda" else "cpu (smoke test)", "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
              "batch": args.batch, "precision": args.precision, "torch": torch.__version__,
              "convkit_img_s": None, "pytorch_eager_img_s": None, "torch_compile_img_s": None,
              "accuracies": {"convkit": None, "pytorch_eager": None, "torch_compile": None}, "notes": {}}

    trainer = args.trainer or find_trainer(args.build_dir)
    if trainer:
        trainer_args = args.trainer_args
        if args.data_dir:
            trainer_args += f" --data-dir {shlex.quote(args.data_dir)}"
        if args.train_limit:
            trainer_args += f" --train-limit {args.train_limit}"
        if args.test_limit:
            trainer_args += f" --test-limit {args.test_limit}"
        rate, accuracy, how = run_convkit(trainer, args.batch, max(2, args.epochs), trainer_args, args.timeout)
        result["convkit_img_s"], result["accuracies"]["convkit"] = rate, accuracy
        result["notes"]["convkit"] = how
    else:
        result["notes"]["convkit"] = f"no fashion_mnist trainer under {args.build_dir}/samples (build it first)"

    for key, compiled in (("pytorch_eager", False), ("torch_compile", True)):
        try:
            rate, accuracy = run_pytorch(torch, compiled, args, train, test)
            result[key + "_img_s"], result["accuracies"][key] = rate, accuracy
            result["notes"][key] = (f"{args.steps} steps after {args.warmup_steps} warm-up, inputs resident on the "
                                    f"GPU, {args.optimizer} + one-cycle, cudnn.benchmark, no TF32")
        except Exception as error:  # torch.compile needs a working Triton; say why it did not run
            result["notes"][key] = f"failed: {type(error).__name__}: {str(error)[:300]}"

    with open(args.output, "w") as f:
        json.dump(result, f, indent=2)
        f.write("\n")
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
