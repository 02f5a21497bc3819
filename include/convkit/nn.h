#pragma once
// The layer API: modules, containers, initialisation and summary().
#include "convkit/nn/checkpoint.h"
#include "convkit/nn/conv.h"
#include "convkit/nn/flatten.h"
#include "convkit/nn/init.h"
#include "convkit/nn/module.h"
#include "convkit/nn/pooling.h"
#include "convkit/nn/sequential.h"
#include "convkit/nn/summary.h"
