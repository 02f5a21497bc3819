"""convkit's safetensors files and Python's, both ways (run by run-python-tests).

1. convkit writes (safetensors_interop_tool write); Python reads the file with
   safetensors.numpy and safetensors.torch and checks every name, dtype, shape, value (bit for
   bit) and the metadata; the file also has the header and byte buffer that safetensors itself
   writes for the same tensors.
2. The same for bfloat16 and float16 (safetensors_interop_tool write-half; read with
   safetensors.torch only, as numpy has no bfloat16): values rounded from float64 as PyTorch's
   .to(dtype) rounds them, bit for bit, and the special bit patterns.
3. Python writes with safetensors.torch.save_file (float32, float64, int64, bfloat16, float16,
   0-dim and empty tensors, metadata); convkit loads it (safetensors_interop_tool check), checks every value and
   lists what it found, which must be exactly what Python wrote.

The values follow the formulas in tests/safetensors_interop_tool.cpp.
"""
import json
import os
import struct
import subprocess
import sys
import tempfile

import numpy as np
import safetensors
import safetensors.numpy
import safetensors.torch
import torch

TOOL = sys.argv[1]

NUMPY_DTYPES = {"float32": np.float32, "float64": np.float64, "int64": np.int64}
TORCH_DTYPES = {"float32": torch.float32, "float64": torch.float64, "int64": torch.int64,
                "bfloat16": torch.bfloat16, "float16": torch.float16}
HALF_DTYPES = ("bfloat16", "float16")


def salt(name):
    return sum(name.encode()) % 97


def expected_value(name, dtype, i):
    j = i + salt(name)
    if dtype == "float32":
        return (j - 100) * 0.125
    if dtype in ("float64",) + HALF_DTYPES:
        return (j - 100) / 3.0  # the 16-bit types: rounded from this float64 by torch
    return (j - 100) * 1000000007000


def expected_torch(name, dtype, shape):
    """The expected tensor; 16-bit values rounded from float64 by PyTorch."""
    if dtype not in HALF_DTYPES:
        return torch.from_numpy(expected_array(name, dtype, shape))
    count = int(np.prod(shape, dtype=np.int64))
    values = torch.tensor([expected_value(name, dtype, i) for i in range(count)], dtype=torch.float64)
    return values.to(TORCH_DTYPES[dtype]).reshape(shape)


def expected_array(name, dtype, shape):
    count = int(np.prod(shape, dtype=np.int64))
    values = [expected_value(name, dtype, i) for i in range(count)]
    return np.array(values, dtype=NUMPY_DTYPES[dtype]).reshape(shape)


# What the tool writes: name -> (dtype, shape).
CONVKIT_TENSORS = {
    "f32_rank0": ("float32", ()),
    "f32_rank1": ("float32", (7,)),
    "f32_rank2": ("float32", (3, 4)),
    "f32_empty": ("float32", (0, 3)),
    "f64_rank0": ("float64", ()),
    "f64_rank3": ("float64", (2, 3, 4)),
    "f64_rank4": ("float64", (2, 1, 3, 2)),
    "i64_rank0": ("int64", ()),
    "i64_rank1": ("int64", (5,)),
    "i64_rank5": ("int64", (1, 2, 3, 1, 2)),
}
SPECIAL_BITS = {
    "f32_special": (np.uint32, [0x00000000, 0x80000000, 0x7F800000, 0xFF800000,
                                0x7FC00000, 0x7FC12345, 0x00000001, 0x7F7FFFFF]),
    "f64_special": (np.uint64, [0x0000000000000000, 0x8000000000000000,
                                0x7FF0000000000000, 0xFFF0000000000000,
                                0x7FF8000000000000, 0x7FF8000000012345,
                                0x0000000000000001, 0x7FEFFFFFFFFFFFFF]),
}
CONVKIT_METADATA = {"format": "pt", "producer": "convkit"}
# What `write-half` writes.
CONVKIT_HALF_TENSORS = {
    "bf16_rank0": ("bfloat16", ()),
    "bf16_rank2": ("bfloat16", (3, 5)),
    "bf16_empty": ("bfloat16", (0, 2)),
    "f16_rank1": ("float16", (9,)),
    "f16_rank3": ("float16", (2, 3, 4)),
    "f32_rank1": ("float32", (7,)),
}
HALF_SPECIAL_BITS = {
    "bf16_special": (torch.bfloat16, [0x0000, 0x8000, 0x7F80, 0xFF80, 0x7FC0, 0x7FC1, 0x0001, 0x7F7F]),
    "f16_special": (torch.float16, [0x0000, 0x8000, 0x7C00, 0xFC00, 0x7E00, 0x7E01, 0x0001, 0x7BFF]),
}

failures = []


def check(condition, what):
    if not condition:
        failures.append(what)
        print("FAIL:", what)


def run_tool(*args):
    result = subprocess.run([TOOL, *args], capture_output=True, encoding="utf-8")
    if result.returncode != 0:
        print(result.stdout, result.stderr, sep="\n")
        raise SystemExit(f"safetensors_interop_tool {' '.join(args)} failed with exit code {result.returncode}")
    return result.stdout


def split_file(data):
    (header_size,) = struct.unpack("<Q", data[:8])
    return header_size, json.loads(data[8:8 + header_size]), data[8 + header_size:]


def check_convkit_file(path):
    """Part 1: a file convkit wrote, read by safetensors (numpy and torch)."""
    as_numpy = safetensors.numpy.load_file(path)
    as_torch = safetensors.torch.load_file(path)
    names = set(CONVKIT_TENSORS) | set(SPECIAL_BITS)
    check(set(as_numpy) == names, f"numpy sees tensors {sorted(as_numpy)}")
    check(set(as_torch) == names, f"torch sees tensors {sorted(as_torch)}")

    for name, (dtype, shape) in CONVKIT_TENSORS.items():
        expected = expected_array(name, dtype, shape)
        array = as_numpy[name]
        check(array.dtype == NUMPY_DTYPES[dtype], f"{name}: numpy dtype {array.dtype}, expected {dtype}")
        check(array.shape == shape, f"{name}: numpy shape {array.shape}, expected {shape}")
        check(array.tobytes() == expected.tobytes(), f"{name}: numpy values {array} differ from {expected}")
        tensor = as_torch[name]
        check(tensor.dtype == TORCH_DTYPES[dtype], f"{name}: torch dtype {tensor.dtype}, expected {dtype}")
        check(tuple(tensor.shape) == shape, f"{name}: torch shape {tuple(tensor.shape)}, expected {shape}")
        check(torch.equal(tensor, torch.from_numpy(expected)), f"{name}: torch values {tensor} differ")

    for name, (bits_type, bits) in SPECIAL_BITS.items():
        expected = np.array(bits, dtype=bits_type)
        check(np.array_equal(as_numpy[name].view(bits_type), expected), f"{name}: numpy bit patterns differ")
        from_torch = as_torch[name].numpy().view(bits_type)
        check(np.array_equal(from_torch, expected), f"{name}: torch bit patterns differ")

    with safetensors.safe_open(path, framework="pt") as f:
        check(f.metadata() == CONVKIT_METADATA, f"metadata {f.metadata()}, expected {CONVKIT_METADATA}")

    # The same tensors serialized by safetensors itself: the same header (as JSON, since the
    # order of its metadata map is not fixed) and the same byte buffer, tensor for tensor.
    with open(path, "rb") as f:
        ours = f.read()
    theirs = safetensors.torch.save(as_torch, metadata=CONVKIT_METADATA)
    our_size, our_header, our_buffer = split_file(ours)
    their_size, their_header, their_buffer = split_file(theirs)
    check(our_size % 8 == 0, f"header size {our_size} is not a multiple of 8")
    check(our_size == their_size, f"header size {our_size}, safetensors writes {their_size}")
    check(our_header == their_header, f"header\n  {our_header}\nsafetensors writes\n  {their_header}")
    check(our_buffer == their_buffer, "the byte buffer differs from the one safetensors writes")


def same_bits(a, b):
    def raw(t):  # bit patterns: NaN payloads and signed zeros compare too
        flat = t.contiguous().reshape(-1)
        return flat.view(torch.int16).tolist() if t.element_size() == 2 else flat.tolist()
    return a.dtype == b.dtype and a.shape == b.shape and raw(a) == raw(b)


def check_convkit_half_file(path):
    """Part 2: bfloat16 and float16 tensors convkit wrote, read by safetensors.torch."""
    as_torch = safetensors.torch.load_file(path)
    names = set(CONVKIT_HALF_TENSORS) | set(HALF_SPECIAL_BITS)
    check(set(as_torch) == names, f"torch sees tensors {sorted(as_torch)}")
    for name, (dtype, shape) in CONVKIT_HALF_TENSORS.items():
        tensor = as_torch[name]
        check(tensor.dtype == TORCH_DTYPES[dtype], f"{name}: torch dtype {tensor.dtype}, expected {dtype}")
        check(tuple(tensor.shape) == shape, f"{name}: torch shape {tuple(tensor.shape)}, expected {shape}")
        expected = expected_torch(name, dtype, shape)
        check(same_bits(tensor, expected), f"{name}: torch values {tensor} differ from {expected}")
    for name, (dtype, bits) in HALF_SPECIAL_BITS.items():
        got = as_torch[name].view(torch.int16).tolist()
        want = [b - 0x10000 if b >= 0x8000 else b for b in bits]
        check(got == want, f"{name}: bit patterns {got}, expected {want}")
    with open(path, "rb") as f:
        ours = f.read()
    theirs = safetensors.torch.save(as_torch, metadata=CONVKIT_METADATA)
    our_size, our_header, our_buffer = split_file(ours)
    their_size, their_header, their_buffer = split_file(theirs)
    check(our_header == their_header, f"16-bit header\n  {our_header}\nsafetensors writes\n  {their_header}")
    check(our_buffer == their_buffer, "the 16-bit byte buffer differs from the one safetensors writes")


def python_tensors():
    """Part 3: what Python writes. Same formulas, so the tool can check every value."""
    specs = {
        "py_f32": ("float32", (2, 3, 4)),
        "py_f64": ("float64", (5,)),
        "py_i64": ("int64", (3, 2)),
        "py_scalar_f32": ("float32", ()),
        "py_scalar_f64": ("float64", ()),
        "py_scalar_i64": ("int64", ()),
        "py_empty": ("float32", (0, 4)),
        "py_bf16": ("bfloat16", (2, 3, 4)),
        "py_f16": ("float16", (3, 5)),
        "py_scalar_bf16": ("bfloat16", ()),
        "py_empty_f16": ("float16", (0,)),
    }
    tensors = {name: expected_torch(name, dtype, shape) for name, (dtype, shape) in specs.items()}
    # A 0-dim tensor made the torch way, not through numpy.
    tensors["py_scalar_f64"] = torch.tensor(expected_value("py_scalar_f64", "float64", 0), dtype=torch.float64)
    assert tensors["py_scalar_f64"].dim() == 0
    return specs, tensors


def check_python_file(directory):
    specs, tensors = python_tensors()
    metadata = {"source": "python", "torch": torch.__version__, "note": "ünïcode ∑"}
    path = os.path.join(directory, "from_python.safetensors")
    safetensors.torch.save_file(tensors, path, metadata=metadata)
    listing = run_tool("check", path).splitlines()
    expected = [f"tensor {name} {dtype} [{', '.join(str(d) for d in shape)}]" for name, (dtype, shape) in
                sorted(specs.items())]
    expected += [f"metadata {key}={value}" for key, value in sorted(metadata.items())]
    check(listing == expected, "convkit read\n  " + "\n  ".join(listing) + "\nexpected\n  " + "\n  ".join(expected))


def main():
    print(f"safetensors {safetensors.__version__}, torch {torch.__version__}, numpy {np.__version__}")
    with tempfile.TemporaryDirectory() as directory:
        path = os.path.join(directory, "from_convkit.safetensors")
        run_tool("write", path)
        check_convkit_file(path)
        half_path = os.path.join(directory, "from_convkit_half.safetensors")
        run_tool("write-half", half_path)
        check_convkit_half_file(half_path)
        check_python_file(directory)
    if failures:
        raise SystemExit(f"{len(failures)} checks failed")
    print("convkit and safetensors read each other's files")


if __name__ == "__main__":
    main()
