#pragma once
// The layer API: modules, containers, initialisation, checkpoints and summary().
#include "convkit/nn/activation.h"
#include "convkit/nn/batch_norm.h"
#include "convkit/nn/checkpoint.h"
#include "convkit/nn/conv.h"
#include "convkit/nn/dropout.h"
#include "convkit/nn/flatten.h"
#include "convkit/nn/init.h"
#include "convkit/nn/module.h"
#include "convkit/nn/pooling.h"
#include "convkit/nn/sequential.h"
#include "convkit/nn/summary.h"
#include "convkit/nn/upsample.h"
