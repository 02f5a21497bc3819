#!/usr/bin/env python3
"""Renders convkit-bench --json results as PNG charts: one per suite, the ratio cuDNN time /
convkit time for every configuration and direction (above 1: convkit is faster).

    python3 bench/plot_bench.py results.json OUTPUT_DIR

Needs matplotlib; without it, says so and exits 0 (the charts are optional, the JSON is not).
Rows whose status is not "ok" are drawn as gaps, labelled with their status. The layer rows
have no cuDNN side: their suite gets no chart (summarize_bench.py reports them).
"""
import json
import os
import sys


def short_name(name):
    # "conv2d in=32x64x56x56 w=64x64x3x3 s1x1_p1x1_d1x1_g1" -> "conv2d 32x64x56x56 w64x64x3x3 s1x1_p1x1_g1"
    text = " ".join(p.replace("in=", "").replace("w=", "w") for p in name.split())
    return text.replace("_d1x1x1", "").replace("_d1x1", "").replace("_d1_", "_")


def group_by_suite(results):
    suites = {}
    for row in results:
        suites.setdefault(row["suite"], []).append(row)
    return suites


def main(argv):
    if len(argv) != 3:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    with open(argv[1]) as f:
        report = json.load(f)
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        from matplotlib.patches import Patch
        from matplotlib.ticker import FormatStrFormatter
    except ImportError:
        print("plot_bench: matplotlib is not installed; no charts drawn (the JSON holds every number)")
        return 0
    os.makedirs(argv[2], exist_ok=True)
    colors = {"fwd": "#4c72b0", "bwd_data": "#dd8452", "bwd_filter": "#55a868"}
    written = []
    for suite, rows in group_by_suite(report["results"]).items():
        if all(r.get("op") == "layer" for r in rows):
            continue  # no cuDNN side, so no ratio: summarize_bench.py gives their share of the copy bandwidth
        labels = []
        for row in rows:
            label = f"{short_name(row['name'])} [{row['dtype']}]"
            if label not in labels:
                labels.append(label)
        directions = [d for d in ("fwd", "bwd_data", "bwd_filter") if any(r["direction"] == d for r in rows)]
        height = 0.8 / max(1, len(directions))
        ratios, gaps = [], []
        fig, ax = plt.subplots(figsize=(11, 0.45 * len(labels) * max(1, len(directions)) / 1.5 + 1.8))
        for k, direction in enumerate(directions):
            for row in rows:
                if row["direction"] != direction:
                    continue
                label = f"{short_name(row['name'])} [{row['dtype']}]"
                y = labels.index(label) + (k - (len(directions) - 1) / 2) * height
                if row["status"] == "ok" and row["ratio"]:
                    # From 1 to the ratio on a log axis: left of 1 convkit is slower, right faster.
                    ax.barh(y, row["ratio"] - 1.0, left=1.0, height=height, color=colors[direction])
                    ratios.append(row["ratio"])
                else:
                    gaps.append((y, row["status"]))
        low = min(ratios + [0.5]) / 1.3
        high = max(ratios + [2.0]) * 1.3
        for y, status in gaps:
            ax.text(1.0, y, " " + status, va="center", fontsize=7, color="#c44e52")
        ax.set_xscale("log")
        ax.xaxis.set_major_formatter(FormatStrFormatter("%g"))
        ax.xaxis.set_minor_formatter(FormatStrFormatter("%g"))
        ax.tick_params(axis="x", which="minor", labelsize=7)
        ax.set_xlim(low, high)
        ax.set_ylim(len(labels) - 0.5, -0.5)
        ax.legend(handles=[Patch(color=colors[d], label=d) for d in directions], loc="lower right", fontsize=8)
        ax.axvline(1.0, color="black", linewidth=0.8)
        ax.set_yticks(range(len(labels)))
        ax.set_yticklabels(labels, fontsize=7)
        ax.set_xlabel("cuDNN time / convkit time, log scale (above 1: convkit faster)")
        ax.set_title(f"{suite}: {report.get('gpu', '?')}, cuDNN {report.get('cudnn', '?')}, {report.get('date', '')}")
        fig.tight_layout()
        path = os.path.join(argv[2], f"ratio_{suite}.png")
        fig.savefig(path, dpi=110)
        plt.close(fig)
        written.append(path)
    print("plot_bench: wrote " + ", ".join(written) if written else "plot_bench: no results to draw")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
