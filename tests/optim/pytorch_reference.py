#!/usr/bin/env python3
"""PyTorch's side of the optimizer tests (tests/test_optim.cpp, tests/optim_scenario.h).

A scenario is a line of key=value words, e.g.
    optimizer=sgd lr=0.1 momentum=0.9 nesterov=1 dtype=float64 steps=6 skip=1 scheduler=onecycle
It runs torch.optim on a fixed problem that tests/optim_scenario.cpp defines the same way:
three parameters of shapes [3], [2, 2], [5]; element j (0..11, in order) starts at
((j % 7) - 3) / 4 + (j % 3) / 8 + 1 / 16, and its gradient is a*p + b + 0.25*p*p*p with
a = 1 + (j % 4) / 2 and b = ((j % 5) - 2) / 8 (all dyadic, so exact in both languages).
With skip=1, parameter 1 has no gradient on steps s (0-based) with s % 3 == 1. A scheduler, if
any, steps after every optimizer step.

Modes:
  --constants            print the C++ table pasted into tests/test_optim.cpp (float64 runs)
  --schedules            print the learning-rate sequences pasted into tests/test_optim.cpp
  --compare DRIVER       run every scenario through DRIVER (the optim_trajectory executable,
                         which prints the final parameters) and compare with PyTorch live;
                         exit 0 if all agree, 1 if not, 77 (ctest's skip) without torch.
Run with Debian's /usr/bin/python3 (python3-torch 1.13).
"""
import math
import subprocess
import sys

try:
    import torch
except ImportError as error:  # the test is skipped, saying why
    print(f"SKIP: PyTorch is not importable by {sys.executable}: {error}")
    sys.exit(77)

SHAPES = [(3,), (2, 2), (5,)]

# The pasted constants (float64); the live comparison runs these and the float32 ones below.
CONSTANT_SCENARIOS = [
    "optimizer=sgd lr=0.1",
    "optimizer=sgd lr=0.05 momentum=0.9 dampening=0.25 weight_decay=0.1",
    "optimizer=sgd lr=0.05 momentum=0.8 nesterov=1 weight_decay=0.05 skip=1",
    "optimizer=sgd lr=0.05 momentum=0.5 maximize=1",
    "optimizer=adam lr=0.05",
    # beta2 = 0.5 lets v fall as the gradients shrink, so amsgrad's maximum matters.
    "optimizer=adam lr=0.05 beta1=0.8 beta2=0.5 eps=1e-6 weight_decay=0.1 amsgrad=1 skip=1",
    "optimizer=adam lr=0.02 maximize=1",
    "optimizer=adamw lr=0.05 weight_decay=0.2",
    "optimizer=adamw lr=0.05 beta2=0.5 amsgrad=1 skip=1",
    "optimizer=adamw lr=0.02 weight_decay=0.1 maximize=1",
    "optimizer=sgd lr=0.1 momentum=0.9 scheduler=step",
    "optimizer=adam lr=0.1 scheduler=cosine",
    "optimizer=sgd lr=0.1 momentum=0.9 scheduler=onecycle",
    "optimizer=adamw lr=0.1 scheduler=onecycle",
    "optimizer=sgd lr=0.1 scheduler=onecycle_linear",
]
LIVE_ONLY_SCENARIOS = [s + " dtype=float32" for s in CONSTANT_SCENARIOS] + [
    "optimizer=adam lr=0.01 weight_decay=0.5 steps=20 skip=1",
    "optimizer=sgd lr=0.02 momentum=0.95 dampening=0.5 steps=20 scheduler=cosine",
    "optimizer=adamw lr=0.02 beta1=0 beta2=0 eps=0.1 steps=10",
]


def parse(spec):
    s = dict(word.split("=", 1) for word in spec.split())
    s.setdefault("dtype", "float64")
    s.setdefault("steps", "6")
    s.setdefault("skip", "0")
    s.setdefault("scheduler", "none")
    return s


def run(spec):
    s = parse(spec)
    dtype = torch.float64 if s["dtype"] == "float64" else torch.float32
    steps = int(s["steps"])
    params, coeff_a, coeff_b = [], [], []
    j = 0
    for shape in SHAPES:
        n = math.prod(shape)
        idx = list(range(j, j + n))
        j += n
        params.append(torch.tensor([((k % 7) - 3) / 4 + (k % 3) / 8 + 1 / 16 for k in idx], dtype=dtype)
                      .reshape(shape).requires_grad_())
        coeff_a.append(torch.tensor([1 + (k % 4) / 2 for k in idx], dtype=dtype).reshape(shape))
        coeff_b.append(torch.tensor([((k % 5) - 2) / 8 for k in idx], dtype=dtype).reshape(shape))

    def flag(key):
        return s.get(key, "0") == "1"

    kind = s["optimizer"]
    if kind == "sgd":
        opt = torch.optim.SGD(params, lr=float(s["lr"]), momentum=float(s.get("momentum", 0)),
                              dampening=float(s.get("dampening", 0)),
                              weight_decay=float(s.get("weight_decay", 0)), nesterov=flag("nesterov"),
                              maximize=flag("maximize"), foreach=False)
    else:
        cls = torch.optim.Adam if kind == "adam" else torch.optim.AdamW
        default_wd = 0.0 if kind == "adam" else 1e-2
        opt = cls(params, lr=float(s.get("lr", 1e-3)),
                  betas=(float(s.get("beta1", 0.9)), float(s.get("beta2", 0.999))),
                  eps=float(s.get("eps", 1e-8)), weight_decay=float(s.get("weight_decay", default_wd)),
                  amsgrad=flag("amsgrad"), maximize=flag("maximize"), foreach=False)

    sched = None
    if s["scheduler"] == "step":
        sched = torch.optim.lr_scheduler.StepLR(opt, step_size=2, gamma=0.5)
    elif s["scheduler"] == "cosine":
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=4, eta_min=0.001)
    elif s["scheduler"].startswith("onecycle"):
        anneal = "linear" if s["scheduler"] == "onecycle_linear" else "cos"
        # total_steps = steps + 1: the schedule's last epoch is never stepped past.
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=0.5, total_steps=steps + 1,
                                                    anneal_strategy=anneal)

    for step in range(steps):
        for i, p in enumerate(params):
            if flag("skip") and i == 1 and step % 3 == 1:
                p.grad = None
            else:
                with torch.no_grad():
                    p.grad = coeff_a[i] * p + coeff_b[i] + 0.25 * p * p * p
        opt.step()
        if sched is not None:
            sched.step()
    return [v for p in params for v in p.detach().reshape(-1).tolist()]


def print_constants():
    print(f"    // Generated by tests/optim/pytorch_reference.py --constants (PyTorch {torch.__version__}).")
    for spec in CONSTANT_SCENARIOS:
        values = ", ".join(repr(v) for v in run(spec))
        print(f'    {{"{spec}",\n     {{{values}}}}},')


def schedule(kind):
    """Learning rates (and cycled momentum) of the scheduler tests, epochs 0, 1, ..."""
    p = torch.zeros(1, requires_grad=True)
    if kind == "step":
        opt = torch.optim.SGD([p], lr=0.5)
        sched, epochs = torch.optim.lr_scheduler.StepLR(opt, step_size=3, gamma=0.1), 11
    elif kind == "cosine":
        opt = torch.optim.SGD([p], lr=0.5)
        sched, epochs = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=5, eta_min=0.01), 13
    elif kind == "onecycle":
        opt = torch.optim.SGD([p], lr=0.5, momentum=0.9)
        sched, epochs = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=1.0, total_steps=10), 10
    else:  # three-phase, linear, on Adam's beta1
        opt = torch.optim.Adam([p])
        sched, epochs = torch.optim.lr_scheduler.OneCycleLR(
            opt, max_lr=0.3, total_steps=12, pct_start=0.25, anneal_strategy="linear", three_phase=True,
            div_factor=10, final_div_factor=100, base_momentum=0.8, max_momentum=0.9), 12
    lrs, momenta = [], []
    for epoch in range(epochs):
        group = opt.param_groups[0]
        lrs.append(group["lr"])
        momenta.append(group["betas"][0] if "betas" in group else group["momentum"])
        if epoch + 1 < epochs:
            opt.step()
            sched.step()
    return lrs, momenta


def print_schedules():
    print(f"    // Generated by tests/optim/pytorch_reference.py --schedules (PyTorch {torch.__version__}).")
    for kind in ["step", "cosine", "onecycle", "onecycle_three_phase_linear"]:
        lrs, momenta = schedule(kind)
        print(f'    {{"{kind}",\n     {{{", ".join(repr(v) for v in lrs)}}},\n'
              f'     {{{", ".join(repr(v) for v in momenta)}}}}},')


def compare(driver):
    failures = 0
    for spec in CONSTANT_SCENARIOS + LIVE_ONLY_SCENARIOS:
        expected = run(spec)
        out = subprocess.run([driver] + spec.split(), check=True, capture_output=True, text=True).stdout
        got = [float(v) for v in out.split()]
        # float32 on both sides: they differ where PyTorch fuses a multiply-add.
        tolerance = 1e-12 if parse(spec)["dtype"] == "float64" else 1e-6
        norm = math.sqrt(sum(e * e for e in expected))
        error = math.sqrt(sum((g - e) ** 2 for g, e in zip(got, expected))) / norm
        ok = len(got) == len(expected) and error < tolerance
        failures += not ok
        print(f"{'ok  ' if ok else 'FAIL'} relative error {error:.3e} (< {tolerance:g})  {spec}")
    print(f"{failures} of {len(CONSTANT_SCENARIOS) + len(LIVE_ONLY_SCENARIOS)} scenarios differ from PyTorch "
          f"{torch.__version__}")
    return 1 if failures else 0


if __name__ == "__main__":
    if sys.argv[1:] == ["--constants"]:
        print_constants()
    elif sys.argv[1:] == ["--schedules"]:
        print_schedules()
    elif len(sys.argv) == 3 and sys.argv[1] == "--compare":
        sys.exit(compare(sys.argv[2]))
    else:
        print(__doc__)
        sys.exit(2)
