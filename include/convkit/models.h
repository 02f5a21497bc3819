#pragma once
// The model zoo: standard networks with PyTorch's (torchvision's) state-dict names, so weights
// move between convkit and PyTorch unchanged (docs/models.md, scripts/export-torchvision).
#include "convkit/models/resnet.h"
#include "convkit/models/unet.h"
#include "convkit/models/vgg.h"
