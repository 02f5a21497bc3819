#pragma once
// Everything public in one include. Plain C++20: no CUDA header is pulled in.
#include "convkit/backend.h"
#include "convkit/conv_params.h"
#include "convkit/device.h"
#include "convkit/dtype.h"
#include "convkit/error.h"
#include "convkit/io/safetensors.h"
#include "convkit/memory.h"
#include "convkit/ops/conv.h"
#include "convkit/ops/pool.h"
#include "convkit/shape.h"
#include "convkit/tensor.h"
#include "convkit/version.h"
