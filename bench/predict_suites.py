#!/usr/bin/env python3
"""Floors and predicted times for convkit-bench's conv1d and conv3d suites (issue #15).

Nothing here is measured: this is the model docs/benchmarks.md states ("The conv1d and conv3d
suites (issue #15): floors and predictions"), written as code so that the first GPU run can be
compared with it row by row, and the efficiencies below replaced by measured ones.

    python3 bench/predict_suites.py                      # every line, markdown tables
    python3 bench/predict_suites.py --quick              # the lines --quick keeps (scripts/gpu-all)
    python3 bench/predict_suites.py --suite conv3d --dtype bf16 --detail
    python3 bench/predict_suites.py --rank               # medians with each unbuilt kernel change
    python3 bench/predict_suites.py --check              # the models reproduce the docs' own figures

The suite lines are read from bench/kernel/bench_suites.cpp, so they stay the bench's own. The
schedules (tile, blocks, splits, phases) follow the launchers' rules: kernels/conv_igemm.cu
(default_tile, plan_launch, backward_data_launches), kernels/conv_igemm_support.cuh
(default_tile with the narrow tile, default_splits), kernels/conv_igemm_filter.cu (backward-filter
splits, and its tile chosen from its own GEMM with split-K counted in), kernels/conv_tiled.cu (tile_columns, tile_width, split_plan, per-phase
backward-data, conv_tiled_plan's backward-filter orientation by tile_area).
"""
import argparse
import math
import os
import re
import statistics
import sys

# ---- the machine (H100 SXM, datasheet; the run measures its own peaks) ----------------------
PEAK_TFLOPS = {"bf16": 989.0, "tf32": 494.0, "f32": 67.0}  # dense BF16, dense TF32, FP32 FMA
BANDWIDTH = 3.35e12  # HBM3, bytes/s
SMS = 132
ELEMENT_BYTES = {"bf16": 2, "tf32": 4, "f32": 4}

# ---- the models' constants (docs/benchmarks.md; change these after the first GPU run) ---------
# cuda.igemm ("Tensor-core implicit GEMM", "TF32", "Split-K in every pass"): a fraction e of the
# peak on the executed multiply-adds, scaled by the busy fraction of a wave; bytes at 0.6 of
# HBM; every kernel at least 3 us.
# "N": the narrow 128 x 64 tile (warps of 64 x 32: 6 ldmatrix per 16 mma against the large
# tile's 8 per 32, so 1.5x the shared-memory reads per multiply-add), for at most 64 columns;
# "T": the slim 128 x 32 tile (warps of 32 x 32 like the small tile's, so its e), at most 32.
IGEMM_E = {("bf16", "L"): 0.40, ("bf16", "N"): 0.35, ("bf16", "S"): 0.25, ("bf16", "T"): 0.25,
           ("tf32", "L"): 0.35, ("tf32", "N"): 0.30, ("tf32", "S"): 0.22, ("tf32", "T"): 0.22}
# conv_igemm_support.cuh: each tile's block edges (rows, columns) and blocks a wave of a 132-SM
# H100 holds (blocks_per_wave).
IGEMM_TILES = {"L": (128, 128, 2), "N": (128, 64, 3), "S": (64, 64, 4), "T": (128, 32, 4)}
# cuda.wgmma as built (conv_wgmma.cu, docs/benchmarks.md "wgmma variant: built"): 128x128 (one
# block an SM by its 129 KiB) and 128x64 (two), k tiles of one 128-byte row, split-K as
# cuda.igemm's (wave_blocks); e from the docs' predictions (0.50 / 0.45 bf16, 0.45 / 0.40 tf32).
WGMMA_TILES = {"W": (128, 128, 1), "WN": (128, 64, 2)}
WGMMA_E = {("bf16", "W"): 0.50, ("bf16", "WN"): 0.45, ("tf32", "W"): 0.45, ("tf32", "WN"): 0.40}
IGEMM_BW = 0.6
KERNEL_FLOOR_US = 3.0
# cuda.tiled ("Tiled implicit GEMM", "Strided backward-data per phase"): a fraction of the FP32
# peak by pass ("fwd", "bwd_data" at stride 1: the dense gather, "phase": one stride phase of
# backward-data, "bwd_filter") and column width (128: the 128 x 128 tile, 8 x 8 per thread, for
# GEMMs of more than 64 columns; 64: the 128 x 64 tile, 8 x 4, for at most 64). Each is the FFMA
# share of the kernel's main-loop SASS (2026-12-05, the 128x128 redesign; not run on a GPU) x 0.8
# for barriers, latency and the epilogue: wide 0.70 / 0.64 / 0.58 / 0.63, narrow 0.56 / 0.52 /
# 0.50 / 0.57 (fwd / bwd_data / phase / bwd_filter). The 128 x 64 design before it had loop shares
# of 0.31 / 0.19 / 0.41 / 0.29, so the 0.40 (gather passes) and 0.50 (phase) this model used for it
# were above that kernel's own issue bound, the gather passes' by far. A backward-filter run
# transposed (conv_tiled_plan: dw^T = x-patches^T dy) takes "bwd_filter" at the width it runs:
# the same two gathers, A's and B's roles swapped. A 1x1 kernel at stride 1 without padding runs
# the operands' pointwise form (conv_tiled_plan's `pointwise`: no tap coordinates, no bounds
# checks), loop shares wide 0.81 / 0.75 / 0.72 (0.71 transposed), narrow 0.73 / 0.69 / 0.62 (0.61)
# (fwd / bwd_data / bwd_filter): the "pw_" kinds. Bytes at the full 3.35 TB/s; 2 us between launches.
TILED_E = {
    ("fwd", 128): 0.56, ("bwd_data", 128): 0.51, ("phase", 128): 0.46, ("bwd_filter", 128): 0.50,
    ("fwd", 64): 0.45, ("bwd_data", 64): 0.42, ("phase", 64): 0.40, ("bwd_filter", 64): 0.46,
    ("pw_fwd", 128): 0.65, ("pw_bwd_data", 128): 0.60, ("pw_bwd_filter", 128): 0.58,
    ("pw_fwd", 64): 0.58, ("pw_bwd_data", 64): 0.55, ("pw_bwd_filter", 64): 0.50,
}


def tiled_kind(g, kind):
    """conv_tiled.cu runs_pointwise: a 1x1 kernel at stride 1 without padding reads its operands as
    the tensors themselves (the suites' f32 rows are float32)."""
    pointwise = g.taps == 1 and all(s == 1 for s in g.stride) and all(p == 0 for p in g.pad)
    return "pw_" + kind if pointwise and kind in ("fwd", "bwd_data", "bwd_filter") else kind
TILED_GAP_US = 2.0
# cuDNN: tensor cores at e = 0.65 above 2e10 multiply-adds, 0.45 below, bytes at 0.7 of HBM,
# at least 3 us; strict float32 (FMA math) at 0.65 of the FP32 peak (no Winograd: cuDNN's is for
# 2-D 3x3 filters, and these are 1xk or 3-D).
CUDNN_E_LARGE, CUDNN_E_SMALL, CUDNN_LARGE_MACS = 0.65, 0.45, 2e10
CUDNN_E_F32 = 0.65
CUDNN_BW = 0.7

# ---- what-if kernel changes (--scenario): each one's effect on the medians ranks the work ------
SCENARIOS = {
    "wgmma": "cuda.igemm's 128x128 tile at e = 0.65 (bf16) / 0.57 (tf32): wgmma + TMA (the plan)",
    "narrow_n": "no idle tile columns: GEMM N rounded to 8 (igemm) or 4 (tiled), not to the tile",
    "bandwidth": "cuda.igemm's memory-bound kernels at 0.8 of HBM (16-byte epilogue stores)",
    "fused_adder": "split-K's slices added by the GEMM's last block (no second kernel)",
    "more_splits": "split-K up to 512 slices (still each >= 8 k tiles), not 64",
    "pad4": "input channels padded to 4 in bf16 (8-byte cp.async vectors), not 8",
    "cached_weight": "cuda.igemm keeps the KRSC weight between calls (no permutation per call; the bench's "
                     "cuDNN side still permutes, so part of this gain is the comparison's, and 'all' leaves it out)",
    "wgmma_measured": "built, not a default: cuda.wgmma (forward, backward-data, bf16 backward-filter; "
                      "every pass split-K) wherever measured selection would find it faster than cuda.igemm",
}
ACTIVE = set()  # the scenarios in force


def igemm_e(dtype, tile):
    if tile in WGMMA_TILES:
        return WGMMA_E[(dtype, tile)]
    if "wgmma" in ACTIVE and tile in ("L", "N"):
        return {"bf16": 0.65, "tf32": 0.57}[dtype]
    return IGEMM_E[(dtype, tile)]


def igemm_bw():
    return 0.8 if "bandwidth" in ACTIVE else IGEMM_BW


def max_splits():
    return 512 if "more_splits" in ACTIVE else 64


def executed_columns(n, tile_edge, narrow):
    """Columns the tensor cores (or SIMT lanes) compute: the whole tile, or n rounded to `narrow`."""
    return ceil_div(n, narrow) * narrow if "narrow_n" in ACTIVE else ceil_div(n, tile_edge) * tile_edge


def ceil_div(a, b):
    return -(-a // b)


# ---- the suites' lines ----------------------------------------------------------------------
def suite_lines(suite, source):
    """[(line, quick)] of kConv1d / kConv3d in bench_suites.cpp."""
    name = {"conv1d": "kConv1d", "conv3d": "kConv3d", "transposed": "kTransposed"}[suite]
    with open(source) as f:
        text = f.read()
    body = re.search(r"SuiteLine> " + name + r" = \{(.*?)\n\};", text, re.S).group(1)
    return [(line, quick == "true") for line, quick in re.findall(r'\{"([^"]+)",\s*(true|false)\}', body)]


def parse_line(line):
    """One line of the configuration format, for what these suites use (s, p, d, g, op)."""
    words = line.split()
    op = words[0]
    fields = dict(w.split("=", 1) for w in words[1:] if "=" in w)
    params = [w for w in words[1:] if "=" not in w]
    shape_in = [int(v) for v in fields["in"].split("x")]
    weight = [int(v) for v in fields["w"].split("x")]
    rank = len(shape_in) - 2
    conv = {"s": [1] * rank, "p": [0] * rank, "d": [1] * rank, "op": [0] * rank, "g": 1}
    for part in "_".join(params).split("_") if params else []:
        key, value = re.match(r"([a-z]+)(.*)", part).groups()
        if key == "g":
            conv["g"] = int(value)
        else:
            values = [int(v) for v in value.split("x")]
            conv[key] = values * rank if len(values) == 1 else values
    return op, shape_in, weight, conv


class Geometry:
    """The convolution a line describes; a transposed line as the convolution it is the adjoint of."""

    def __init__(self, line):
        op, shape_in, weight, c = parse_line(line)
        self.transposed = op.startswith("conv_transpose")
        self.rank = len(shape_in) - 2
        self.groups, self.stride, self.pad, self.dilation = c["g"], c["s"], c["p"], c["d"]
        self.kernel = weight[2:]
        self.batch = shape_in[0]
        if not self.transposed:
            self.cin, self.cout = shape_in[1], weight[0]
            self.input = shape_in[2:]
            self.output = [(i + 2 * p - d * (k - 1) - 1) // s + 1
                           for i, p, d, k, s in zip(self.input, self.pad, self.dilation, self.kernel, self.stride)]
        else:  # weight [C_in_t, C_out_t / g, k...]: the adjoint runs C_out_t -> C_in_t
            self.cin, self.cout = weight[1] * c["g"], shape_in[1]
            self.output = shape_in[2:]
            self.input = [(o - 1) * s - 2 * p + d * (k - 1) + op + 1 for o, s, p, d, k, op in
                          zip(self.output, self.stride, self.pad, self.dilation, self.kernel, c["op"])]
        self.taps = math.prod(self.kernel)
        self.in_positions, self.out_positions = math.prod(self.input), math.prod(self.output)

    def flops(self):  # bench_counts.cpp: 2 N C_out out_spatial (C_in / g) taps
        return 2.0 * self.batch * self.cout * self.out_positions * (self.cin // self.groups) * self.taps

    def elements(self):  # x, w, y of the convolution
        return (self.batch * self.cin * self.in_positions, self.cout * (self.cin // self.groups) * self.taps,
                self.batch * self.cout * self.out_positions)

    def bytes(self, dtype):  # x + w + y once: every pass the same (bench_counts.cpp)
        return sum(self.elements()) * ELEMENT_BYTES[dtype]

    def phase_axes(self):
        """Per dim, (rows, taps) of each phase of the stride (kernels/conv_phase.h phase_axis)."""
        axes = []
        for i, k, s, d, p in zip(self.input, self.kernel, self.stride, self.dilation, self.pad):
            per_dim = []
            for phase in range(s):
                rows = ceil_div(i - phase, s) if phase < i else 0
                common = math.gcd(d, s)
                step = s // common
                taps = 0
                for t in range(min(k, step)):
                    if (phase + p - t * d) % s == 0:
                        taps = ceil_div(k - t, step)
                        break
                per_dim.append((rows, taps))
            axes.append(per_dim)
        return axes

    def phases(self):
        """Backward-data's phases that have positions: [(positions, taps)] per phase."""
        out = []
        for combo in _product(self.phase_axes()):
            rows = math.prod(r for r, _ in combo)
            if rows:
                out.append((rows, math.prod(t for _, t in combo)))
        return out


def uniform_phases(g):
    """conv_igemm.cu uniform_phases: every phase of the stride has positions and, per dim, the same
    rows and taps, so one launch runs them all (the phases' count), else 1 (a launch per phase)."""
    per_dim = g.phase_axes()
    count = math.prod(len(dim) for dim in per_dim)
    if count < 2 or any(rows == 0 for dim in per_dim for rows, _ in dim):
        return 1
    return count if all(len(set(dim)) == 1 for dim in per_dim) else 1


def _product(axes):
    if not axes:
        return [[]]
    return [[first] + rest for first in axes[0] for rest in _product(axes[1:])]


# ---- convkit: which variant, and its launches -------------------------------------------------
def igemm_reason(g, dtype):
    """Why cuda.igemm refuses (empty: it runs), after its input-channel padding (groups == 1)."""
    vector = 4 if dtype == "tf32" else 8
    cin = ceil_div(g.cin, vector) * vector if g.groups == 1 else g.cin
    if (cin // g.groups) % vector or (g.cout // g.groups) % vector:
        return "channels per group not a multiple of %d" % vector
    return ""


def padded_cin(g, dtype):
    vector = 4 if dtype == "tf32" or "pad4" in ACTIVE else 8
    return ceil_div(g.cin, vector) * vector if g.groups == 1 else g.cin


def us(seconds):
    return seconds * 1e6


class Launch:
    """One GEMM launch: its shape, schedule and predicted microseconds (adder included)."""

    def __init__(self, kind, m, n, k, tile, blocks, splits, exec_flops, time_us, note=""):
        self.kind, self.m, self.n, self.k, self.tile = kind, m, n, k, tile
        self.phases = 1  # GEMMs of m / phases rows in this one launch (backward-data's uniform phases)
        self.blocks, self.splits, self.exec_flops, self.time_us, self.note = blocks, splits, exec_flops, time_us, note

    def schedule(self):
        return "%s %d%s" % (self.tile, self.blocks, "x%d" % self.splits if self.splits > 1 else "")


def igemm_launch(dtype, m, n, k, groups, bytes_in, bytes_out, tile=None, phases=1):
    """conv_igemm.cu plan_launch + the split-K model of "Split-K in every pass"; `phases` GEMMs of
    m x n x k in one launch (backward-data's uniform phases)."""
    block_k = 32 if dtype == "bf16" else 16
    if tile is None:  # default_tile: 128x128 blocks >= 264: slim for <= 32 columns, narrow <= 64, else large
        large = phases * ceil_div(m, 128) * ceil_div(n, 128) * groups
        tile = ("T" if n <= 32 else "N" if n <= 64 else "L") if large >= 2 * SMS else "S"
    edge_m, edge_n, per_sm = IGEMM_TILES[tile]
    wave = per_sm * SMS
    k_tiles = ceil_div(k, block_k)
    blocks = phases * ceil_div(m, edge_m) * ceil_div(n, edge_n) * groups
    splits = default_splits(wave, blocks, k_tiles, groups)
    # Whole tiles, as the tensor cores run them (no warp skips columns past n).
    exec_flops = 2.0 * phases * ceil_div(m, edge_m) * edge_m * executed_columns(n, edge_n, 8) * groups * k_tiles * \
        block_k
    launch = timed_launch("igemm", dtype, phases * m, n, k, groups, tile, wave, blocks, splits, exec_flops, bytes_in,
                          bytes_out)
    launch.phases = phases
    return launch


def wgmma_launch(dtype, m, n, k, groups, bytes_in, bytes_out, phases=1):
    """conv_wgmma.cu plan_launch: the 128x64 tile up to 64 columns, else 128x128; whole k tiles of
    64 (bf16) or 32 (tf32), split by default_splits over the tile's wave (wave_blocks)."""
    block_k = 64 if dtype == "bf16" else 32
    tile = "WN" if n <= 64 else "W"
    edge_m, edge_n, per_sm = WGMMA_TILES[tile]
    blocks = phases * ceil_div(m, edge_m) * ceil_div(n, edge_n) * groups
    exec_flops = 2.0 * phases * ceil_div(m, edge_m) * edge_m * ceil_div(n, edge_n) * edge_n * groups * \
        ceil_div(k, block_k) * block_k
    splits = default_splits(per_sm * SMS, blocks, ceil_div(k, block_k), groups)
    launch = timed_launch("wgmma", dtype, phases * m, n, k, groups, tile, per_sm * SMS, blocks, splits, exec_flops,
                          bytes_in, bytes_out)
    launch.phases = phases
    return launch


def default_splits(wave, blocks, k_tiles, groups):
    """conv_igemm_support.cuh default_splits: none from half a wave up, else about a wave."""
    if 2 * blocks > wave:
        return 1
    return max(1, min(ceil_div(wave, blocks), k_tiles // 8, max_splits(), 65535 // groups))


def timed_launch(kind, dtype, m, n, k, groups, tile, wave, blocks, splits, exec_flops, bytes_in, bytes_out):
    """The igemm model: max(FLOPs / (e peak busy), bytes / (0.6 BW), 3 us), plus split-K's adder."""
    size = ELEMENT_BYTES[dtype]
    busy = min(1.0, blocks * splits / wave)
    slices = splits * m * n * groups * 4 if splits > 1 else 0
    gemm_bytes = bytes_in + (slices if splits > 1 else bytes_out)
    t = max(us(exec_flops / (igemm_e(dtype, tile) * PEAK_TFLOPS[dtype] * 1e12 * busy)),
            us(gemm_bytes / (igemm_bw() * BANDWIDTH)), KERNEL_FLOOR_US)
    if splits > 1 and "fused_adder" not in ACTIVE:  # conv_igemm_add_split_slices_kernel: slices in, output out
        t += max(us((slices + m * n * groups * size) / (igemm_bw() * BANDWIDTH)), KERNEL_FLOOR_US)
    return Launch(kind, m, n, k, tile, blocks, splits, exec_flops, t)


def copy_us(bytes_moved):
    """A copy kernel (weight permutation, channel widening/narrowing) at 0.6 of HBM, >= 3 us."""
    return max(us(bytes_moved / (IGEMM_BW * BANDWIDTH)), KERNEL_FLOOR_US)


def igemm_pass(g, dtype, direction):
    """cuda.igemm's launches and copies for one pass of the convolution (conv_igemm_variant.cpp)."""
    size = ELEMENT_BYTES[dtype]
    cin = padded_cin(g, dtype)
    pads = cin != g.cin
    x, w, y = g.elements()
    xp = g.batch * cin * g.in_positions  # x at the kernels' channels
    wk = g.cout * (cin // g.groups) * g.taps
    cin_g, cout_g = cin // g.groups, g.cout // g.groups
    # The weight permuted to KRSC (or dw back from it) on every call, as cuDNN's side does too.
    extra = 0.0 if "cached_weight" in ACTIVE else copy_us(2 * w * size)
    launches = []
    if pads:  # x widened (forward, backward-filter) or dx narrowed (backward-data); KRSC w widened or dw narrowed
        extra += copy_us((x + xp) * size) + copy_us((w + wk) * size)
    if direction in ("fwd", "bwd_data"):
        launches = gemm_launches(igemm_launch, g, dtype, direction, cin, xp, wk)
        # cuda.wgmma runs the same GEMMs (it refuses the padded stem): measured selection's pick.
        if "wgmma_measured" in ACTIVE and not pads:
            alternative = gemm_launches(wgmma_launch, g, dtype, direction, cin, xp, wk)
            if sum(l.time_us for l in alternative) < sum(l.time_us for l in launches):
                launches = alternative
    else:  # M = K/g, N = taps C/g, k = N x output positions; conv_igemm_backward_filter_default_tile:
        # large where M and N fill it and its blocks, split as default_splits splits them (k tiles
        # of 32 positions), reach half a wave (132)
        large_blocks = ceil_div(cout_g, 128) * ceil_div(g.taps * cin_g, 128) * g.groups
        splits = default_splits(2 * SMS, large_blocks, ceil_div(g.batch * g.out_positions, 32), g.groups)
        full = cout_g >= 128 and g.taps * cin_g >= 128
        filter_tile = "L" if full and 2 * large_blocks * splits >= 2 * SMS else "S"
        launches.append(filter_launch(dtype, g, cin_g, cout_g, filter_tile, (y + xp) * size, wk * size))
        if "wgmma_measured" in ACTIVE and not pads and dtype == "bf16":  # MN-major tiles: 16-bit only
            alternative = wgmma_filter_launch(dtype, g, cin_g, cout_g, (y + xp) * size, wk * size)
            if alternative.time_us < launches[0].time_us:
                launches = [alternative]
    return launches, extra


def gemm_launches(launcher, g, dtype, direction, cin, xp, wk):
    """The forward's GEMM, or backward-data's per phase of the stride (one launch if uniform, else
    one each), through `launcher` (igemm_launch or wgmma_launch)."""
    size = ELEMENT_BYTES[dtype]
    x, w, y = g.elements()
    cin_g, cout_g = cin // g.groups, g.cout // g.groups
    if direction == "fwd":
        return [launcher(dtype, g.batch * g.out_positions, cout_g, g.taps * cin_g, g.groups, (xp + wk) * size,
                         y * size)]
    phases = g.phases()
    together = uniform_phases(g)
    if together > 1:
        positions, taps = phases[0]
        return [launcher(dtype, g.batch * positions, cin_g, taps * cout_g, g.groups, (y + wk) * size,
                         g.batch * g.in_positions * cin * size, phases=together)]
    # dy from DRAM once per pass: the other phases find it in L2
    return [launcher(dtype, g.batch * positions, cin_g, taps * cout_g, g.groups, (y / len(phases) + wk) * size,
                     g.batch * positions * cin * size) for positions, taps in phases]


def wgmma_filter_launch(dtype, g, cin_g, cout_g, bytes_in, bytes_out):
    """conv_wgmma_filter.cu: D = dy^T x, or transposed where K/g <= 64 < taps C/g; 128x64 up to 64
    columns, else 128x128; k tiles of 64 positions, split as conv_wgmma_backward_filter_plan."""
    n_filter = g.taps * cin_g
    transposed = cout_g <= 64 < n_filter
    m, n = (n_filter, cout_g) if transposed else (cout_g, n_filter)
    tile = "WN" if n <= 64 else "W"
    edge_m, edge_n, per_sm = WGMMA_TILES[tile]
    wave = per_sm * SMS
    k = g.batch * g.out_positions
    k_tiles = ceil_div(k, 64)
    blocks = ceil_div(m, edge_m) * ceil_div(n, edge_n) * g.groups
    splits = default_splits(wave, blocks, k_tiles, g.groups)
    exec_flops = 2.0 * ceil_div(m, edge_m) * edge_m * ceil_div(n, edge_n) * edge_n * g.groups * k_tiles * 64
    return timed_launch("wgmma_filter", dtype, m, n, k, g.groups, tile, wave, blocks, splits, exec_flops,
                        bytes_in, bytes_out)


def filter_launch(dtype, g, cin_g, cout_g, tile, bytes_in, bytes_out):
    """conv_igemm_filter.cu: k tiles are 32 (16 tf32) positions; splits by default_splits."""
    block_k = 32 if dtype == "bf16" else 16
    edge, _, per_sm = IGEMM_TILES[tile]  # square tiles only here
    wave = per_sm * SMS
    m, n, k = cout_g, g.taps * cin_g, g.batch * g.out_positions
    blocks = ceil_div(m, edge) * ceil_div(n, edge) * g.groups
    k_tiles = ceil_div(k, block_k)
    splits = default_splits(wave, blocks, k_tiles, g.groups)
    # M = K/g rows and N = taps C/g columns of whole tiles (narrow_n: the tile fitted to both).
    exec_flops = 2.0 * executed_columns(m, edge, 8) * executed_columns(n, edge, 8) * g.groups * k_tiles * block_k
    return timed_launch("igemm_filter", dtype, m, n, k, g.groups, tile, wave, blocks, splits, exec_flops,
                        bytes_in, bytes_out)


# conv_tiled.cu's launch constants: split_plan splits a GEMM of fewer than kTargetBlocks tiles
# into at most kMaxSplits slices of at least kMinStepsPerSplit 8-deep steps each, within
# kMaxWorkspaceBytes of float32 slices.
TILED_TARGET_BLOCKS, TILED_MAX_SPLITS, TILED_MIN_STEPS, TILED_WORKSPACE_BYTES = 264, 64, 16, 256 << 20


def tiled_columns(n):
    """conv_tiled.cu tile_columns for float32: the wide tile above 64 columns, else the narrow one."""
    return 128 if n > 64 else 64


def tiled_width(m, n, groups):
    """conv_tiled.cu tile_width: tile_columns' choice, except that a wide choice whose tiles, split
    kMaxSplits ways, are still fewer than kTargetBlocks blocks takes the narrow tile (twice the
    tiles; WaveNet's 128 x 128 filter gradient: one wide tile, 64 blocks on 132 SMs)."""
    width = tiled_columns(n)
    wide_tiles = ceil_div(m, 128) * ceil_div(n, 128) * groups
    return 64 if width == 128 and wide_tiles * TILED_MAX_SPLITS < TILED_TARGET_BLOCKS else width


def tiled_area(m, n, groups):
    """conv_tiled.cu tile_area: the elements of the whole tiles a GEMM runs, at tile_width's width."""
    width = tiled_width(m, n, groups)
    return ceil_div(m, 128) * 128 * ceil_div(n, width) * width


def tiled_launch(m, n, k, groups, bytes_moved, kind, transposed=False):
    """conv_tiled.cu split_plan and the per-launch model of "Strided backward-data per phase"."""
    width = tiled_width(m, n, groups)  # split_plan counts the tiles of the width tile_width chose
    tiles = ceil_div(m, 128) * ceil_div(n, width) * groups
    steps = ceil_div(max(k, 1), 8)
    splits = 1
    if tiles < TILED_TARGET_BLOCKS:
        splits = max(1, min(min(ceil_div(TILED_TARGET_BLOCKS, tiles), steps // TILED_MIN_STEPS), TILED_MAX_SPLITS))
    while splits > 1 and splits * m * n * groups * 4 > TILED_WORKSPACE_BYTES:
        splits //= 2
    per_split = ceil_div(steps, splits)
    splits = ceil_div(steps, per_split)
    exec_flops = 2.0 * executed_columns(m, 128, 16) * executed_columns(n, width, 4) * groups * steps * 8  # whole tiles
    busy = min(1.0, tiles * splits / SMS)
    t = max(us(exec_flops / (TILED_E[(kind, width)] * PEAK_TFLOPS["f32"] * 1e12 * busy)), us(bytes_moved / BANDWIDTH))
    if splits > 1:  # the split-sum kernel's pass over the slices, after a launch gap
        t += TILED_GAP_US + us((splits + 1) * m * n * groups * 4 / BANDWIDTH)
    return Launch("tiled", m, n, k, "128x%d" % width, tiles, splits, exec_flops, t, "transposed" if transposed else "")


def tiled_filter_launch(g, bytes_moved):
    """conv_tiled.cu conv_tiled_plan's backward-filter: dw = dy^T · x-patches (m = K/g, n = C/g ·
    taps), or transposed, dw^T = x-patches^T · dy (m = C/g · taps, n = K/g), where the transposed
    GEMM's tile_area is strictly smaller. Both read the same two factors with the roles swapped,
    so the transposed one takes the backward-filter efficiency of the width it runs."""
    cin_g, cout_g = g.cin // g.groups, g.cout // g.groups
    k = g.batch * g.out_positions
    normal, transposed = (cout_g, cin_g * g.taps), (cin_g * g.taps, cout_g)
    if tiled_area(*transposed, g.groups) < tiled_area(*normal, g.groups):
        return tiled_launch(*transposed, k, g.groups, bytes_moved, tiled_kind(g, "bwd_filter"), transposed=True)
    return tiled_launch(*normal, k, g.groups, bytes_moved, tiled_kind(g, "bwd_filter"))


def tiled_pass(g, direction):
    x, w, y = g.elements()
    cin_g, cout_g = g.cin // g.groups, g.cout // g.groups
    if direction == "fwd":
        return [tiled_launch(g.batch * g.out_positions, cout_g, cin_g * g.taps, g.groups, 4 * (x + w + y),
                             tiled_kind(g, "fwd"))]
    if direction == "bwd_filter":
        return [tiled_filter_launch(g, 4 * (x + w + y))]
    if all(s == 1 for s in g.stride):  # dense gather at stride 1
        return [tiled_launch(g.batch * g.in_positions, cin_g, cout_g * g.taps, g.groups, 4 * (x + w + y),
                             tiled_kind(g, "bwd_data"))]
    launches = []
    for positions, taps in g.phases():
        rows = g.batch * positions
        launches.append(tiled_launch(rows, cin_g, cout_g * taps, g.groups, 4 * (rows * g.cin + y + w), "phase"))
    return launches


def is_matrix_product(g):
    """geometry.cpp is_matrix_product: the one output position reads the whole unpadded input."""
    return all(o == 1 and k == i and p == 0 and d == 1
               for o, k, i, p, d in zip(g.output, g.kernel, g.input, g.pad, g.dilation))


def convkit_pass(g, dtype, direction):
    """(variant, launches, predicted us) of convkit's default for one pass of a row of `dtype`."""
    if is_matrix_product(g):  # the shape rule ahead of the default list: one cuBLAS GEMM, not modelled
        return "cuda.im2col", [], float("nan")
    if dtype == "f32":  # strict float32, contiguous: cuda.igemm refuses, not depthwise -> cuda.tiled
        launches = tiled_pass(g, direction)
        total = sum(l.time_us for l in launches) + TILED_GAP_US * (len(launches) - 1)
        return "cuda.tiled", launches, total
    if igemm_reason(g, dtype):
        return "cuda.im2col", [], float("nan")  # not reached by these suites
    launches, extra = igemm_pass(g, dtype, direction)
    return "cuda.igemm", launches, sum(l.time_us for l in launches) + extra


def cudnn_pass(g, dtype):
    """cuDNN's model, the same for the three passes (their FLOPs and bytes are the same)."""
    flops, size = g.flops(), ELEMENT_BYTES[dtype]
    if dtype == "f32":
        return max(us(flops / (CUDNN_E_F32 * PEAK_TFLOPS["f32"] * 1e12)), us(g.bytes(dtype) / (CUDNN_BW * BANDWIDTH)),
                   KERNEL_FLOOR_US)
    e = CUDNN_E_LARGE if flops / 2 > CUDNN_LARGE_MACS else CUDNN_E_SMALL
    t = max(us(flops / (e * PEAK_TFLOPS[dtype] * 1e12)), us(g.bytes(dtype) / (CUDNN_BW * BANDWIDTH)), KERNEL_FLOOR_US)
    return t + copy_us(2 * g.elements()[1] * size)  # the same weight permutation as convkit's side


DIRECTIONS = ("fwd", "bwd_data", "bwd_filter")


def bench_direction(g, direction):
    """The adjoint convolution's pass a bench direction runs: a transposed line swaps fwd and bwd_data."""
    if not g.transposed or direction == "bwd_filter":
        return direction
    return "bwd_data" if direction == "fwd" else "fwd"


def predict(suite, dtype, quick_only, source):
    rows = []
    for number, (line, quick) in enumerate(suite_lines(suite, source), 1):
        if quick_only and not quick:
            continue
        g = Geometry(line)
        row = {"n": number, "line": line, "quick": quick, "g": g, "passes": {}}
        for d in DIRECTIONS:
            variant, launches, t = convkit_pass(g, dtype, bench_direction(g, d))
            c = cudnn_pass(g, dtype)
            row["passes"][d] = {"variant": variant, "launches": launches, "convkit": t, "cudnn": c, "ratio": c / t}
        rows.append(row)
    return rows


def gemm_text(launches):
    if not launches:  # cuda.im2col: one cuBLAS GEMM, not modelled here
        return "cuBLAS"
    first = launches[0]
    # ᵀ: cuda.tiled's backward-filter run transposed (M = C/g · taps, N = K/g).
    text = "%d×%d×%d%s" % (first.m // first.phases, first.n, first.k, "ᵀ" if first.note == "transposed" else "")
    if first.phases > 1:  # one launch of uniform phases
        return text + " ×%d in 1" % first.phases
    same = all((l.m, l.n, l.k) == (first.m, first.n, first.k) for l in launches)
    if len(launches) > 1:
        text += " ×%d" % len(launches) if same else " +%d phases" % (len(launches) - 1)
    return text


def schedule_text(launches):
    if not launches:
        return "im2col"
    first = launches[0]
    text = first.schedule()
    if len(launches) > 1:
        text += " ×%d" % len(launches)
    return text


def short(line):
    return line.replace("conv_transpose3d", "convT3d")


def print_tables(suite, dtype, rows):
    peak = PEAK_TFLOPS[dtype]
    print("\n**%s, %s** (%s)\n" % (suite, dtype, "cuda.tiled, strict float32, contiguous" if dtype == "f32"
                                   else "cuda.igemm, channels-last"))
    print("| # | line | GEMM fwd / bwd-data / bwd-filter (M×N×K) | GFLOP | MB | floors µs FLOP / byte "
          "| schedule fwd / bwd-data / bwd-filter | convkit µs fwd / bd / bf | cuDNN µs | cuDNN÷convkit fwd / bd / bf |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        g, p = r["g"], r["passes"]
        gemms = " / ".join(gemm_text(p[d]["launches"]) for d in DIRECTIONS)
        scheds = " / ".join(schedule_text(p[d]["launches"]) for d in DIRECTIONS)
        print("| %d%s | `%s` | %s | %.2f | %.1f | %.1f / %.1f | %s | %s | %s | %s |" % (
            r["n"], "q" if r["quick"] else "", short(r["line"]), gemms, g.flops() / 1e9, g.bytes(dtype) / 1e6,
            us(g.flops() / (peak * 1e12)), us(g.bytes(dtype) / BANDWIDTH), scheds,
            " / ".join("%.0f" % p[d]["convkit"] for d in DIRECTIONS),
            " / ".join("%.0f" % p[d]["cudnn"] for d in DIRECTIONS) if len({round(p[d]["cudnn"], 3) for d in DIRECTIONS}) > 1
            else "%.0f" % p["fwd"]["cudnn"],
            " / ".join("%.2f" % p[d]["ratio"] for d in DIRECTIONS)))


def median_ratio(rows, quick_only):
    # Passes of a variant this model leaves out (cuda.im2col's cuBLAS GEMM: NaN) are not counted.
    ratios = [p["ratio"] for r in rows if r["quick"] or not quick_only for p in r["passes"].values()
              if not math.isnan(p["ratio"])]
    return statistics.median(ratios) if ratios else float("nan")


def check():
    """The models reproduce the figures of the sections they come from (exit 1 if not)."""
    cases = [  # (what, predicted us, the doc's us); DCGAN 2 runs the wide tile, DCGAN 4 and U-Net 4 (N = 64) the narrow
        ("tiled DCGAN 2 per phase", convkit_pass(Geometry("conv_transpose2d in=64x512x4x4 w=512x256x4x4 s2_p1"),
                                                 "f32", "bwd_data")[2], 175),
        ("tiled DCGAN 4 per phase", convkit_pass(Geometry("conv_transpose2d in=64x128x16x16 w=128x64x4x4 s2_p1"),
                                                 "f32", "bwd_data")[2], 194),
        ("tiled U-Net up 4 per phase", convkit_pass(Geometry("conv_transpose2d in=4x128x128x128 w=128x64x2x2 s2"),
                                                    "f32", "bwd_data")[2], 166),
        # Split-K table, batch 32 (its batch-1 rows differ: 196 or 49 rows run as 256 or 64 here).
        ("igemm layer4 3x3 split 3", igemm_launch("bf16", 1568, 512, 4608, 1, 0, 0).time_us, 36),
        ("igemm layer4 1x1 2048>512 split 3", igemm_launch("bf16", 1568, 512, 2048, 1, 0, 0).time_us, 19),
        ("igemm layer3 3x3 unsplit (392 blocks)", igemm_launch("bf16", 6272, 256, 2304, 1, 0, 0).time_us, 40),
    ]
    # cuda.tiled's backward-filter plans for the geometries of tests/test_cuda_tiled_conv.cpp's CudaTiledPlan
    # tests (M, N, tile and orientation as those tests expect of conv_tiled_plan; splits by split_plan's rule):
    # (what, (M, N, tile, splits, transposed) predicted, expected).
    def filter_plan(line):
        l = tiled_pass(Geometry(line), "bwd_filter")[0]
        return l.m, l.n, l.tile, l.splits, l.note == "transposed"
    plans = [
        # tile_width: one wide 128 x 128 tile split 64 ways is 64 blocks (< 264): the narrow tile, 2 x 64.
        ("tiled WaveNet filter narrow tile", filter_plan("conv1d in=8x64x4096 w=128x64x2"),
         (128, 128, "128x64", 64, False)),
        # conv_tiled_plan: 64 output channels run transposed (the 64 columns of the narrow tile, not
        # half of a 128-row tile); 256 stay dw = dy^T x-patches (equal tile areas: not strictly smaller).
        ("tiled filter 64 channels transposed", filter_plan("conv2d in=32x64x56x56 w=64x64x3x3 p1"),
         (576, 64, "128x64", 53, True)),
        ("tiled filter 256 channels normal", filter_plan("conv2d in=32x64x56x56 w=256x64x3x3 p1"),
         (256, 576, "128x128", 27, False)),
    ]
    failed = 0
    for what, predicted, expected in plans:
        ok = predicted == expected
        failed += not ok
        print("%-40s predicted %s, expected %s %s" % (what, predicted, expected, "ok" if ok else "DIFFERS"))
    source = os.path.join(os.path.dirname(os.path.abspath(__file__)), "kernel", "bench_suites.cpp")
    for suite in ("conv1d", "conv3d"):  # the suites still parse, and --quick keeps some of each
        lines = suite_lines(suite, source)
        ok = lines and any(quick for _, quick in lines) and all(Geometry(line).flops() > 0 for line, _ in lines)
        failed += not ok
        print("%-40s %d lines, %d kept by --quick %s" % (suite + " suite read", len(lines),
                                                          sum(q for _, q in lines), "ok" if ok else "DIFFERS"))
    for what, predicted, documented in cases:
        ok = abs(predicted - documented) <= 0.6
        failed += not ok
        print("%-40s predicted %6.1f us, docs %4d us %s" % (what, predicted, documented, "ok" if ok else "DIFFERS"))
    return 1 if failed else 0


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--suite", action="append", choices=["conv1d", "conv3d", "transposed"])
    parser.add_argument("--dtype", action="append", choices=["bf16", "tf32", "f32"])
    parser.add_argument("--quick", action="store_true", help="only the lines --quick keeps")
    parser.add_argument("--detail", action="store_true", help="every launch of every pass")
    parser.add_argument("--source", default=os.path.join(here, "kernel", "bench_suites.cpp"))
    parser.add_argument("--scenario", action="append", default=[], choices=sorted(SCENARIOS),
                        help="predict with a kernel change that is not built (repeatable)")
    parser.add_argument("--check", action="store_true", help="reproduce figures of the docs' own tables")
    parser.add_argument("--rank", action="store_true",
                        help="only the medians of the --quick lines under each scenario alone and all together")
    args = parser.parse_args()
    suites = args.suite or ["conv1d", "conv3d"]
    dtypes = args.dtype or ["bf16", "tf32", "f32"]
    if args.check:
        return check()
    if args.rank:
        return print_ranking(suites, dtypes, args.source)
    ACTIVE.update(args.scenario)
    medians, pooled = [], {}
    for suite in suites:
        for dtype in dtypes:
            rows = predict(suite, dtype, args.quick, args.source)
            pooled.setdefault(suite, []).extend(rows)
            print_tables(suite, dtype, rows)
            if args.detail:
                for r in rows:
                    for d in DIRECTIONS:
                        for l in r["passes"][d]["launches"]:
                            print("  line %d %s %s: %s m=%d n=%d k=%d tile %s blocks %d splits %d exec %.2f GFLOP "
                                  "%.1f us%s" % (r["n"], d, r["passes"][d]["variant"], l.kind, l.m, l.n, l.k, l.tile,
                                                 l.blocks, l.splits, l.exec_flops / 1e9, l.time_us,
                                                 " " + l.note if l.note else ""))
            medians.append((suite, dtype, median_ratio(rows, True), median_ratio(rows, False)))
    # The last column: how much slower than its model cuDNN would have to be for the quick median to reach 1.5.
    print("\n| suite | dtype | predicted median cuDNN÷convkit, --quick lines | all lines | target "
          "| 1.5 needs cuDNN slower than its model by |")
    print("|---|---|---|---|---|---|")
    for suite, dtype, quick, every in medians:
        print("| %s | %s | %.2f | %s | 1.5 | %.1fx |" % (suite, dtype, quick, "%.2f" % every if not args.quick else "—",
                                                         1.5 / quick))
    for suite, rows in pooled.items() if len(dtypes) > 1 else ():  # one run's table: every dtype's rows together
        quick = median_ratio(rows, True)
        print("| %s | %s | %.2f | %s | 1.5 | %.1fx |" % (suite, ", ".join(dtypes), quick,
                                                         "%.2f" % median_ratio(rows, False) if not args.quick
                                                         else "—", 1.5 / quick))


def print_ranking(suites, dtypes, source):
    """Median cuDNN÷convkit over the --quick lines' passes, today and with each change alone."""
    columns = [(suite, dtype) for suite in suites for dtype in dtypes]
    print("| change | " + " | ".join("%s %s" % c for c in columns) + " | mean gain |")
    print("|---|" + "---|" * (len(columns) + 1))
    base = None
    for name in [None] + sorted(SCENARIOS) + ["all"]:
        ACTIVE.clear()
        if name == "all":  # not cached_weight: its gain is the comparison's, not the kernels' (see --help)
            ACTIVE.update(set(SCENARIOS) - {"cached_weight"})
        elif name:
            ACTIVE.add(name)
        medians = [median_ratio(predict(suite, dtype, True, source), True) for suite, dtype in columns]
        base = base or medians
        gain = statistics.mean(m / b for m, b in zip(medians, base))
        print("| %s | %s | %.2fx |" % ("as built" if name is None else name,
                                       " | ".join("%.2f" % m for m in medians), gain))
    ACTIVE.clear()
    for name, what in sorted(SCENARIOS.items()):
        print("- %s: %s" % (name, what))


if __name__ == "__main__":
    sys.exit(main())
