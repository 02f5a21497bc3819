#!/usr/bin/env python3
"""A short summary of a convkit-bench --json file, for the end of scripts/gpu-all's bench phase:
the machine, the status counts, per suite the geometric mean of cuDNN time / convkit time,
the layer rows' share of the copy bandwidth (they have no cuDNN side; issue #15's target is
0.85) and those below it, the variants that ran convkit's side (rows' convkit_variant, where the
JSON has it), and the rows where convkit is furthest behind.

    python3 bench/summarize_bench.py results.json [--worst N]
"""
import json
import math
import sys


# Issue #15: the bandwidth-bound layers at 85% of the measured copy bandwidth or more.
LAYER_TARGET = 0.85


def summarize(report, worst=5):
    lines = []
    peak = report.get("peak", {})
    fmt = lambda v, unit: "n/a" if v is None else f"{v:.0f} {unit}" if unit == "GB/s" else f"{v:.1f} {unit}"
    lines.append(f"gpu: {report['gpu']} | driver {report['driver']} | CUDA {report['cuda']} | cuDNN {report['cudnn']}")
    lines.append(
        "peaks: copy {} | fp32 {} | tf32 {} | bf16 {}".format(
            fmt(peak.get("copy_gbps"), "GB/s"), fmt(peak.get("fp32_tflops"), "TFLOP/s"),
            fmt(peak.get("tf32_tflops"), "TFLOP/s"), fmt(peak.get("bf16_tflops"), "TFLOP/s")))
    results = report["results"]
    counts = {}
    for row in results:
        counts[row["status"]] = counts.get(row["status"], 0) + 1
    lines.append("results: " + ", ".join(f"{n} {s}" for s, n in sorted(counts.items())))
    suites = {}
    for row in results:
        if row["status"] == "ok" and row["ratio"]:
            suites.setdefault(row["suite"], []).append(row["ratio"])
    for suite, ratios in suites.items():
        geomean = math.exp(sum(math.log(r) for r in ratios) / len(ratios))
        lines.append(f"  {suite:<11} cudnn/convkit geomean {geomean:6.3f}  (min {min(ratios):.3f}, "
                     f"max {max(ratios):.3f}, {len(ratios)} rows)")
    copy = peak.get("copy_gbps")
    layers = [r for r in results if r.get("op") == "layer" and r["status"] == "ok" and r.get("gbps")]
    if layers and copy:
        shares = sorted(r["gbps"] / copy for r in layers)
        median = shares[len(shares) // 2] if len(shares) % 2 else (shares[len(shares) // 2 - 1] + shares[len(shares) // 2]) / 2
        lines.append(f"  layers      share of the copy bandwidth median {median:.2f}  (min {shares[0]:.2f}, "
                     f"max {shares[-1]:.2f}, {len(shares)} rows; target {LAYER_TARGET})")
        for row in sorted(layers, key=lambda r: r["gbps"]):
            if row["gbps"] / copy < LAYER_TARGET:
                lines.append(f"    {row['gbps'] / copy:.2f} {row['direction']:<10} {row['dtype']:<5} {row['name']}")
    ran = {}
    for row in results:
        if row.get("convkit_variant"):
            ran[row["convkit_variant"]] = ran.get(row["convkit_variant"], 0) + 1
    if ran:
        lines.append("convkit ran: " + ", ".join(f"{name} {n}" for name, n in sorted(ran.items())))
    timed = sorted((r for r in results if r["status"] == "ok" and r["ratio"]), key=lambda r: r["ratio"])
    if timed:
        lines.append(f"convkit furthest behind (ratio, direction, variant, config):")
        for row in timed[:worst]:
            variant = row.get("convkit_variant") or "-"
            lines.append(f"  {row['ratio']:.3f} {row['direction']:<10} {variant:<20} {row['name']}")
    failed = [r for r in results if r["status"] == "mismatch"]
    for row in failed:
        lines.append(f"  MISMATCH {row['direction']} {row['dtype']} {row['name']}")
    return "\n".join(lines)


def main(argv):
    if len(argv) < 2:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    worst = int(argv[argv.index("--worst") + 1]) if "--worst" in argv else 5
    with open(argv[1]) as f:
        print(summarize(json.load(f), worst))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
