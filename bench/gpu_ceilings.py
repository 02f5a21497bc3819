#!/usr/bin/env python3
"""The measured ceilings of the machine a GPU run lands on, through PyTorch: device copy
bandwidth and the dense matrix rates in BF16, TF32 and strict FP32. The kernel benchmarks and
docs/benchmarks.md compare convkit's kernels with these, not with a datasheet.

    python3 bench/gpu_ceilings.py --output machine.json            # on the GPU
    python3 bench/gpu_ceilings.py --device cpu --output x.json      # plumbing check, tiny sizes

Copy bandwidth counts bytes read plus bytes written, as convkit-bench does. Each figure is the
median of timed repetitions after warm-up (CUDA events on the GPU); the copy rotates over
buffers larger than the L2 so the cache is not what is measured.
"""
import argparse
import json
import statistics
import sys
import time


def timed(torch, device, function, repeat, warmup):
    for _ in range(warmup):
        function()
    times = []
    for _ in range(repeat):
        if device == "cuda":
            start, stop = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            function()
            stop.record()
            stop.synchronize()
            times.append(start.elapsed_time(stop) / 1e3)
        else:
            started = time.perf_counter()
            function()
            times.append(time.perf_counter() - started)
    return statistics.median(times)


def copy_bandwidth(torch, device, megabytes):
    elements = megabytes * (1 << 20) // 4
    # Two source/destination pairs in turn: together far past any L2, so each copy streams DRAM.
    pairs = [(torch.empty(elements, device=device), torch.empty(elements, device=device)) for _ in range(2)]
    state = {"i": 0}

    def copy():
        source, destination = pairs[state["i"] % 2]
        destination.copy_(source)
        state["i"] += 1

    seconds = timed(torch, device, copy, repeat=20, warmup=3)
    return 2 * elements * 4 / seconds / 1e9  # GB/s, read + write


def matmul_rate(torch, device, size, dtype, allow_tf32):
    torch.backends.cuda.matmul.allow_tf32 = allow_tf32
    a = torch.randn(size, size, device=device).to(dtype)
    b = torch.randn(size, size, device=device).to(dtype)
    seconds = timed(torch, device, lambda: torch.mm(a, b), repeat=10, warmup=3)
    torch.backends.cuda.matmul.allow_tf32 = False
    return 2 * size**3 / seconds / 1e12  # TFLOP/s


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda", choices=["cuda", "cpu"])
    parser.add_argument("--output", required=True)
    args = parser.parse_args()
    try:
        import torch
    except ImportError:
        print("gpu_ceilings: PyTorch is not installed; no ceilings measured", file=sys.stderr)
        return 77
    if args.device == "cuda" and not torch.cuda.is_available():
        print("gpu_ceilings: no GPU: PyTorch sees no CUDA device", file=sys.stderr)
        return 77
    gpu = args.device == "cuda"
    result = {
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "device": torch.cuda.get_device_name() if gpu else "cpu (plumbing check, tiny sizes)",
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version() if gpu else None,
    }
    if gpu:
        properties = torch.cuda.get_device_properties(0)
        result["multiprocessors"] = properties.multi_processor_count
        result["memory_gib"] = round(properties.total_memory / (1 << 30), 1)
        result["l2_mib"] = round(getattr(properties, "L2_cache_size", 0) / (1 << 20), 1)
    megabytes, size = (1024, 8192) if gpu else (8, 256)
    significant = lambda value: float(f"{value:.4g}")
    result["copy_gb_s"] = significant(copy_bandwidth(torch, args.device, megabytes))
    result["bf16_tflop_s"] = significant(matmul_rate(torch, args.device, size, torch.bfloat16, False))
    result["tf32_tflop_s"] = significant(matmul_rate(torch, args.device, size, torch.float32, True))
    result["fp32_tflop_s"] = significant(matmul_rate(torch, args.device, size, torch.float32, False))
    result["how"] = (f"PyTorch; copy of {megabytes} MiB buffers (read + write counted), {size}^3 matrix products; "
                     "median of timed repetitions after warm-up")
    with open(args.output, "w") as f:
        json.dump(result, f, indent=2)
        f.write("\n")
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
