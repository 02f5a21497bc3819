"""The transfer sample from a ResNet-18 made in PyTorch (ctest samples.transfer_weights_smoke):
scripts/export-torchvision writes a torchvision ResNet-18's state dict, the sample loads it with
--weights (strict), trains a new head on its frozen features for a few steps on the CPU, and
must exit 0 with its summary line naming the file, write metrics.json with "pretrain": null
(nothing pretrained here), and refuse a file that is not a ResNet-18 with the key named.

    transfer_weights_smoke.py <scripts/export-torchvision> <transfer> <fashion-mnist dir> <work dir>
"""
import json
import os
import re
import shutil
import subprocess
import sys

export, transfer, data_dir, work = sys.argv[1:5]
if not os.path.isdir(data_dir):
    print(f"SKIPPED: Fashion-MNIST is not installed ({data_dir})")
    sys.exit(77)
try:
    import torchvision  # noqa: F401
except ImportError:
    print("SKIPPED: torchvision is not installed (Debian: python3-torchvision)")
    sys.exit(77)
shutil.rmtree(work, ignore_errors=True)
os.makedirs(work)
weights = os.path.join(work, "resnet18.safetensors")
subprocess.run([sys.executable, export, "resnet18", weights, "--seed", "1"], check=True)
out = os.path.join(work, "out")
common = [transfer, "--device", "cpu", "--labels-per-class", "4", "--finetune-epochs", "1", "--test-limit", "4",
          "--batch-size", "16", "--width", "2", "--data-dir", data_dir]
run = subprocess.run(common + ["--weights", weights, "--out", out], capture_output=True, text=True)
print(run.stdout[-1500:], run.stderr[-1500:])
assert run.returncode == 0, f"exit {run.returncode}"
summary = re.search(r"^transfer: classes 5-9 with 4 labels each: frozen pretrained features [01]\.\d+, "
                    r"from scratch [01]\.\d+ \(ResNet-18 from .*resnet18\.safetensors\)", run.stdout, re.M)
assert summary, "no summary line naming the weights"
metrics = json.load(open(os.path.join(out, "metrics.json")))
assert metrics["pretrain"] is None and metrics["config"]["features"].startswith("ResNet-18 from"), metrics["config"]

# A VGG's state dict is no ResNet-18: refused, naming what is missing.
wrong = os.path.join(work, "vgg.safetensors")
subprocess.run([sys.executable, export, "vgg11_bn", wrong, "--num-classes", "5"], check=True)
run = subprocess.run(common + ["--weights", wrong, "--out", out], capture_output=True, text=True)
print(run.stdout[-500:], run.stderr[-500:])
assert run.returncode != 0 and "fc.weight" in run.stdout + run.stderr, "a VGG file was not refused by name"
print("PASS: ResNet-18 weights from PyTorch used as frozen features; a wrong file refused")
