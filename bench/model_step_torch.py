#!/usr/bin/env python3
"""PyTorch's twin of `convkit-bench --model`: whole training steps (forward, cross-entropy,
backward, SGD with momentum 0.9) of the same torchvision network, float32 without TF32, random
3x224x224 images and 1000 classes, timed with CUDA events between consecutive steps after
warm-up; the median per step. With --merge-into, the numbers join convkit-bench's JSON: each
"model_steps" entry of the same model and batch gains "pytorch_eager_ms" (and
"torch_compile_ms" with --compile) and the ratio "pytorch_over_convkit".

    python3 bench/model_step_torch.py --model resnet50 --batch 32 [--compile] [--merge-into latest.json]
    python3 bench/model_step_torch.py --device cpu --model resnet18 --batch 2 --steps 2   # plumbing only
"""
import argparse
import json
import statistics
import sys
import time


def time_steps(torch, model, images, labels, steps, warmup, device, compiled):
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    loss_fn = torch.nn.CrossEntropyLoss()
    run = torch.compile(model) if compiled else model

    def step():
        loss = loss_fn(run(images), labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    for _ in range(max(warmup, 1)):
        step()
    if device == "cuda":
        torch.cuda.synchronize()
        events = [torch.cuda.Event(enable_timing=True) for _ in range(steps + 1)]
        events[0].record()
        for i in range(steps):
            step()
            events[i + 1].record()
        events[-1].synchronize()
        times = [events[i].elapsed_time(events[i + 1]) for i in range(steps)]
    else:
        times = []
        for _ in range(steps):
            started = time.perf_counter()
            step()
            times.append((time.perf_counter() - started) * 1e3)
    return statistics.median(times)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="resnet50", choices=["resnet18", "resnet34", "resnet50", "vgg11_bn", "vgg16_bn"])
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--compile", action="store_true", help="also time torch.compile's model")
    parser.add_argument("--device", default="cuda", choices=["cuda", "cpu"])
    parser.add_argument("--merge-into", help="convkit-bench's --json file to add the numbers to")
    args = parser.parse_args()
    try:
        import torch
        import torchvision
    except ImportError as error:
        print(f"model_step_torch: {error.name} is not installed; nothing timed", file=sys.stderr)
        return 77
    if args.device == "cuda" and not torch.cuda.is_available():
        print("model_step_torch: no GPU: PyTorch sees no CUDA device; nothing timed", file=sys.stderr)
        return 77
    torch.backends.cudnn.benchmark = True
    torch.backends.cuda.matmul.allow_tf32 = False  # convkit's --model runs strict float32
    torch.backends.cudnn.allow_tf32 = False
    torch.manual_seed(0)
    images = torch.randn(args.batch, 3, 224, 224, device=args.device)
    labels = torch.randint(0, 1000, (args.batch,), device=args.device)
    result = {"model": args.model, "batch": args.batch, "torch": torch.__version__}
    model = getattr(torchvision.models, args.model)().to(args.device).train()
    result["pytorch_eager_ms"] = time_steps(torch, model, images, labels, args.steps, args.warmup, args.device, False)
    if args.compile:
        try:
            model = getattr(torchvision.models, args.model)().to(args.device).train()
            result["torch_compile_ms"] = time_steps(torch, model, images, labels, args.steps, args.warmup,
                                                    args.device, True)
        except Exception as error:  # torch.compile needs a working Triton; say why it did not run
            result["torch_compile_note"] = f"failed: {type(error).__name__}: {str(error)[:200]}"
    print(json.dumps(result))
    if args.merge_into:
        with open(args.merge_into) as f:
            bench = json.load(f)
        merged = False
        for entry in bench.get("model_steps", []):
            if entry.get("model") == args.model and entry.get("batch") == args.batch:
                entry.update({k: v for k, v in result.items() if k not in ("model", "batch")})
                if entry.get("median_ms"):
                    entry["pytorch_over_convkit"] = result["pytorch_eager_ms"] / entry["median_ms"]
                merged = True
        if not merged:
            bench.setdefault("model_steps", []).append(dict(result, note="no convkit entry of this model and batch"))
        with open(args.merge_into, "w") as f:
            json.dump(bench, f, indent=2)
            f.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
