"""convkit against PyTorch on random parameter sets (ctest torch.differential, run by run-python-tests).

For every case this script draws parameters and float64 data, runs the op or module in PyTorch
(forward, then backward with a random grad_output), and writes <name>.case.safetensors: the
op's parameters as metadata text, the inputs, a module's state_dict as "state.<name>" and
grad_output. torch_diff_tool (tests/torch_diff/) then runs every case in convkit once and writes
<name>.result.safetensors; this script compares output and gradients by relative error
||convkit - torch|| / ||torch|| <= 1e-10, and requires convkit to throw wherever PyTorch raises.
docs/torch-differential.md describes the cases and what is compared.

    test_torch_differential.py <torch_diff_tool>
    CONVKIT_TORCH_DIFF_SEED=<n>         replay a run (the seed is printed first)
    CONVKIT_TORCH_DIFF_ONLY=<a,b,...>   only cases whose name contains one of these
    CONVKIT_TORCH_DIFF_KEEP=<dir>       write the case and result files there and keep them

Each case draws from its own generator, seeded by (seed, case name), so a filtered run replays
exactly the cases it keeps.
"""
import hashlib
import math
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time

import warnings

import safetensors
import safetensors.torch
import torch
import torch.nn.functional as F

TOOL = sys.argv[1]
TOLERANCE = 1e-10  # float64; both sides sum the same terms in different orders
SEED = int(os.environ.get("CONVKIT_TORCH_DIFF_SEED", str(random.SystemRandom().randrange(1 << 31))))
ONLY = [s for s in os.environ.get("CONVKIT_TORCH_DIFF_ONLY", "").split(",") if s]

torch.set_default_dtype(torch.float64)
# 'same' padding with an even kernel: torch notes that it copies the input. Not a finding.
warnings.filterwarnings("ignore", message="Using padding='same'")


# ---- cases -------------------------------------------------------------------------------------

def text(value):
    """A parameter as the tool reads it: 'true'/'false', '2,1', '3', 'same', '0.1'."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return ",".join(str(v) for v in value)
    if isinstance(value, float):
        return repr(value)
    return str(value)


def params_metadata(params, prefix=""):
    """Flat string pairs; None means 'not set' (PyTorch's default), as for a pool's stride."""
    meta = {}
    for key, value in params.items():
        if value is None:
            continue
        if key == "children":
            meta[prefix + "children"] = str(len(value))
            for i, child in enumerate(value):
                meta.update(params_metadata(child, f"{prefix}{i}."))
        else:
            meta[prefix + key] = text(value)
    return meta


class Case:
    """One comparison: what to write for the tool, and what PyTorch computed (or raised)."""

    def __init__(self, name, op, params, note=""):
        self.name = name
        self.op = op
        self.params = params
        self.note = note
        self.tensors = {}
        self.requires_grad = []
        self.expected = {}
        self.torch_error = None
        # key -> the norm of the terms that cancel in that result, where it is computed by
        # cancellation; the error is measured against the larger of it and the result's norm.
        self.scale = {}
        self.known = []  # known differences this case leaves out of the comparison
        self.check = None  # check(result) -> failures, where no torch result can be compared

    def metadata(self):
        meta = {"op": self.op}
        if self.op in ("module", "train"):
            module = {k: v for k, v in self.params.items() if not k.startswith(("optimizer.", "scheduler.", "steps"))}
            meta.update(params_metadata(module, "module."))
            meta.update(params_metadata({k: v for k, v in self.params.items() if k not in module}))
        else:
            meta.update(params_metadata(self.params))
        if self.requires_grad:
            meta["requires_grad"] = ",".join(self.requires_grad)
        if self.note:
            meta["note"] = self.note
        return meta

    def describe(self):
        shapes = " ".join(f"{k}{list(v.shape)}" for k, v in sorted(self.tensors.items())
                          if not k.startswith("state.") and k != "grad_output")
        params = " ".join(f"{k}={v}" for k, v in self.metadata().items() if k not in ("requires_grad",))
        return f"{params} {shapes}"


def case_rng(name):
    """A generator of its own per case: (seed, name) decide everything the case draws."""
    digest = hashlib.sha256(f"{SEED}/{name}".encode()).digest()
    value = int.from_bytes(digest[:8], "little") & ((1 << 63) - 1)
    gen = torch.Generator().manual_seed(value)
    return random.Random(value), gen, value


def randn(gen, shape):
    return torch.randn(size=tuple(shape), generator=gen, dtype=torch.float64)


def run_function(case, gen, inputs, differentiable, function, gradient=None, after=()):
    """PyTorch's result of function(**inputs), and the gradients of `differentiable` inputs:
    from torch's backward, or from gradient(leaves, grad_output) where that backward is unusable.
    `after` names inputs the op changes in place (running statistics): their final values too."""
    case.tensors.update({k: v.detach().clone().contiguous() for k, v in inputs.items() if v is not None})
    case.requires_grad = [k for k in differentiable if inputs.get(k) is not None]
    leaves = {k: (v.detach().clone().requires_grad_(k in case.requires_grad) if v is not None else None)
              for k, v in inputs.items()}
    try:
        output = function(**leaves)
    except (RuntimeError, ValueError, IndexError, TypeError) as e:
        case.torch_error = f"{type(e).__name__}: {e}".splitlines()[0]
        return case
    for k in after:
        if leaves.get(k) is not None:
            case.expected["after." + k] = leaves[k].detach().clone()
    if gradient is not None:
        output = output.detach()
        backward(case, gen, output)
        case.expected.update(gradient(leaves, case.tensors["grad_output"]))
        return case
    backward(case, gen, output)
    for k in case.requires_grad:
        if leaves[k].grad is not None:
            case.expected["grad." + k] = leaves[k].grad
    return case


def backward(case, gen, output):
    """A random grad_output per output (a list of outputs: output.<i>, grad_output.<i>), and backward."""
    outputs = list(output) if isinstance(output, (list, tuple)) else [output]
    suffixes = [f".{i}" for i in range(len(outputs))] if isinstance(output, (list, tuple)) else [""]
    roots, grads = [], []
    for suffix, out in zip(suffixes, outputs):
        grad_output = randn(gen, out.shape)
        case.tensors["grad_output" + suffix] = grad_output.contiguous()
        case.expected["output" + suffix] = out.detach()
        if out.requires_grad:
            roots.append(out)
            grads.append(grad_output)
    if roots:
        torch.autograd.backward(roots, grads)


def torch_module(spec):
    # Tuples, not lists: nn.Upsample takes a tuple of scale factors only.
    kwargs = {k: tuple(v) if isinstance(v, list) else v for k, v in spec.items()
              if k not in ("type", "children") and v is not None}
    if spec["type"] == "Sequential":
        return torch.nn.Sequential(*[torch_module(child) for child in spec["children"]])
    return getattr(torch.nn, spec["type"])(**kwargs)


def run_module(case, gen, seed, input_tensor, training=True, randomize_buffers=False):
    """The module in float64 from the spec, its state_dict for convkit, forward and backward.
    randomize_buffers: running statistics away from their initial 0 and 1, a batch count of 3."""
    case.params = dict(case.params, training=training)
    spec = {k: v for k, v in case.params.items() if k != "training"}
    case.tensors["input"] = input_tensor.contiguous()
    case.requires_grad = ["input"]
    try:
        torch.manual_seed(seed)  # the module's initial values
        module = torch_module(spec).double().train(training)
        if randomize_buffers:
            with torch.no_grad():
                for key, buffer in module.named_buffers():
                    if key.endswith("running_mean"):
                        buffer.copy_(randn(gen, buffer.shape))
                    elif key.endswith("running_var"):
                        buffer.copy_(torch.rand(buffer.shape, generator=gen) + 0.5)
                    elif key.endswith("num_batches_tracked"):
                        buffer.fill_(3)
        for key, value in module.state_dict().items():
            case.tensors["state." + key] = value.detach().clone().contiguous()
        x = input_tensor.detach().clone().requires_grad_(True)
        output = module(x)
    except (RuntimeError, ValueError, IndexError, TypeError) as e:
        case.torch_error = f"{type(e).__name__}: {e}".splitlines()[0]
        return case
    if spec["type"].startswith("MaxPool") and has_window_without_input(spec, list(x.shape), list(output.shape)):
        # PyTorch's backward would write out of bounds (see max_pool_gradient_from_indices).
        case.note = "a window without input: gradient from torch's forward indices"
        pool = [F.max_pool1d, F.max_pool2d, F.max_pool3d][len(spec["kernel_size"]) - 1]
        backward(case, gen, output.detach())
        case.expected.update(max_pool_gradient_from_indices(pool, spec)({"input": x}, case.tensors["grad_output"]))
        return case
    backward(case, gen, output)
    case.expected["grad.input"] = x.grad
    for key, parameter in module.named_parameters():
        if parameter.grad is not None:
            case.expected["grad.state." + key] = parameter.grad
    for key, buffer in module.named_buffers():
        case.expected["after.state." + key] = buffer.detach().clone()
    return case


# ---- parameter draws ---------------------------------------------------------------------------

SPATIAL_SLACK = {1: 8, 2: 5, 3: 3}  # how far above the smallest valid size an input may be
MAX_KERNEL = {1: 5, 2: 4, 3: 3}


def conv_pair(rank):
    return [F.conv1d, F.conv2d, F.conv3d][rank - 1], [F.conv_transpose1d, F.conv_transpose2d, F.conv_transpose3d][rank - 1]


def torch_conv(rank, input, weight, bias, stride, padding, dilation, groups, padding_mode):
    """F.convNd, with non-zero padding modes applied as nn.ConvNd does (F.pad, then padding 0)."""
    conv = conv_pair(rank)[0]
    if padding == "same" and any(s != 1 for s in stride):
        raise ValueError("padding='same' is not supported for strided convolutions")  # as nn.ConvNd
    if padding_mode == "zeros":
        return conv(input, weight, bias, stride, padding, dilation, groups)
    kernel = weight.shape[2:]
    pads = []
    for i in reversed(range(rank)):
        if padding == "same":
            total = dilation[i] * (kernel[i] - 1)
            pads += [total // 2, total - total // 2]
        else:
            pads += [padding[i], padding[i]]
    return conv(F.pad(input, pads, mode=padding_mode), weight, bias, stride, 0, dilation, groups)


def draw_channels(rng, allow_depthwise=True):
    if allow_depthwise and rng.random() < 0.2:  # depthwise, with a channel multiplier
        groups = rng.choice([2, 3, 4])
        return groups, groups, groups * rng.choice([1, 2])
    groups = rng.choice([1, 1, 1, 2, 3])
    return groups, groups * rng.randint(1, 3), groups * rng.randint(1, 3)


def draw_conv_params(rng, rank):
    groups, cin, cout = draw_channels(rng)
    kernel = [rng.randint(1, MAX_KERNEL[rank]) for _ in range(rank)]
    stride = [rng.choice([1, 1, 2, 3]) for _ in range(rank)]
    dilation = [rng.choice([1, 1, 2, 3]) for _ in range(rank)]
    mode = rng.choice(["zeros"] * 4 + ["reflect", "replicate", "circular"])
    if all(s == 1 for s in stride) and rng.random() < 0.3:
        padding = "same"
    else:
        padding = [rng.randint(0, 3) for _ in range(rank)]
    sizes = []
    for i in range(rank):
        extent = dilation[i] * (kernel[i] - 1) + 1
        if padding == "same":
            total = extent - 1
            lo, p_max = 1, total - total // 2
        else:
            lo, p_max = extent - 2 * padding[i], padding[i]
        lo = max(lo, 1, p_max + 1 if mode == "reflect" else 1, p_max if mode == "circular" else 1)
        sizes.append(rng.randint(lo, lo + SPATIAL_SLACK[rank]))
    return dict(batch=rng.choice([1, 1, 2, 3]), in_channels=cin, out_channels=cout, kernel_size=kernel,
                stride=stride, padding=padding, dilation=dilation, groups=groups, padding_mode=mode,
                bias=rng.random() < 0.7, sizes=sizes)


def break_conv_params(rng, p, rank):
    """One change that makes a geometry invalid for both libraries (or so we expect)."""
    how = rng.choice(["groups", "kernel", "same_stride", "reflect_pad", "channels"])
    p = dict(p)
    if how == "groups":
        p["groups"] = p["in_channels"] + 1
    elif how == "kernel":  # a (dilated) kernel one longer than the unpadded input
        p["padding"], p["padding_mode"] = [0] * rank, "zeros"
        p["kernel_size"] = [max(2, p["kernel_size"][0])] + p["kernel_size"][1:]
        p["sizes"] = [p["dilation"][0] * (p["kernel_size"][0] - 1)] + p["sizes"][1:]
    elif how == "same_stride":
        p["padding"], p["padding_mode"] = "same", "zeros"
        p["stride"] = [2] + p["stride"][1:]
    elif how == "reflect_pad":
        p["padding_mode"] = "reflect"
        p["padding"] = [s for s in p["sizes"]]
    else:
        p["in_channels_seen"] = p["in_channels"] + p["groups"]
    return p, how


def conv_case(name, rank, rng, gen, invalid=False):
    p = draw_conv_params(rng, rank)
    note = ""
    if invalid:
        p, note = break_conv_params(rng, p, rank)
        note = "invalid:" + note
    cin_seen = p.pop("in_channels_seen", p["in_channels"])
    weight_in = max(1, p["in_channels"] // p["groups"])
    params = {k: p[k] for k in ("stride", "padding", "dilation", "groups", "padding_mode")}
    case = Case(name, f"conv{rank}d", params, note)
    inputs = {"input": randn(gen, [p["batch"], cin_seen] + p["sizes"]),
              "weight": randn(gen, [p["out_channels"], weight_in] + p["kernel_size"]),
              "bias": randn(gen, [p["out_channels"]]) if p["bias"] else None}
    f = lambda input, weight, bias: torch_conv(rank, input, weight, bias, p["stride"], p["padding"],
                                               p["dilation"], p["groups"], p["padding_mode"])
    return run_function(case, gen, inputs, ["input", "weight", "bias"], f)


def draw_conv_transpose_params(rng, rank, invalid=False):
    groups, cin, cout = draw_channels(rng, allow_depthwise=False)
    kernel = [rng.randint(1, MAX_KERNEL[rank]) for _ in range(rank)]
    stride = [rng.choice([1, 2, 3]) for _ in range(rank)]
    dilation = [rng.choice([1, 1, 2, 3]) for _ in range(rank)]
    # PyTorch allows output_padding < max(stride, dilation): >= stride where dilation is larger.
    output_padding = [rng.randint(0, max(s, d) - 1) for s, d in zip(stride, dilation)]
    padding = [rng.randint(0, 2) for _ in range(rank)]
    sizes = [rng.randint(1, 1 + SPATIAL_SLACK[rank]) for _ in range(rank)]
    note = ""
    if invalid:
        note = rng.choice(["output_padding", "groups", "too_small"])
        if note == "output_padding":
            output_padding[0] = max(stride[0], dilation[0])
        elif note == "groups":
            groups = cin + 1
        else:
            sizes[0], kernel[0], dilation[0], padding[0], output_padding[0] = 1, 1, 1, 2, 0
        note = "invalid:" + note
    return dict(batch=rng.choice([1, 1, 2, 3]), in_channels=cin, out_channels=cout, kernel_size=kernel,
                stride=stride, padding=padding, dilation=dilation, groups=groups,
                output_padding=output_padding, bias=rng.random() < 0.7, sizes=sizes), note


def conv_transpose_case(name, rank, rng, gen, invalid=False):
    p, note = draw_conv_transpose_params(rng, rank, invalid)
    params = {k: p[k] for k in ("stride", "padding", "output_padding", "dilation", "groups")}
    case = Case(name, f"conv_transpose{rank}d", params, note)
    inputs = {"input": randn(gen, [p["batch"], p["in_channels"]] + p["sizes"]),
              "weight": randn(gen, [p["in_channels"], max(1, p["out_channels"] // p["groups"])] + p["kernel_size"]),
              "bias": randn(gen, [p["out_channels"]]) if p["bias"] else None}
    conv_t = conv_pair(rank)[1]
    f = lambda input, weight, bias: conv_t(input, weight, bias, p["stride"], p["padding"], p["output_padding"],
                                           p["groups"], p["dilation"])
    return run_function(case, gen, inputs, ["input", "weight", "bias"], f)


def draw_pool_params(rng, rank, max_pool):
    kernel = [rng.randint(1, MAX_KERNEL[rank] - (rank == 1)) for _ in range(rank)]
    stride = None if rng.random() < 0.25 else [rng.randint(1, 3) for _ in range(rank)]
    padding = [rng.randint(0, k // 2) for k in kernel]
    dilation = [rng.choice([1, 1, 2, 3]) for _ in range(rank)] if max_pool else [1] * rank
    ceil_mode = rng.random() < 0.5
    sizes = []
    for i in range(rank):
        extent = dilation[i] * (kernel[i] - 1) + 1
        # In ceil mode a window may overhang the padded input: go below the floor-mode minimum.
        lo = max(1, extent - 2 * padding[i] - (2 if ceil_mode else 0))
        if rank == 3 and not max_pool and rng.random() < 0.8:
            lo = max(lo, kernel[i])  # mostly what torch's avg_pool3d accepts (see KNOWN_DIFFERENCES)
        sizes.append(rng.randint(lo, lo + SPATIAL_SLACK[rank]))
    params = dict(kernel_size=kernel, stride=stride, padding=padding, ceil_mode=ceil_mode)
    if max_pool:
        params["dilation"] = dilation
    else:
        params["count_include_pad"] = rng.random() < 0.5
    return params, [rng.choice([1, 1, 2]), rng.randint(1, 3)] + sizes


def has_window_without_input(params, shape, output_shape):
    """Does some max-pool window hold no input element (every dilated tap in the padding or past
    the edge)? Then PyTorch's output is -inf and its saved index points outside the input."""
    rank = len(params["kernel_size"])
    stride = params["stride"] or params["kernel_size"]
    for i in range(rank):
        k, s, p, d = params["kernel_size"][i], stride[i], params["padding"][i], params["dilation"][i]
        size = shape[2 + i]
        for o in range(output_shape[2 + i]):
            if not any(0 <= o * s - p + t * d < size for t in range(k)):
                return True
    return False


def max_pool_gradient_from_indices(pool, params):
    """The max-pool input gradient from PyTorch's forward indices, no gradient for empty windows.
    PyTorch's own backward would add those windows' gradients at their out-of-range indices: in
    torch 1.13 that writes past the gradient buffer and corrupts the heap."""
    def gradient(leaves, grad_output):
        x = leaves["input"].detach()
        with torch.no_grad():
            output, indices = pool(x, params["kernel_size"], params["stride"], params["padding"],
                                   params["dilation"], params["ceil_mode"], return_indices=True)
        planes = x.shape[0] * x.shape[1]
        keep = torch.isfinite(output).reshape(planes, -1)
        flat_indices = torch.where(keep, indices.reshape(planes, -1), torch.zeros_like(keep, dtype=torch.int64))
        values = torch.where(keep, grad_output.reshape(planes, -1), torch.zeros(()))
        grad = torch.zeros(planes, x[0, 0].numel()).scatter_add_(1, flat_indices, values)
        return {"grad.input": grad.reshape(x.shape)}
    return gradient


def max_pool_case(name, rank, rng, gen, params=None, shape=None, note=""):
    if params is None:
        params, shape = draw_pool_params(rng, rank, True)
    pool = [F.max_pool1d, F.max_pool2d, F.max_pool3d][rank - 1]
    f = lambda input: pool(input, params["kernel_size"], params["stride"], params["padding"], params["dilation"],
                           params["ceil_mode"])
    gradient = None
    try:
        with torch.no_grad():
            output_shape = f(torch.zeros(shape)).shape
        if has_window_without_input(params, shape, output_shape):
            gradient = max_pool_gradient_from_indices(pool, params)
            note = (note + "; " if note else "") + "a window without input: gradient from torch's forward indices"
    except (RuntimeError, ValueError):
        pass  # run_function records the error
    case = Case(name, f"max_pool{rank}d", params, note)
    return run_function(case, gen, {"input": randn(gen, shape)}, ["input"], f, gradient)


def avg_pool_case(name, rank, rng, gen, params=None, shape=None, note=""):
    if params is None:
        params, shape = draw_pool_params(rng, rank, False)
    case = Case(name, f"avg_pool{rank}d", params, note)
    pool = [F.avg_pool1d, F.avg_pool2d, F.avg_pool3d][rank - 1]
    f = lambda input: pool(input, params["kernel_size"], params["stride"], params["padding"], params["ceil_mode"],
                           params["count_include_pad"])
    return run_function(case, gen, {"input": randn(gen, shape)}, ["input"], f)


def adaptive_avg_pool_case(name, rank, rng, gen):
    sizes = [rng.randint(1, 9 - 2 * (rank - 1)) for _ in range(rank)]
    output_size = [rng.randint(1, 9 - 2 * (rank - 1)) for _ in range(rank)]  # larger or smaller than the input
    case = Case(name, f"adaptive_avg_pool{rank}d", {"output_size": output_size})
    pool = [F.adaptive_avg_pool1d, F.adaptive_avg_pool2d, F.adaptive_avg_pool3d][rank - 1]
    shape = [rng.choice([1, 2]), rng.randint(1, 3)] + sizes
    return run_function(case, gen, {"input": randn(gen, shape)}, ["input"], lambda input: pool(input, output_size))


# ---- batch norm and shape ops ----------------------------------------------------------------

def batch_norm_case(name, rng, gen):
    spatial = [rng.randint(1, 4) for _ in range(rng.randint(0, 3))]
    shape = [rng.choice([1, 2, 3, 4]), rng.randint(1, 4)] + spatial
    channels = shape[1]
    training = rng.random() < 0.6
    affine = rng.random() < 0.7
    track = rng.random() < 0.7
    momentum = rng.choice([0.1, 0.0, 1.0, round(rng.uniform(0.0, 1.0), 4)])
    eps = rng.choice([1e-5, 1e-3, 0.1])
    # Means away from zero and spreads away from one, so the normalization does something.
    x = randn(gen, shape) * rng.uniform(0.1, 5.0) + rng.uniform(-10.0, 10.0)
    inputs = {"input": x,
              "weight": randn(gen, [channels]) if affine else None,
              "bias": randn(gen, [channels]) if affine else None,
              "running_mean": randn(gen, [channels]) if track else None,
              "running_var": torch.rand(channels, generator=gen) + 0.5 if track else None}
    params = {"training": training, "momentum": momentum, "eps": eps}
    note = "" if track or training else "no running statistics in evaluation: batch statistics, as nn.BatchNorm"
    case = Case(name, "batch_norm", params, note)

    def f(input, weight, bias, running_mean, running_var):
        # F.batch_norm refuses evaluation without running statistics; nn.BatchNorm (and convkit)
        # then use the batch's.
        use_batch = training or running_mean is None
        return F.batch_norm(input, running_mean, running_var, weight, bias, use_batch, momentum, eps)
    run_function(case, gen, inputs, ["input", "weight", "bias"], f, after=("running_mean", "running_var"))
    if "grad.input" in case.expected:
        # dx = w / sigma * (dy - mean(dy) - x_hat * mean(dy * x_hat)) nearly cancels with few values
        # per channel (for two it is 0 but for eps): measure against the terms, w / sigma * dy.
        dims = [0] + list(range(2, x.dim()))
        view = [1, channels] + [1] * (x.dim() - 2)
        use_batch = training or not track
        var = x.var(dim=dims, unbiased=False) if use_batch else inputs["running_var"]
        w = inputs["weight"] if affine else torch.ones(channels)
        terms = case.tensors["grad_output"] * (w / torch.sqrt(var + eps)).reshape(view)
        case.scale["grad.input"] = torch.linalg.norm(terms).item()
    return case


def random_shape(rng, rank, low=1, high=3):
    return [rng.randint(low, high) for _ in range(rank)]


def flatten_case(name, rng, gen):
    rank = rng.randint(0, 5)
    r = max(rank, 1)
    start, end = rng.randint(-r, r - 1), rng.randint(-r, r - 1)
    case = Case(name, "flatten", {"start_dim": start, "end_dim": end})
    return run_function(case, gen, {"input": randn(gen, random_shape(rng, rank))}, ["input"],
                        lambda input: torch.flatten(input, start, end))


def concat_case(name, rng, gen):
    rank = rng.randint(1, 5)
    dim = rng.randint(-rank, rank - 1)
    base = random_shape(rng, rank)
    shapes = []
    for _ in range(rng.randint(1, 4)):
        shape = list(base)
        shape[dim] = rng.randint(1, 3)
        shapes.append(shape)
    note = ""
    if rng.random() < 0.08 and rank > 1:  # another dim differs: both must refuse
        other = (dim + 1) % rank
        shapes[-1][other] += 1
        note = "invalid: sizes differ outside dim"
    inputs = {f"input.{i}": randn(gen, shape) for i, shape in enumerate(shapes)}
    case = Case(name, "concat", {"count": len(shapes), "dim": dim}, note)
    return run_function(case, gen, inputs, list(inputs),
                        lambda **t: torch.cat([t[f"input.{i}"] for i in range(len(shapes))], dim))


def torch_slice(x, dim, start, end):
    """convkit's strict slice is torch.narrow (bounds checked), not Python slicing (clamped)."""
    size = x.shape[dim]
    stop = end + size if end < 0 else end
    return x.narrow(dim, start, stop - (start + size if start < 0 else start))


def slice_case(name, rng, gen):
    rank = rng.randint(1, 5)
    shape = random_shape(rng, rank, 1, 5)
    dim = rng.randint(-rank, rank - 1)
    size = shape[dim]
    start = rng.randint(0, size)
    end = rng.randint(start, size)  # start == end: an empty slice
    # Either bound may be written from the end (negative), as in Python.
    start = start - size if start < size and rng.random() < 0.3 else start
    end = end - size if end < size and rng.random() < 0.3 else end
    if rng.random() < 0.15:  # out of range or reversed: both must refuse
        start, end = rng.choice([(end, start - 1), (0, size + 1), (-size - 1, size)])
    case = Case(name, "slice", {"dim": dim, "start": start, "end": end})
    return run_function(case, gen, {"input": randn(gen, shape)}, ["input"],
                        lambda input: torch_slice(input, dim, start, end))


def split_case(name, rng, gen):
    rank = rng.randint(1, 5)
    shape = random_shape(rng, rank, 1, 5)
    dim = rng.randint(-rank, rank - 1)
    remaining, sizes = shape[dim], []
    while remaining > 0:
        sizes.append(rng.randint(1, remaining))
        remaining -= sizes[-1]
    note = ""
    if rng.random() < 0.1:
        sizes[-1] += 1
        note = "invalid: sizes do not add up"
    case = Case(name, "split", {"dim": dim, "sizes": sizes}, note)
    return run_function(case, gen, {"input": randn(gen, shape)}, ["input"],
                        lambda input: torch.split(input, sizes, dim))


def upsample_case(name, rng, gen):
    rank = rng.randint(1, 3)
    shape = [rng.randint(1, 2), rng.randint(1, 3)] + random_shape(rng, rank, 1, 6 - rank)
    one = rng.random() < 0.3
    if rng.random() < 0.5:
        factors = [rng.randint(1, 3) for _ in range(1 if one else rank)]
        params = {"scale_factor": factors}
        f = lambda input: F.interpolate(input, scale_factor=float(factors[0]) if one else [float(v) for v in factors],
                                        mode="nearest")
    else:
        size = [rng.randint(1, 10 - 2 * rank) for _ in range(1 if one else rank)]
        params = {"size": size}
        f = lambda input: F.interpolate(input, size=size[0] if one else size, mode="nearest")
    case = Case(name, "upsample_nearest", params)
    return run_function(case, gen, {"input": randn(gen, shape)}, ["input"], f)


# ---- elementwise ops, activations, reductions, dropout ------------------------------------------

UNARY = {
    # name: (torch function of (x, params), parameter draw, input kind)
    "neg": (lambda x, p: -x, lambda rng: {}, "any"),
    "exp": (lambda x, p: torch.exp(x), lambda rng: {}, "any"),
    "log": (lambda x, p: torch.log(x), lambda rng: {}, "positive"),
    "sqrt": (lambda x, p: torch.sqrt(x), lambda rng: {}, "positive"),
    "square": (lambda x, p: torch.square(x), lambda rng: {}, "any"),
    "abs": (lambda x, p: torch.abs(x), lambda rng: {}, "zeros"),
    "add_scalar": (lambda x, p: x + p["value"], lambda rng: {"value": round(rng.uniform(-3, 3), 3)}, "any"),
    "mul_scalar": (lambda x, p: x * p["value"], lambda rng: {"value": rng.choice([0.0, -1.5, 2.25, 1e-3])}, "any"),
    "div_scalar": (lambda x, p: x / p["value"], lambda rng: {"value": rng.choice([-1.5, 3.0, 1e-3, 7.0])}, "any"),
    "pow_scalar": (lambda x, p: torch.pow(x, p["exponent"]),
                   lambda rng: {"exponent": rng.choice([0.0, 1.0, 2.0, 3.0, 0.5, -1.0, 1.5, -2.5])}, "positive"),
    "clamp": (lambda x, p: torch.clamp(x, p["min"], p["max"]),
              lambda rng: rng.choice([{"min": -0.5, "max": 0.5}, {"min": 0.0, "max": 1.0}, {"min": 1.0, "max": -1.0}]),
              "edges"),
    "relu": (lambda x, p: F.relu(x), lambda rng: {}, "zeros"),
    "leaky_relu": (lambda x, p: F.leaky_relu(x, p["negative_slope"]),
                   lambda rng: {"negative_slope": rng.choice([0.01, 0.2, -0.5, 1.5])}, "zeros"),
    "sigmoid": (lambda x, p: torch.sigmoid(x), lambda rng: {}, "any"),
    "tanh": (lambda x, p: torch.tanh(x), lambda rng: {}, "any"),
    "gelu": (lambda x, p: F.gelu(x, approximate=p["approximate"]),
             lambda rng: {"approximate": rng.choice(["none", "tanh"])}, "any"),
}


def unary_input(rng, gen, shape, kind):
    x = randn(gen, shape) * 2
    if kind == "positive" and rng.random() < 0.85:  # else negatives too: NaN where both must give NaN
        x = x.abs() + 0.1
    if kind in ("zeros", "edges") and x.numel() > 1:  # the kinks: gradient conventions at 0 and at the bounds
        flat = x.reshape(-1)
        for i in range(0, flat.numel(), 3):
            flat[i] = rng.choice([0.0, -0.5, 0.5, 1.0, -1.0])
    return x


def unary_case(name, rng, gen):
    function = rng.choice(sorted(UNARY))
    torch_function, draw, kind = UNARY[function]
    params = dict(function=function, **draw(rng))
    x = unary_input(rng, gen, random_shape(rng, rng.randint(0, 4), 1, 5), kind)
    case = Case(name, "unary", params)
    case = run_function(case, gen, {"input": x}, ["input"], lambda input: torch_function(input, params))
    if function == "gelu" and "grad_output" in case.tensors:
        # 0.5 x (1 + tanh(u)) (or erf) far left: 1 + tanh(u) cancels to ~1e-9, and both sides' values
        # are rounding of terms of size 0.5 |x| (output) and 0.5 |grad_output| (gradient).
        case.scale["output"] = 0.5 * torch.linalg.norm(x).item()
        case.scale["grad.input"] = 0.5 * torch.linalg.norm(case.tensors["grad_output"]).item()
    return case


def broadcast_pair(rng):
    """Two shapes that broadcast: dims dropped from the front or set to 1 in either."""
    full = random_shape(rng, rng.randint(0, 4), 2, 4)

    def thin(shape):
        shape = shape[rng.randint(0, len(shape)):] if shape and rng.random() < 0.3 else list(shape)
        return [1 if rng.random() < 0.3 else d for d in shape]
    return thin(full), thin(full)


def binary_case(name, rng, gen):
    function = rng.choice(["add", "sub", "mul", "div"])
    shape_a, shape_b = broadcast_pair(rng)
    note = ""
    if rng.random() < 0.06 and shape_a:  # sizes that do not broadcast
        shape_b = list(shape_b[:-1]) + [shape_a[-1] + 1] if shape_b else [shape_a[-1] + 1]
        shape_a[-1] = max(shape_a[-1], 2)
        note = "invalid: shapes do not broadcast"
    a = randn(gen, shape_a)
    b = randn(gen, shape_b)
    if function == "div":
        b = torch.sign(b) * (b.abs() + 0.5)
    case = Case(name, "binary", {"function": function}, note)
    f = {"add": torch.add, "sub": torch.sub, "mul": torch.mul, "div": torch.div}[function]
    return run_function(case, gen, {"a": a, "b": b}, ["a", "b"], lambda a, b: f(a, b))


def reduction_case(name, rng, gen):
    op = rng.choice(["sum", "mean", "max", "argmax"])
    rank = rng.randint(0, 4)
    shape = random_shape(rng, rank, 1, 4)
    r = max(rank, 1)
    x = randn(gen, shape)
    params, note = {}, ""
    if op in ("sum", "mean"):
        choice = rng.random()
        if choice < 0.2:
            f = lambda input: getattr(torch, op)(input)
        elif choice < 0.3:
            keepdim = rng.random() < 0.5
            params = {"dims": "all", "keepdim": keepdim}  # the empty list: every dim, as in PyTorch
            f = lambda input: getattr(torch, op)(input, dim=[], keepdim=keepdim)
        else:
            dims = rng.sample(range(r), rng.randint(1, r))
            dims = [d - r if rng.random() < 0.3 else d for d in dims]
            if rng.random() < 0.06:
                dims.append(dims[0] % r)
                note = "invalid: a dim twice"
            keepdim = rng.random() < 0.5
            params = {"dims": dims, "keepdim": keepdim}
            f = lambda input: getattr(torch, op)(input, dim=dims, keepdim=keepdim)
    elif op == "max" and rng.random() < 0.3:
        f = lambda input: torch.max(input)
    else:
        dim = rng.randint(-r, r - 1)
        keepdim = rng.random() < 0.5
        params = {"dim": dim, "keepdim": keepdim}
        if op == "max":
            f = lambda input: torch.max(input, dim, keepdim).values
        else:
            f = lambda input: torch.argmax(input, dim, keepdim)
    case = Case(name, op, params, note)
    return run_function(case, gen, {"input": x}, [] if op == "argmax" else ["input"], f)


def dropout_case(name, rng, gen):
    """The masks come from different generators, so this checks properties: every output is 0 or
    x / (1 - p), the gradient goes through the same mask, and the share dropped is near p."""
    p = rng.choice([0.0, 0.1, 0.5, 0.9, 1.0])
    training = rng.random() < 0.8
    shape = random_shape(rng, rng.randint(1, 4), 1, 12)
    params = {"p": p, "training": training, "seed": rng.randrange(1 << 40)}
    case = Case(name, "dropout", params)
    x = randn(gen, shape)
    if not training or p in (0.0, 1.0):  # deterministic: compare with torch
        return run_function(case, gen, {"input": x}, ["input"], lambda input: F.dropout(input, p, training))
    case.tensors["input"] = x
    case.requires_grad = ["input"]
    grad_output = randn(gen, shape)
    case.tensors["grad_output"] = grad_output

    def check(result):
        out, grad = result.get("output"), result.get("grad.input")
        if out is None or grad is None:
            return [("output", "missing output or gradient")]
        kept = out != 0
        failures = []
        scale = 1.0 / (1.0 - p)
        error, _ = relative_error(out, torch.where(kept, x * scale, torch.zeros(())))
        if not error <= TOLERANCE:
            failures.append(("output", f"kept elements are not x / (1 - p): relative error {error:.3g}"))
        error, _ = relative_error(grad, torch.where(kept, grad_output * scale, torch.zeros(())))
        if not error <= TOLERANCE:
            failures.append(("grad.input", f"not the output's mask: relative error {error:.3g}"))
        n = x.numel()
        dropped = 1.0 - kept.double().mean().item()
        bound = 5 * math.sqrt(p * (1 - p) / n) + 1.0 / n  # five standard deviations
        if abs(dropped - p) > bound:
            failures.append(("output", f"dropped {dropped:.3f} of {n}, p = {p} (bound {bound:.3f})"))
        return failures
    case.check = check
    return case


# ---- softmax and losses -------------------------------------------------------------------------

def softmax_case(name, rng, gen):
    op = rng.choice(["softmax", "log_softmax"])
    rank = rng.randint(1, 4)
    shape = random_shape(rng, rank, 1, 5)
    dim = rng.randint(-rank, rank - 1)
    x = randn(gen, shape) * rng.choice([1.0, 5.0, 30.0])
    note = ""
    if rng.random() < 0.15:  # -inf entries: 0 (or -inf) where others are finite, NaN for a row of -inf
        flat = x.reshape(-1)
        for i in range(0, flat.numel(), rng.randint(2, 4)):
            flat[i] = -math.inf
        note = "-inf entries"
    case = Case(name, op, {"dim": dim}, note)
    f = getattr(F, op)
    run_function(case, gen, {"input": x}, ["input"], lambda input: f(input, dim))
    if "grad.input" in case.expected:
        # softmax: dx = y (dy - sum(dy y)), log_softmax: dx = dy - exp(y) sum(dy), both cancel where
        # one entry dominates a row (y near 1): measure against the terms, not the difference.
        y, dy = case.expected["output"], case.tensors["grad_output"]
        if op == "softmax":
            terms = y * (dy.abs() + (dy * y).sum(dim, keepdim=True).abs())
        else:
            terms = dy.abs() + torch.exp(y) * dy.sum(dim, keepdim=True).abs()
        case.scale["grad.input"] = torch.linalg.norm(torch.nan_to_num(terms, nan=0.0, posinf=0.0)).item()
    return case


def cross_entropy_case(name, rng, gen):
    classes = rng.randint(1, 6)
    layout = rng.choice(["C", "NC", "NC", "NCd", "NCdd"])
    batch = rng.randint(1, 4)
    spatial = {"C": [], "NC": [], "NCd": [rng.randint(1, 4)], "NCdd": [rng.randint(1, 3), rng.randint(1, 3)]}[layout]
    logits_shape = [classes] if layout == "C" else [batch, classes] + spatial
    target_shape = [] if layout == "C" else [batch] + spatial
    ignore_index = rng.choice([-100, -100, -1, rng.randrange(classes)])
    target = torch.randint(0, classes, target_shape, generator=gen, dtype=torch.int64)
    if rng.random() < 0.3:  # some positions ignored (possibly all)
        mask = torch.rand(target_shape, generator=gen) < rng.choice([0.3, 1.0])
        target = torch.where(mask, torch.full_like(target, ignore_index), target)
    note = ""
    if rng.random() < 0.06:
        target.reshape(-1)[0] = classes  # neither a class nor ignore_index
        note = "invalid: target out of range"
    params = {"label_smoothing": rng.choice([0.0, 0.0, 0.1, round(rng.uniform(0, 1), 3)]),
              "reduction": rng.choice(["none", "mean", "sum"]), "ignore_index": ignore_index}
    case = Case(name, "cross_entropy", params, note)
    x = randn(gen, logits_shape) * 3
    f = lambda input, target: F.cross_entropy(input, target, ignore_index=ignore_index,
                                              reduction=params["reduction"],
                                              label_smoothing=params["label_smoothing"])
    run_function(case, gen, {"input": x, "target": target}, ["input"], f)
    if "output" not in case.expected:  # torch refused it: nothing to measure against
        return case
    class_dim = 0 if layout == "C" else 1
    valid = target != ignore_index
    smoothing = params["label_smoothing"]
    q = F.one_hot(torch.where(valid, target, torch.zeros_like(target)), classes).double()
    q = (1 - smoothing) * q + smoothing / classes
    q = torch.movedim(q, -1, class_dim) * valid.unsqueeze(class_dim)
    # loss = sum_c q_c (logsumexp(x) - x_c) cancels to a tiny value where the target's logit
    # dominates, which float64's rounding of logsumexp and x_c then dominates (seed 1665714980:
    # 1.8e-10 relative on a two-class loss): measure against the terms, sum_c q_c (|lse| + |x_c|),
    # reduced as the loss is.
    lse = torch.logsumexp(x, class_dim, keepdim=True)
    terms = (q * (lse.abs() + x.abs())).sum(class_dim)
    if params["reduction"] == "none":
        case.scale["output"] = torch.linalg.norm(terms).item()
    else:
        total = terms.sum() / (valid.sum() if params["reduction"] == "mean" else 1)
        case.scale["output"] = abs(total.item()) if torch.isfinite(total) else 0.0
    if "grad.input" in case.expected:
        # dx = w (softmax(x) - q), q the smoothed one-hot target, cancels to ~0 where softmax is
        # near q (one class: exactly 0): measure against the terms, w (softmax(x) + q).
        dy = case.tensors["grad_output"]
        if params["reduction"] == "mean":
            dy = dy / valid.sum()
        weight = (dy * valid).unsqueeze(class_dim) if params["reduction"] == "none" else dy * valid.unsqueeze(class_dim)
        terms = weight * (torch.softmax(x, class_dim) + q)
        case.scale["grad.input"] = torch.linalg.norm(terms).item()
    return case


def mse_case(name, rng, gen):
    shape = random_shape(rng, rng.randint(0, 4), 1, 4)
    reduction = rng.choice(["none", "mean", "sum"])
    case = Case(name, "mse_loss", {"reduction": reduction})
    inputs = {"input": randn(gen, shape), "target": randn(gen, shape)}
    return run_function(case, gen, inputs, ["input", "target"],
                        lambda input, target: F.mse_loss(input, target, reduction=reduction))


def bce_case(name, rng, gen):
    rank = rng.randint(1, 4)
    shape = random_shape(rng, rank, 1, 4)
    reduction = rng.choice(["none", "mean", "sum"])
    target = torch.rand(shape, generator=gen)
    if rng.random() < 0.4:
        target = (target > 0.5).double()  # hard labels
    pos_weight = None
    if rng.random() < 0.5:  # broadcast against the logits: [C] for [N, C], [C, 1, 1] for [N, C, H, W]
        pw_shape = [shape[-1]] if rank <= 2 else [shape[1]] + [1] * (rank - 2)
        pos_weight = torch.rand(pw_shape, generator=gen) * 3
    case = Case(name, "binary_cross_entropy_with_logits", {"reduction": reduction})
    inputs = {"input": randn(gen, shape) * 4, "target": target, "pos_weight": pos_weight}
    f = lambda input, target, pos_weight: F.binary_cross_entropy_with_logits(
        input, target, reduction=reduction, pos_weight=pos_weight)
    return run_function(case, gen, inputs, ["input", "target"], f)


# ---- optimizers and schedules ------------------------------------------------------------------

def draw_optimizer(rng):
    kind = rng.choice(["SGD", "Adam", "AdamW"])
    if kind == "SGD":
        momentum = rng.choice([0.0, 0.9, round(rng.uniform(0.0, 1.0), 3)])
        dampening = rng.choice([0.0, 0.0, round(rng.uniform(0.0, 0.5), 3)])
        return dict(type="SGD", lr=rng.choice([0.1, 0.01, round(rng.uniform(0.0, 0.5), 4)]), momentum=momentum,
                    dampening=dampening, weight_decay=rng.choice([0.0, 1e-2, round(rng.uniform(0.0, 0.1), 4)]),
                    nesterov=momentum > 0 and dampening == 0 and rng.random() < 0.5, maximize=rng.random() < 0.2)
    return dict(type=kind, lr=rng.choice([1e-3, 1e-2, 0.1]), beta1=rng.choice([0.9, 0.5, 0.0]),
                beta2=rng.choice([0.999, 0.9, 0.5]), eps=rng.choice([1e-8, 1e-6, 0.1]),
                weight_decay=rng.choice([0.0, 1e-2, 0.1]), amsgrad=rng.random() < 0.5, maximize=rng.random() < 0.2)


def break_optimizer(rng, spec):
    """One hyperparameter that both libraries must refuse."""
    spec = dict(spec)
    if spec["type"] == "SGD":
        how = rng.choice(["nesterov_without_momentum", "nesterov_with_dampening", "negative_lr", "negative_momentum"])
        spec.update({"nesterov_without_momentum": dict(nesterov=True, momentum=0.0),
                     "nesterov_with_dampening": dict(nesterov=True, momentum=0.9, dampening=0.5),
                     "negative_lr": dict(lr=-0.1), "negative_momentum": dict(momentum=-0.5)}[how])
    else:
        how = rng.choice(["beta1_one", "beta2_negative", "negative_eps", "negative_weight_decay"])
        spec.update({"beta1_one": dict(beta1=1.0), "beta2_negative": dict(beta2=-0.1),
                     "negative_eps": dict(eps=-1e-8), "negative_weight_decay": dict(weight_decay=-0.1)}[how])
    return spec, "invalid: " + how


def draw_scheduler(rng, steps):
    kind = rng.choice([None, None, "StepLR", "CosineAnnealingLR", "OneCycleLR"])
    if kind == "StepLR":
        return dict(type=kind, step_size=rng.randint(1, 3), gamma=round(rng.uniform(0.1, 0.9), 3))
    if kind == "CosineAnnealingLR":
        return dict(type=kind, T_max=rng.randint(1, 5), eta_min=rng.choice([0.0, 1e-3]))
    if kind == "OneCycleLR":
        # total_steps == steps included: the last schedule step reaches total_steps, where torch
        # extrapolates and convkit keeps the final rate; no optimizer step uses that rate.
        return dict(type=kind, max_lr=rng.choice([0.1, 0.05]), total_steps=steps + rng.randint(0, 3),
                    pct_start=rng.choice([0.3, 0.5]), anneal_strategy=rng.choice(["cos", "linear"]),
                    cycle_momentum=rng.random() < 0.7, base_momentum=0.85, max_momentum=0.95,
                    div_factor=rng.choice([25.0, 10.0]), final_div_factor=rng.choice([1e4, 100.0]),
                    three_phase=rng.random() < 0.3)
    return None


def torch_optimizer(params, spec):
    kwargs = {k: v for k, v in spec.items() if k != "type"}
    if spec["type"] != "SGD":
        kwargs["betas"] = (kwargs.pop("beta1"), kwargs.pop("beta2"))
    return getattr(torch.optim, spec["type"])(params, **kwargs)


def torch_scheduler(optimizer, spec):
    if spec is None:
        return None
    return getattr(torch.optim.lr_scheduler, spec["type"])(optimizer, **{k: v for k, v in spec.items() if k != "type"})


def optimizer_metadata(optimizer, scheduler):
    params = {f"optimizer.{k}": v for k, v in optimizer.items()}
    params.update({f"scheduler.{k}": v for k, v in (scheduler or {}).items()})
    return params


ONE_CYCLE_END = "OneCycleLR stepped to total_steps: torch extrapolates the rate, convkit keeps the final one"


def expect_optimizer_state(case, optimizer, schedule, steps):
    """The final state_dict under convkit's names: state.<i>.<buffer>, param_groups.0.<hyperparameter>.
    A OneCycleLR whose last step() reached total_steps set hyperparameters no step used, and the
    two differ there by design (convkit/optim/scheduler.h): those are left out."""
    scheduled = ()
    if schedule is not None and schedule["type"] == "OneCycleLR" and schedule["total_steps"] == steps:
        scheduled = ("lr", "momentum", "beta1")
        case.known.append(ONE_CYCLE_END)
    state = optimizer.state_dict()
    for i, buffers in state["state"].items():
        for key, value in buffers.items():
            if value is None:  # SGD without momentum keeps momentum_buffer = None; convkit no key
                continue
            case.expected[f"optimizer.state.{i}.{key}"] = torch.as_tensor(value, dtype=torch.float64)
    group = dict(state["param_groups"][0])
    if "betas" in group:
        group["beta1"], group["beta2"] = group.pop("betas")
    for key in ("lr", "momentum", "dampening", "weight_decay", "beta1", "beta2", "eps"):
        if key in group and key not in scheduled:
            case.expected[f"optimizer.param_groups.0.{key}"] = torch.tensor(float(group[key]))


def optim_case(name, rng, gen, invalid=False):
    count, steps = rng.randint(1, 4), rng.randint(1, 6)
    shapes = [random_shape(rng, rng.randint(0, 4), 1, 4) for _ in range(count)]
    spec, note = draw_optimizer(rng), ""
    if invalid:
        spec, note = break_optimizer(rng, spec)
    schedule = draw_scheduler(rng, steps)
    case = Case(name, "optim", dict(count=count, steps=steps, **optimizer_metadata(spec, schedule)), note)
    params = [randn(gen, shape) for shape in shapes]
    grads = [[randn(gen, shape) if rng.random() > 0.15 else None for shape in shapes] for _ in range(steps)]
    for i, p in enumerate(params):
        case.tensors[f"param.{i}"] = p.contiguous()
    for k, step in enumerate(grads):
        for i, g in enumerate(step):
            if g is not None:
                case.tensors[f"grad.{k}.{i}"] = g.contiguous()
    leaves = [p.clone().requires_grad_() for p in params]
    try:
        optimizer = torch_optimizer(leaves, spec)
        scheduler = torch_scheduler(optimizer, schedule)
        for k, step in enumerate(grads):
            for leaf, g in zip(leaves, step):
                leaf.grad = None if g is None else g.clone()
            case.expected[f"lr.{k}"] = torch.tensor(float(optimizer.param_groups[0]["lr"]))
            optimizer.step()
            if scheduler is not None:
                scheduler.step()
            for i, leaf in enumerate(leaves):
                case.expected[f"after.{k}.param.{i}"] = leaf.detach().clone()
    except (ValueError, RuntimeError, ZeroDivisionError) as e:
        # ZeroDivisionError: torch's OneCycleLR reaching a phase of length 0 (convkit refuses it).
        case.expected.clear()
        case.torch_error = f"{type(e).__name__}: {e}".splitlines()[0]
        return case
    expect_optimizer_state(case, optimizer, schedule, steps)
    return case


def train_case(name, rng, gen, seed):
    """A small CNN trained for a few steps: outputs, parameters after each step, final state."""
    rank = rng.randint(1, 3)
    spec, shape = sequential_spec(rng, rank)
    steps = rng.randint(2, 4)
    opt_spec, schedule = draw_optimizer(rng), draw_scheduler(rng, steps)
    case = Case(name, "train", dict(spec, steps=steps, training=True, **optimizer_metadata(opt_spec, schedule)))
    torch.manual_seed(seed)
    module = torch_module(spec).double().train(True)
    for key, value in module.state_dict().items():
        case.tensors["state." + key] = value.detach().clone().contiguous()
    try:
        optimizer = torch_optimizer(list(module.parameters()), opt_spec)
        scheduler = torch_scheduler(optimizer, schedule)
        for k in range(steps):
            optimizer.zero_grad(set_to_none=True)
            x = randn(gen, shape)
            output = module(x)
            grad_output = randn(gen, output.shape)
            case.tensors[f"input.{k}"], case.tensors[f"grad_output.{k}"] = x, grad_output
            case.expected[f"output.{k}"] = output.detach().clone()
            case.expected[f"lr.{k}"] = torch.tensor(float(optimizer.param_groups[0]["lr"]))
            output.backward(grad_output)
            optimizer.step()
            if scheduler is not None:
                scheduler.step()
            for key, value in module.state_dict().items():
                case.expected[f"after.{k}.state.{key}"] = value.detach().clone()
    except ZeroDivisionError as e:  # torch's OneCycleLR reaching a phase of length 0
        case.expected.clear()
        case.torch_error = f"{type(e).__name__}: {e}".splitlines()[0]
        return case
    for key, parameter in module.named_parameters():
        case.expected["grad.state." + key] = parameter.grad.detach().clone()  # the last step's
    expect_optimizer_state(case, optimizer, schedule, steps)
    return case


# ---- modules -----------------------------------------------------------------------------------

def conv_module_spec(rng, rank, transposed):
    if transposed:
        p, _ = draw_conv_transpose_params(rng, rank)
        keys = ("in_channels", "out_channels", "kernel_size", "stride", "padding", "output_padding", "dilation",
                "groups", "bias")
    else:
        p = draw_conv_params(rng, rank)
        keys = ("in_channels", "out_channels", "kernel_size", "stride", "padding", "dilation", "groups", "bias",
                "padding_mode")
    spec = {"type": f"Conv{'Transpose' if transposed else ''}{rank}d"}
    spec.update({k: p[k] for k in keys})
    return spec, [p["batch"], p["in_channels"]] + p["sizes"]


def pool_module_spec(rng, rank, max_pool):
    params, shape = draw_pool_params(rng, rank, max_pool)
    spec = {"type": f"{'Max' if max_pool else 'Avg'}Pool{rank}d"}
    spec.update(params)
    return spec, shape


def sequential_spec(rng, rank):
    """A small CNN: conv (a padding mode), batch norm, an activation, max pool, grouped strided conv,
    avg pool with padding, adaptive pool, flatten."""
    c0, c1, c2 = rng.randint(1, 3), 2 * rng.randint(1, 2), 2 * rng.randint(1, 3)
    size = {1: 17, 2: 9, 3: 6}[rank] + rng.randint(0, 3)
    children = [
        # No bias before batch norm: its gradient is zero but for rounding (the normalization
        # removes per-channel constants), and Adam would amplify that noise into the trajectory.
        {"type": f"Conv{rank}d", "in_channels": c0, "out_channels": c1, "kernel_size": 3, "padding": 1,
         "padding_mode": rng.choice(["zeros", "reflect", "replicate", "circular"]), "bias": False},
        {"type": f"BatchNorm{rank}d", "num_features": c1, "momentum": rng.choice([0.1, None])},
        rng.choice([{"type": "ReLU"}, {"type": "LeakyReLU", "negative_slope": 0.1}, {"type": "GELU"}]),
        {"type": f"MaxPool{rank}d", "kernel_size": 2, "ceil_mode": rng.random() < 0.5},
        {"type": f"Conv{rank}d", "in_channels": c1, "out_channels": c2, "kernel_size": rng.choice([1, 3]),
         "groups": 2, "stride": rng.choice([1, 2]), "padding": 1, "bias": rng.random() < 0.5},
        {"type": f"AvgPool{rank}d", "kernel_size": 2, "stride": 1, "padding": 1,
         "count_include_pad": rng.random() < 0.5},
        {"type": f"AdaptiveAvgPool{rank}d", "output_size": [2] * rank},
        {"type": "Flatten"},
    ]
    return {"type": "Sequential", "children": children}, [rng.choice([1, 2]), c0] + [size] * rank


def module_case(name, rng, gen, seed, kind):
    rank = rng.randint(1, 3)
    if kind == "conv":
        spec, shape = conv_module_spec(rng, rank, rng.random() < 0.4)
    elif kind == "pool":
        spec, shape = pool_module_spec(rng, rank, rng.random() < 0.5)
    elif kind == "adaptive":
        shape = [rng.randint(1, 2), rng.randint(1, 3)] + [rng.randint(1, 7) for _ in range(rank)]
        spec = {"type": f"AdaptiveAvgPool{rank}d", "output_size": [rng.randint(1, 7) for _ in range(rank)]}
    elif kind == "batchnorm":
        shape = [rng.randint(1, 4), rng.randint(1, 4)] + random_shape(rng, rank, 1, 4)
        if rank == 1 and rng.random() < 0.3:
            shape = shape[:2]  # BatchNorm1d also takes [N, C]
        spec = {"type": f"BatchNorm{rank}d", "num_features": shape[1], "eps": rng.choice([1e-5, 1e-3]),
                "momentum": rng.choice([0.1, 0.5, None]), "affine": rng.random() < 0.7,
                "track_running_stats": rng.random() < 0.8}
        return run_module(Case(name, "module", spec), gen, seed, randn(gen, shape) * 2 + 1,
                          training=rng.random() < 0.6, randomize_buffers=True)
    elif kind == "activation":
        shape = [rng.randint(1, 3) for _ in range(rng.randint(1, 4))]
        spec = rng.choice([{"type": "ReLU"}, {"type": "LeakyReLU", "negative_slope": rng.choice([0.01, 0.3])},
                           {"type": "Sigmoid"}, {"type": "Tanh"},
                           {"type": "GELU", "approximate": rng.choice(["none", "tanh"])},
                           {"type": "Dropout", "p": rng.choice([0.0, 0.5])}])
        training = spec["type"] != "Dropout" or spec["p"] == 0.0  # the masks differ: Dropout p > 0 in eval only
        return run_module(Case(name, "module", spec), gen, seed, randn(gen, shape), training=training)
    elif kind == "upsample":
        shape = [rng.randint(1, 2), rng.randint(1, 3)] + random_shape(rng, rank, 1, 4)
        spec = {"type": "Upsample", "scale_factor": [rng.randint(1, 3) for _ in range(rank)]}
    elif kind == "flatten":
        shape = [rng.randint(1, 3) for _ in range(rng.randint(2, 5))]
        start = rng.randint(-len(shape), len(shape) - 1)
        end = rng.randint(-len(shape), len(shape) - 1)
        spec = {"type": "Flatten", "start_dim": start, "end_dim": end}
    else:
        spec, shape = sequential_spec(rng, rank)
        return run_module(Case(name, "module", spec), gen, seed, randn(gen, shape), training=rng.random() < 0.7,
                          randomize_buffers=True)
    return run_module(Case(name, "module", spec), gen, seed, randn(gen, shape))


# ---- the cases PyTorch's bug history says are easy to get wrong ---------------------------------

def edge_cases():
    """(name, builder(rng, gen, seed)) pairs with fixed geometries; data still random."""
    cases = []

    def add(name, builder):
        cases.append((name, builder))

    def conv_fixed(name, rank, shape, weight, note, bias=True, transposed=False, **params):
        def build(rng, gen, seed):
            defaults = dict(stride=1, padding=0, dilation=1, groups=1)
            defaults.update(params)
            op = f"conv_transpose{rank}d" if transposed else f"conv{rank}d"
            mode = defaults.pop("padding_mode", "zeros")
            if not transposed:
                defaults["padding_mode"] = mode
            case = Case(name, op, defaults, note)
            out_channels = weight[1] * defaults["groups"] if transposed else weight[0]
            inputs = {"input": randn(gen, shape), "weight": randn(gen, weight),
                      "bias": randn(gen, [out_channels]) if bias else None}
            norm = lambda v: [v] * rank if isinstance(v, int) else v
            if transposed:
                f = lambda input, weight, bias: conv_pair(rank)[1](
                    input, weight, bias, norm(defaults["stride"]), norm(defaults["padding"]),
                    norm(defaults.get("output_padding", 0)), defaults["groups"], norm(defaults["dilation"]))
            else:
                f = lambda input, weight, bias: torch_conv(
                    rank, input, weight, bias, norm(defaults["stride"]),
                    defaults["padding"] if defaults["padding"] == "same" else norm(defaults["padding"]),
                    norm(defaults["dilation"]), defaults["groups"], mode)
            return run_function(case, gen, inputs, ["input", "weight", "bias"], f)
        add(name, build)

    # Strided 1x1 convolutions (the ResNet shortcut): most input positions get no gradient.
    conv_fixed("edge_conv2d_strided_1x1", 2, [2, 4, 7, 7], [6, 4, 1, 1], "strided 1x1", stride=2)
    conv_fixed("edge_conv1d_strided_1x1_pad", 1, [1, 3, 10], [5, 3, 1], "strided 1x1 with padding", stride=3,
               padding=1)
    conv_fixed("edge_conv3d_strided_1x1", 3, [1, 2, 5, 4, 6], [3, 2, 1, 1, 1], "strided 1x1x1", stride=[2, 1, 3])
    # Dilation with groups, depthwise with a multiplier.
    conv_fixed("edge_conv2d_dilated_groups", 2, [2, 6, 11, 9], [9, 2, 3, 3], "dilation with groups", groups=3,
               dilation=[2, 3], padding=2)
    conv_fixed("edge_conv2d_depthwise_dilated", 2, [1, 4, 9, 9], [8, 1, 3, 3], "depthwise x2, dilated", groups=4,
               dilation=2, padding=2, stride=2)
    conv_fixed("edge_conv1d_depthwise_same_even", 1, [2, 3, 8], [3, 1, 4], "depthwise, 'same' with an even kernel",
               groups=3, padding="same", dilation=3)
    # 'same' padding with an even kernel pads one more at the end; non-zero modes with it.
    conv_fixed("edge_conv2d_same_even_reflect", 2, [1, 2, 6, 7], [3, 2, 2, 4], "'same', even kernel, reflect",
               padding="same", padding_mode="reflect")
    conv_fixed("edge_conv3d_same_circular", 3, [1, 1, 4, 3, 5], [2, 1, 2, 3, 2], "'same', circular",
               padding="same", padding_mode="circular")
    # Reflect and circular padding at their limits (pad = size - 1, pad = size).
    conv_fixed("edge_conv1d_reflect_max", 1, [1, 2, 4], [3, 2, 3], "reflect, padding = size - 1", padding=3,
               padding_mode="reflect")
    conv_fixed("edge_conv2d_circular_max", 2, [2, 1, 3, 2], [2, 1, 2, 2], "circular, padding = size", padding=[3, 2],
               padding_mode="circular")
    conv_fixed("edge_conv2d_replicate_wide", 2, [1, 2, 2, 3], [2, 2, 3, 3], "replicate, padding > size",
               padding=[4, 5], padding_mode="replicate", stride=2)
    conv_fixed("edge_conv1d_reflect_too_far", 1, [1, 1, 3], [1, 1, 3], "invalid: reflect padding = size",
               padding=3, padding_mode="reflect")
    conv_fixed("edge_conv2d_circular_too_far", 2, [1, 1, 3, 4], [1, 1, 3, 3], "invalid: circular padding > size",
               padding=[4, 1], padding_mode="circular")
    # Odd sizes, batch 1, a kernel as large as the padded input.
    conv_fixed("edge_conv2d_kernel_fills_input", 2, [1, 3, 5, 3], [2, 3, 7, 5], "kernel = padded input", padding=1)
    conv_fixed("edge_conv2d_kernel_too_large", 2, [1, 3, 5, 3], [2, 3, 8, 5], "invalid: kernel > padded input",
               padding=1)
    conv_fixed("edge_conv3d_odd", 3, [1, 3, 3, 5, 7], [5, 3, 3, 1, 2], "odd sizes", stride=[1, 2, 3],
               padding=[1, 0, 1], bias=False)
    # Transposed: output_padding >= stride (allowed where dilation is larger), groups, dilation.
    conv_fixed("edge_conv_transpose2d_op_ge_stride", 2, [1, 4, 3, 4], [4, 3, 3, 2], "output_padding >= stride",
               transposed=True, stride=[1, 2], dilation=[3, 3], output_padding=[2, 2], groups=2)
    conv_fixed("edge_conv_transpose1d_op_too_large", 1, [1, 2, 5], [2, 2, 3], "invalid: output_padding = stride",
               transposed=True, stride=2, output_padding=2)
    conv_fixed("edge_conv_transpose3d_groups", 3, [2, 6, 2, 3, 2], [6, 1, 2, 3, 2], "groups 3, stride, padding",
               transposed=True, stride=[2, 1, 3], padding=[0, 1, 1], output_padding=[1, 0, 2], groups=3)
    conv_fixed("edge_conv_transpose2d_strided_1x1", 2, [1, 3, 4, 5], [3, 2, 1, 1], "strided 1x1 transposed",
               transposed=True, stride=3, output_padding=[2, 1])
    conv_fixed("edge_conv_transpose1d_padding_eats_output", 1, [1, 1, 2], [1, 1, 2], "invalid: output size 0",
               transposed=True, padding=2)

    def pool_fixed(name, kind, rank, shape, note, **params):
        def build(rng, gen, seed):
            p = dict(stride=None, padding=0, ceil_mode=False)
            p.update(params)
            norm = lambda v: [v] * rank if isinstance(v, int) else v
            p = {k: (norm(v) if k in ("kernel_size", "stride", "padding", "dilation") and v is not None else v)
                 for k, v in p.items()}
            if kind == "max":
                p.setdefault("dilation", [1] * rank)
                return max_pool_case(name, rank, rng, gen, p, shape, note)
            p.setdefault("count_include_pad", True)
            return avg_pool_case(name, rank, rng, gen, p, shape, note)
        add(name, build)

    # ceil_mode: the last window overhangs the input; one that would start in the right padding
    # is dropped (PyTorch's rule: 5 + 2*1 with k2 s2 gives 3 windows in ceil mode, not 4).
    pool_fixed("edge_max_pool2d_ceil_drop_window", "max", 2, [1, 2, 5, 5], "ceil, last window would start in padding",
               kernel_size=2, stride=2, padding=1, ceil_mode=True)
    pool_fixed("edge_avg_pool2d_ceil_drop_window", "avg", 2, [1, 2, 5, 5], "ceil, last window would start in padding",
               kernel_size=2, stride=2, padding=1, ceil_mode=True)
    pool_fixed("edge_avg_pool1d_ceil_exclude_pad", "avg", 1, [2, 1, 6], "ceil, count_include_pad=False",
               kernel_size=3, stride=2, padding=1, ceil_mode=True, count_include_pad=False)
    pool_fixed("edge_avg_pool1d_ceil_include_pad", "avg", 1, [2, 1, 6], "ceil, overhang not counted past padding",
               kernel_size=3, stride=2, padding=1, ceil_mode=True, count_include_pad=True)
    pool_fixed("edge_max_pool1d_ceil_overhang", "max", 1, [1, 1, 2], "ceil, kernel > padded input", kernel_size=3,
               stride=2, ceil_mode=True)
    pool_fixed("edge_max_pool1d_floor_too_small", "max", 1, [1, 1, 2], "invalid: kernel > input, floor",
               kernel_size=3, stride=2)
    pool_fixed("edge_max_pool2d_dilated_pad_ceil", "max", 2, [1, 1, 4, 5], "dilation 2, padding, ceil",
               kernel_size=3, stride=2, padding=1, dilation=2, ceil_mode=True)
    # A window whose dilated taps all fall in the padding or past the edge: PyTorch gives -inf.
    pool_fixed("edge_max_pool1d_window_without_input", "max", 1, [1, 1, 1], "ceil, dilated window misses the input",
               kernel_size=2, stride=3, padding=1, dilation=3, ceil_mode=True)
    pool_fixed("edge_max_pool3d_stride1_pad", "max", 3, [1, 2, 3, 3, 3], "stride 1, padding 1",
               kernel_size=3, stride=1, padding=1)
    pool_fixed("edge_avg_pool3d_ceil", "avg", 3, [1, 1, 5, 4, 3], "ceil, mixed kernel", kernel_size=[2, 3, 2],
               stride=[2, 2, 2], padding=[1, 1, 0], ceil_mode=True, count_include_pad=False)
    pool_fixed("edge_max_pool2d_padding_too_large", "max", 2, [1, 1, 6, 6], "invalid: padding > kernel/2",
               kernel_size=3, padding=2)
    pool_fixed("edge_avg_pool2d_padding_too_large", "avg", 2, [1, 1, 6, 6], "invalid: padding > kernel/2",
               kernel_size=2, padding=2)

    def module_fixed(name, spec, shape, training=True):
        def build(rng, gen, seed):
            return run_module(Case(name, "module", spec), gen, seed, randn(gen, shape), training)
        add(name, build)

    module_fixed("edge_module_conv_transpose_reflect", {"type": "ConvTranspose2d", "in_channels": 2,
                 "out_channels": 2, "kernel_size": 3, "padding_mode": "reflect"}, [1, 2, 4, 4])
    module_fixed("edge_module_same_stride", {"type": "Conv1d", "in_channels": 1, "out_channels": 1,
                 "kernel_size": 3, "padding": "same", "stride": 2}, [1, 1, 8])
    module_fixed("edge_module_conv2d_same_reflect_even", {"type": "Conv2d", "in_channels": 2, "out_channels": 4,
                 "kernel_size": [2, 4], "padding": "same", "padding_mode": "reflect", "groups": 2,
                 "dilation": [1, 2]}, [1, 2, 5, 7])

    def batch_norm_fixed(name, shape, training, track, note):
        def build(rng, gen, seed):
            channels = shape[1]
            inputs = {"input": randn(gen, shape) * 2 + 1, "weight": randn(gen, [channels]),
                      "bias": randn(gen, [channels]),
                      "running_mean": randn(gen, [channels]) if track else None,
                      "running_var": torch.rand(channels, generator=gen) + 0.5 if track else None}
            case = Case(name, "batch_norm", {"training": training, "momentum": 0.1, "eps": 1e-5}, note)
            f = lambda input, weight, bias, running_mean, running_var: F.batch_norm(
                input, running_mean, running_var, weight, bias, training or not track, 0.1, 1e-5)
            return run_function(case, gen, inputs, ["input", "weight", "bias"], f,
                                after=("running_mean", "running_var"))
        add(name, build)

    batch_norm_fixed("edge_batch_norm_one_value_training", [1, 3], True, True, "invalid: one value per channel")
    batch_norm_fixed("edge_batch_norm_one_value_spatial", [1, 2, 1, 1], True, False, "invalid: one value per channel")
    batch_norm_fixed("edge_batch_norm_one_value_eval", [1, 3], False, True, "one value per channel, evaluation")
    batch_norm_fixed("edge_batch_norm3d_training", [2, 3, 2, 3, 2], True, True, "3d, running statistics")

    def shape_fixed(name, op, params, shapes, function, note):
        def build(rng, gen, seed):
            inputs = {k: randn(gen, v) for k, v in shapes.items()}
            return run_function(Case(name, op, params, note), gen, inputs, list(inputs), function)
        add(name, build)

    shape_fixed("edge_concat_empty_part", "concat", {"count": 2, "dim": 1}, {"input.0": [2, 0], "input.1": [2, 3]},
                lambda **t: torch.cat([t["input.0"], t["input.1"]], 1), "an input of size 0 along dim")
    shape_fixed("edge_split_empty_part", "split", {"dim": 1, "sizes": [0, 3]}, {"input": [2, 3]},
                lambda input: torch.split(input, [0, 3], 1), "a part of size 0")
    shape_fixed("edge_slice_empty", "slice", {"dim": 0, "start": 2, "end": 2}, {"input": [3, 2]},
                lambda input: torch_slice(input, 0, 2, 2), "start == end")
    shape_fixed("edge_flatten_scalar", "flatten", {"start_dim": 0, "end_dim": -1}, {"input": []},
                lambda input: torch.flatten(input, 0, -1), "a scalar becomes [1]")
    return cases


# ---- the plan: which cases, how many ------------------------------------------------------------

def plan():
    """[(name, builder(rng, gen, seed))]: random families (a few hundred cases), then edge cases."""
    families = []
    for rank, count in ((1, 45), (2, 55), (3, 30)):
        families.append((f"conv{rank}d", count, lambda r, g, s, n, rank=rank: conv_case(n, rank, r, g)))
        families.append((f"conv{rank}d_invalid", 4, lambda r, g, s, n, rank=rank: conv_case(n, rank, r, g, True)))
    for rank, count in ((1, 30), (2, 35), (3, 20)):
        families.append((f"conv_transpose{rank}d", count,
                         lambda r, g, s, n, rank=rank: conv_transpose_case(n, rank, r, g)))
        families.append((f"conv_transpose{rank}d_invalid", 3,
                         lambda r, g, s, n, rank=rank: conv_transpose_case(n, rank, r, g, True)))
    for rank, count in ((1, 30), (2, 35), (3, 20)):
        families.append((f"max_pool{rank}d", count, lambda r, g, s, n, rank=rank: max_pool_case(n, rank, r, g)))
        families.append((f"avg_pool{rank}d", count, lambda r, g, s, n, rank=rank: avg_pool_case(n, rank, r, g)))
        families.append((f"adaptive_avg_pool{rank}d", 12,
                         lambda r, g, s, n, rank=rank: adaptive_avg_pool_case(n, rank, r, g)))
    for family, count, build in (("batch_norm", 60, batch_norm_case), ("flatten", 15, flatten_case),
                                 ("concat", 20, concat_case), ("slice", 25, slice_case), ("split", 20, split_case),
                                 ("upsample_nearest", 30, upsample_case)):
        families.append((family, count, lambda r, g, s, n, build=build: build(n, r, g)))
    for family, count, build in (("unary", 120, unary_case), ("binary", 40, binary_case),
                                 ("reduction", 60, reduction_case), ("dropout", 20, dropout_case),
                                 ("softmax", 40, softmax_case), ("cross_entropy", 50, cross_entropy_case),
                                 ("mse_loss", 15, mse_case), ("bce_with_logits", 30, bce_case)):
        families.append((family, count, lambda r, g, s, n, build=build: build(n, r, g)))
    families.append(("optim", 60, lambda r, g, s, n: optim_case(n, r, g)))
    families.append(("optim_invalid", 8, lambda r, g, s, n: optim_case(n, r, g, True)))
    families.append(("train", 12, lambda r, g, s, n: train_case(n, r, g, s)))
    for kind, count in (("conv", 30), ("pool", 20), ("adaptive", 8), ("flatten", 10), ("sequential", 15),
                        ("batchnorm", 30), ("activation", 15), ("upsample", 8)):
        families.append((f"module_{kind}", count, lambda r, g, s, n, kind=kind: module_case(n, r, g, s, kind)))
    entries = []
    for family, count, build in families:
        for i in range(count):
            name = f"{family}_{i:03d}"
            entries.append((name, lambda rng, gen, seed, build=build, name=name: build(rng, gen, seed, name)))
    entries += edge_cases()
    return entries


# ---- comparison --------------------------------------------------------------------------------

def relative_error(actual, expected, scale=0.0):
    """||a - b|| / max(||b||, scale) over the finite elements; non-finite ones (a max pool's -inf)
    must match exactly."""
    if actual.shape != expected.shape:
        return math.inf, f"shape {list(actual.shape)} != {list(expected.shape)}"
    finite = torch.isfinite(expected)
    nan = torch.isnan(expected)
    infinite = ~finite & ~nan
    if (not torch.equal(torch.isfinite(actual), finite) or not torch.equal(torch.isnan(actual), nan)
            or not torch.equal(actual[infinite], expected[infinite])):
        return math.inf, "non-finite values differ"
    a, b = actual[finite], expected[finite]
    diff = torch.linalg.norm(a - b).item()
    norm = max(torch.linalg.norm(b).item(), scale)
    if norm == 0.0:
        return (0.0 if diff == 0.0 else math.inf), ""
    return diff / norm, ""


# Where PyTorch is the odd one out: (name, does it apply to a case convkit ran and torch rejected).
# Each is described, with a reproducer, in docs/torch-differential.md.
KNOWN_DIFFERENCES = [
    # avg_pool3d (not 1d/2d) checks the unpadded input against the kernel: (T: 3 H: 1 W: 2) with
    # kernel (2, 2, 1) and padding 1 is refused, though avg_pool2d takes the same H x W.
    ("torch avg_pool3d refuses an input smaller than the kernel",
     lambda case: "smaller than kernel size" in (case.torch_error or "")),  # only pool3d_shape_check says so
]


def known_difference(case):
    return next((name for name, applies in KNOWN_DIFFERENCES if applies(case)), None)


def compare(case, result, status):
    """A list of (what, detail) failures of one case; what == 'known' for a known difference."""
    state = status.get("status")
    if state == "harness_error":
        return [("harness", status.get("error_message", ""))]
    if case.torch_error is not None:
        if state == "error":
            return []
        known = known_difference(case)
        if known:
            return [("known", known)]
        return [("accepts", f"torch raises ({case.torch_error}) but convkit returns a result")]
    if state != "ok":
        return [("throws", f"{status.get('error_type')}: {status.get('error_message')}")]
    if case.check is not None:
        return case.check(result)
    failures = []
    if "backward_error" in status:
        failures.append(("backward throws", status["backward_error"]))
    for key, expected in case.expected.items():
        if key not in result and "backward_error" in status:
            continue
        if key not in result:
            failures.append((key, "missing from convkit's result"))
            continue
        error, why = relative_error(result[key].to(torch.float64), expected.to(torch.float64),
                                    case.scale.get(key, 0.0))
        if not error <= TOLERANCE:
            failures.append((key, f"relative error {error:.3g}" + (f" ({why})" if why else "")))
    return failures


def main():
    started = time.time()
    print(f"seed {SEED} (replay: CONVKIT_TORCH_DIFF_SEED={SEED})")
    print(f"torch {torch.__version__}, safetensors {safetensors.__version__}")
    entries = [(n, b) for n, b in plan() if not ONLY or any(s in n for s in ONLY)]
    keep = os.environ.get("CONVKIT_TORCH_DIFF_KEEP")
    workdir = keep or tempfile.mkdtemp(prefix="convkit-torch-diff-")
    os.makedirs(workdir, exist_ok=True)
    cases = []
    try:
        for name, build in entries:
            rng, gen, seed = case_rng(name)
            case = build(rng, gen, seed)
            cases.append(case)
            safetensors.torch.save_file(case.tensors, os.path.join(workdir, f"{name}.case.safetensors"),
                                        metadata=case.metadata())
        made = time.time()
        run = subprocess.run([TOOL, workdir], capture_output=True, text=True)
        print(run.stdout.strip())
        failures = []
        known = {}
        if run.returncode != 0:
            failures.append(("(tool)", "", f"exit {run.returncode}: {run.stderr.strip()[-2000:]}", ""))
        for case in cases:
            for reason in case.known:
                known[reason] = known.get(reason, 0) + 1
            path = os.path.join(workdir, f"{case.name}.result.safetensors")
            if not os.path.exists(path):
                failures.append((case.name, "result", "no result file (did the tool crash here?)", case.describe()))
                continue
            with safetensors.safe_open(path, "pt") as f:
                status = f.metadata() or {}
                result = {k: f.get_tensor(k) for k in f.keys()}
            for what, detail in compare(case, result, status):
                if what == "known":
                    known[detail] = known.get(detail, 0) + 1
                else:
                    failures.append((case.name, what, detail, case.describe()))
    finally:
        if not keep:
            shutil.rmtree(workdir, ignore_errors=True)

    errors_expected = sum(1 for c in cases if c.torch_error is not None)
    compared = sum(len(c.expected) for c in cases)
    print(f"{len(cases)} cases ({errors_expected} that torch rejects), {compared} tensors compared, "
          f"tolerance {TOLERANCE:g}; cases written in {made - started:.1f} s, total {time.time() - started:.1f} s")
    for name, count in sorted(known.items()):
        print(f"known difference, left out ({count} cases): {name}")
    if failures:
        print(f"\n{len(failures)} FAILURES (seed {SEED}):")
        print(f"{'case':<44} {'what':<26} detail")
        for name, what, detail, params in failures:
            print(f"{name:<44} {what:<26} {detail}")
            if params:
                print(f"{'':<44}   {params}")
        print(f"\nreplay: CONVKIT_TORCH_DIFF_SEED={SEED} CONVKIT_TORCH_DIFF_ONLY=<case name>")
        return 1
    print("all cases agree with torch")
    return 0


if __name__ == "__main__":
    sys.exit(main())
