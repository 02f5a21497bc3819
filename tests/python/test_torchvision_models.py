"""convkit's model zoo against torchvision (ctest torch.models, run by run-python-tests).

Cases go through torch_diff_tool (tests/torch_diff/) in the format of test_torch_differential.py:
  layout   every state-dict key, shape and dtype of torchvision's resnet18/34/50, vgg11_bn and
           vgg16_bn equals convkit's (no values: the VGGs hold 130M+ parameters);
  eval     the same weights (BatchNorm statistics moved away from 0 and 1) and input give the same
           logits, float64 within 1e-10 and float32 within 1e-5 relative;
  train    in training mode also the input's and every parameter's gradient and the updated
           running statistics, float64 within 1e-10;
  files    a file from scripts/export-torchvision loaded by nn::load gives torchvision's logits,
           and a model convkit initialised and wrote with nn::save loads into torchvision
           (strict) and gives convkit's logits.
The VGG-style and U-Net models have no torchvision constructor of that size: their PyTorch twins
are built here from torchvision's make_layers and VGG's classifier layout, and from nn.ModuleList
in models/unet.h's layout.

    test_torchvision_models.py <torch_diff_tool> <scripts/export-torchvision>
"""
import os
import shutil
import subprocess
import sys
import tempfile
import time

import safetensors
import safetensors.torch
import torch
import torch.nn as nn

import test_torch_differential as diff  # reads argv[1], the tool

try:
    import torchvision
except ImportError:
    print("SKIPPED: torchvision is not installed (Debian: python3-torchvision)")
    sys.exit(77)

EXPORT = sys.argv[2]
TOLERANCE = {torch.float64: 1e-10, torch.float32: 1e-5}


# ---- PyTorch twins -----------------------------------------------------------------------------

def double_conv(cin, cout):
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(),
                         nn.Conv2d(cout, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU())


class UNet(nn.Module):
    """include/convkit/models/unet.h, module for module."""

    def __init__(self, in_channels, num_classes, width, depth, decoder):
        super().__init__()
        self.encoders = nn.ModuleList()
        channels = in_channels
        for level in range(depth):
            self.encoders.append(double_conv(channels, width << level))
            channels = width << level
        self.pool = nn.MaxPool2d(2)
        self.bottleneck = double_conv(channels, 2 * channels)
        channels *= 2
        self.ups, self.decoders = nn.ModuleList(), nn.ModuleList()
        for level in reversed(range(depth)):
            out = width << level
            if decoder == "transposed":
                self.ups.append(nn.ConvTranspose2d(channels, out, 2, stride=2))
            else:
                self.ups.append(nn.Sequential(nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(channels, out, 1)))
            self.decoders.append(double_conv(2 * out, out))
            channels = out
        self.head = nn.Conv2d(channels, num_classes, 1)

    def forward(self, x):
        skips = []
        for encoder in self.encoders:
            x = encoder(x)
            skips.append(x)
            x = self.pool(x)
        x = self.bottleneck(x)
        for up, decoder, skip in zip(self.ups, self.decoders, reversed(skips)):
            x = decoder(torch.cat([up(x), skip], 1))
        return self.head(x)


class VggStyle(nn.Module):
    """torchvision's VGG (features from its make_layers, avgpool, classifier.0/3/6) with a smaller
    classifier and pooling: torchvision's own VGG class always builds the 4096-wide one."""

    def __init__(self, layers, num_classes, hidden, pool_size, dropout):
        super().__init__()
        self.features = torchvision.models.vgg.make_layers(["M" if w == 0 else w for w in layers], batch_norm=True)
        self.avgpool = nn.AdaptiveAvgPool2d((pool_size, pool_size))
        last = [w for w in layers if w][-1]
        self.classifier = nn.Sequential(nn.Linear(last * pool_size * pool_size, hidden), nn.ReLU(True),
                                        nn.Dropout(dropout), nn.Linear(hidden, hidden), nn.ReLU(True),
                                        nn.Dropout(dropout), nn.Linear(hidden, num_classes))

    def forward(self, x):
        return self.classifier(torch.flatten(self.avgpool(self.features(x)), 1))


def torch_model(spec):
    kind = spec["type"]
    if kind in ("resnet18", "resnet34", "resnet50", "vgg11_bn", "vgg16_bn"):
        return getattr(torchvision.models, kind)(num_classes=spec.get("num_classes", 1000))
    if kind == "VGG":
        return VggStyle(spec["layers"], spec["num_classes"], spec["hidden"], spec["pool_size"], spec.get("dropout", 0.5))
    if kind == "UNet":
        return UNet(spec["in_channels"], spec["num_classes"], spec["width"], spec["depth"], spec["decoder"])
    raise ValueError(f"unknown model {kind}")


# ---- cases -------------------------------------------------------------------------------------

class ModelCase(diff.Case):
    """A case whose model spec goes under "module." and whose other keys stay at the top."""

    def __init__(self, name, op, spec, top=None, tolerance=1e-10):
        super().__init__(name, op, spec)
        self.top = top or {}
        self.tolerance = tolerance

    def metadata(self):
        meta = {"op": self.op}
        meta.update(diff.params_metadata(self.params, "module."))
        meta.update(diff.params_metadata(self.top))
        if self.requires_grad:
            meta["requires_grad"] = ",".join(self.requires_grad)
        return meta


class float32_default:
    """torchvision's models built as torchvision builds them (float32 draws): test_torch_differential
    makes float64 the default dtype, and the random initialisation would then draw other values."""

    def __enter__(self):
        self.previous = torch.get_default_dtype()
        torch.set_default_dtype(torch.float32)

    def __exit__(self, *exc):
        torch.set_default_dtype(self.previous)


def randomize_buffers(model, gen):
    with torch.no_grad():
        for key, buffer in model.named_buffers():
            if key.endswith("running_mean"):
                buffer.copy_(0.1 * diff.randn(gen, buffer.shape))
            elif key.endswith("running_var"):
                buffer.copy_(torch.rand(buffer.shape, generator=gen, dtype=torch.float64) + 0.5)
            elif key.endswith("num_batches_tracked"):
                buffer.fill_(3)


def forward_case(name, spec, input_shape, dtype, training):
    _, gen, seed = diff.case_rng(name)
    dtype_name = "float64" if dtype == torch.float64 else "float32"
    case = ModelCase(name, "module", dict(spec, dtype=dtype_name, training=training), tolerance=TOLERANCE[dtype])
    torch.manual_seed(seed)
    model = torch_model(spec).to(dtype).train(training)
    randomize_buffers(model, gen)
    for key, value in model.state_dict().items():
        case.tensors["state." + key] = value.detach().clone().contiguous()
    x = diff.randn(gen, input_shape).to(dtype)
    case.tensors["input"] = x.clone()
    x.requires_grad_(training)
    output = model(x)
    case.expected["output"] = output.detach()
    if training:
        case.requires_grad = ["input"]
        grad_output = diff.randn(gen, output.shape).to(dtype)
        case.tensors["grad_output"] = grad_output
        output.backward(grad_output)
        case.expected["grad.input"] = x.grad
        parameters = dict(model.named_parameters())
        for key, parameter in parameters.items():
            case.expected["grad.state." + key] = parameter.grad
            # A bias followed by BatchNorm in training mode gets a gradient of exactly zero (the
            # batch mean removes it): both sides then hold rounding noise, measured against the
            # layer's weight gradient instead of its own norm.
            weight = key[: -len("bias")] + "weight"
            if key.endswith(".bias") and weight in parameters:
                case.scale["grad.state." + key] = torch.linalg.norm(parameters[weight].grad).item()
        for key, buffer in model.named_buffers():
            case.expected["after.state." + key] = buffer.detach().clone()
    return case


def layout_case(name, kind):
    case = ModelCase(name, "module_layout", {"type": kind})
    with float32_default(), torch.no_grad():  # torchvision's own dtypes, and half the memory
        state = torch_model({"type": kind}).state_dict()
    case.layout = {key: (list(value.shape), value.dtype) for key, value in state.items()}
    return case


def check_layout(case, result):
    ours = {key[len("layout."):]: (result[key].tolist(), result["dtype." + key[len("layout."):]].dtype)
            for key in result if key.startswith("layout.")}
    failures = []
    for key in sorted(set(case.layout) | set(ours)):
        if key not in ours:
            failures.append((key, "in torchvision's state dict, not in convkit's"))
        elif key not in case.layout:
            failures.append((key, "in convkit's state dict, not in torchvision's"))
        elif ours[key] != case.layout[key]:
            failures.append((key, f"convkit {ours[key]} vs torchvision {case.layout[key]}"))
    return failures


def export_case(name, workdir, kind, num_classes):
    """scripts/export-torchvision writes the file; convkit's nn::load reads it."""
    _, gen, seed = diff.case_rng(name)
    path = os.path.join(workdir, f"{name}.exported.safetensors")
    subprocess.run([sys.executable, EXPORT, kind, path, "--num-classes", str(num_classes), "--seed", str(seed)],
                   check=True, capture_output=True, text=True)
    torch.manual_seed(seed)
    with float32_default():
        model = torch_model({"type": kind, "num_classes": num_classes}).eval()  # the script's weights
    case = ModelCase(name, "module_file", {"type": kind, "num_classes": num_classes}, {"load_path": path},
                     tolerance=TOLERANCE[torch.float32])
    x = diff.randn(gen, (2, 3, 64, 64)).float()
    case.tensors["input"] = x
    with torch.no_grad():
        case.expected["output"] = model(x)
    return case


def saved_case(name, workdir, kind, num_classes):
    """convkit initialises and saves with nn::save; torchvision loads it (strict) after the run."""
    _, gen, seed = diff.case_rng(name)
    path = os.path.join(workdir, f"{name}.saved.safetensors")
    case = ModelCase(name, "module_file", {"type": kind, "num_classes": num_classes},
                     {"save_path": path, "seed": seed}, tolerance=TOLERANCE[torch.float32])
    case.tensors["input"] = diff.randn(gen, (2, 3, 64, 64)).float()

    def check(result):
        with float32_default():
            model = torch_model({"type": kind, "num_classes": num_classes}).eval()
        try:
            model.load_state_dict(safetensors.torch.load_file(path), strict=True)
        except RuntimeError as error:
            return [("load into torchvision", str(error).splitlines()[0])]
        with torch.no_grad():
            expected = model(case.tensors["input"])
        error, why = diff.relative_error(result["output"].double(), expected.double())
        return [] if error <= case.tolerance else [("output", f"relative error {error:.3g} {why}")]

    case.check = check
    return case


RESNETS = [("resnet18", {"type": "resnet18", "num_classes": 10}), ("resnet34", {"type": "resnet34", "num_classes": 10}),
           ("resnet50", {"type": "resnet50", "num_classes": 10})]
SMALL = [("vgg", {"type": "VGG", "layers": [8, 0, 16, 16, 0, 32], "num_classes": 5, "hidden": 24, "pool_size": 2,
                  "dropout": 0.0}),
         ("unet_transposed", {"type": "UNet", "in_channels": 2, "num_classes": 3, "width": 4, "depth": 3,
                              "decoder": "transposed"}),
         ("unet_upsample", {"type": "UNet", "in_channels": 2, "num_classes": 3, "width": 4, "depth": 2,
                            "decoder": "upsample"})]
IMAGE = (2, 3, 64, 64)
SMALL_INPUT = {"vgg": (3, 3, 16, 16), "unet_transposed": (2, 2, 16, 16), "unet_upsample": (2, 2, 12, 8)}


def plan(workdir):
    cases = [layout_case(f"layout_{kind}", kind) for kind in ("resnet18", "resnet34", "resnet50", "vgg11_bn",
                                                               "vgg16_bn")]
    for name, spec in RESNETS:
        cases.append(forward_case(f"eval64_{name}", spec, IMAGE, torch.float64, False))
        cases.append(forward_case(f"eval32_{name}", spec, IMAGE, torch.float32, False))
    for name, spec in SMALL:
        cases.append(forward_case(f"eval64_{name}", spec, SMALL_INPUT[name], torch.float64, False))
        cases.append(forward_case(f"eval32_{name}", spec, SMALL_INPUT[name], torch.float32, False))
    # Training mode: batch statistics, gradients of everything, the running statistics' update.
    for name, spec in [RESNETS[0], RESNETS[2]]:
        cases.append(forward_case(f"train64_{name}", spec, IMAGE, torch.float64, True))
    for name, spec in SMALL:
        cases.append(forward_case(f"train64_{name}", spec, SMALL_INPUT[name], torch.float64, True))
    cases.append(export_case("exported_resnet18", workdir, "resnet18", 10))
    cases.append(saved_case("saved_resnet50", workdir, "resnet50", 7))
    return cases


def compare(case, result, status):
    if status.get("status") != "ok":
        return [("convkit", f"{status.get('status')}: {status.get('error_type', '')} {status.get('error_message', '')}")]
    if hasattr(case, "layout"):
        return check_layout(case, result)
    if case.check is not None:
        return case.check(result)
    failures = []
    for key, expected in case.expected.items():
        if key not in result:
            failures.append((key, "missing from convkit's result"))
            continue
        error, why = diff.relative_error(result[key].to(torch.float64), expected.to(torch.float64),
                                         case.scale.get(key, 0.0))
        if not error <= case.tolerance:
            failures.append((key, f"relative error {error:.3g} (tolerance {case.tolerance:g}) {why}"))
    return failures


def main():
    started = time.time()
    print(f"torch {torch.__version__}, torchvision {torchvision.__version__}, seed {diff.SEED}")
    workdir = tempfile.mkdtemp(prefix="convkit-torchvision-")
    failures = []
    try:
        cases = plan(workdir)
        for case in cases:
            safetensors.torch.save_file(case.tensors, os.path.join(workdir, f"{case.name}.case.safetensors"),
                                        metadata=case.metadata())
        run = subprocess.run([diff.TOOL, workdir], capture_output=True, text=True)
        if run.returncode != 0:
            failures.append(("(tool)", "", f"exit {run.returncode}: {run.stderr.strip()[-2000:]}"))
        compared = 0
        for case in cases:
            path = os.path.join(workdir, f"{case.name}.result.safetensors")
            if not os.path.exists(path):
                failures.append((case.name, "result", "no result file"))
                continue
            with safetensors.safe_open(path, "pt") as f:
                status = f.metadata() or {}
                result = {k: f.get_tensor(k) for k in f.keys()}
            found = compare(case, result, status)
            compared += max(len(case.expected), 1)
            failures += [(case.name, what, detail) for what, detail in found]
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    print(f"{len(cases)} cases, {compared} results compared in {time.time() - started:.1f} s")
    if failures:
        print(f"\n{len(failures)} FAILURES (seed {diff.SEED}):")
        for name, what, detail in failures[:60]:
            print(f"{name:<28} {what:<40} {detail}")
        return 1
    print("every model agrees with torchvision")
    return 0


if __name__ == "__main__":
    sys.exit(main())
