#pragma once
// Dynamic loss scaling for float16 training, as torch.amp.GradScaler:
//
//   optim::GradScaler scaler;                        // scale 2^16
//   scaler.scale(loss).backward();                   // gradients of loss x scale
//   scaler.step(optimizer);                          // unscaled in float32; skipped on inf/NaN
//
// float16's smallest normal number is 6e-5 (subnormals to 6e-8): gradients of a small loss fall
// below it and become zero. Scaling the loss by S scales every gradient by S, into range; the
// optimizer then reads each gradient divided by S, in float32 (step_with_gradients_divided_by),
// so the update is the unscaled one. When a scaled gradient overflowed (inf or NaN anywhere), or
// the gradients divided by S would pass float32's range, the step is skipped and S halves, never
// below float32's smallest normal number (1.2e-38: a run of NaN steps cannot drive it to 0);
// after `growth_interval` good steps in a row S doubles, so it settles just below overflow.
// bfloat16 has float32's range and needs none of this.
//
// Compute the loss in float32 (from logits widened once, as PyTorch's autocast does): the
// gradient reaching the loss itself is the scale, 2^16 by default, past float16's largest
// number (65504); in float32 it is exact, and each gradient below it is a sensible size.
//
// step() reads one number from the device (whether every gradient is finite): the one wait per
// step that float16 training with loss scaling costs.
//
// state_dict() holds what a resumed run needs to continue bit-identically (docs/optimizers.md):
// torch.amp.GradScaler's keys "scale", "growth_factor", "backoff_factor", "growth_interval",
// "_growth_tracker" (good steps since the scale last changed) and convkit's "skipped_steps", each
// a rank-0 float64 host tensor. Unlike PyTorch's (empty when disabled), a disabled scaler's dict
// has the same keys and loads them: a checkpoint's layout does not depend on the precision.
#include <cstdint>
#include <map>
#include <string>

#include "convkit/optim/optimizer.h"
#include "convkit/tensor.h"

namespace convkit::optim {

struct GradScalerOptions {
    double init_scale = 65536.0;  // 2^16
    double growth_factor = 2.0;   // > 1
    double backoff_factor = 0.5;  // in (0, 1)
    std::int64_t growth_interval = 2000;  // good steps before the scale grows; >= 1
    bool enabled = true;          // false: scale() and step() pass through (one code path for every precision)
};

class GradScaler {
public:
    // Throws InvalidArgument naming the option for a value outside its range.
    explicit GradScaler(GradScalerOptions options = {});

    // loss x scale, recorded, so backward() gives scaled gradients (in float32 for a 16-bit loss,
    // but see above: a float16 loss's own gradient overflows). The loss itself when disabled.
    Tensor scale(const Tensor& loss) const;
    // Steps `optimizer` with its gradients unscaled if all are finite and returns true; else
    // skips the step (the parameters and the optimizer's state unchanged), lowers the scale and
    // returns false. Then updates the scale. Disabled: optimizer.step(), true.
    bool step(Optimizer& optimizer);

    double current_scale() const { return scale_; }
    std::int64_t skipped_steps() const { return skipped_; }
    // The options: the constructor's, with the hyperparameters of the last load_state_dict.
    GradScalerOptions options() const { return options_; }

    // The scale, the hyperparameters and the counts as named rank-0 float64 tensors (see above).
    std::map<std::string, Tensor> state_dict() const;
    // Replaces them from a state_dict(), as PyTorch does: the loaded growth_factor,
    // backoff_factor and growth_interval replace the constructor's; init_scale and enabled stay
    // (whether to scale is this run's choice of precision). Throws InvalidArgument naming the key
    // and the value on a missing or unexpected key, a tensor that is not a float64 scalar, a scale
    // that is not positive and finite, a count that is not a non-negative integer, a
    // hyperparameter out of the constructor's range, or a "_growth_tracker" not below
    // "growth_interval" (no scaler is in that state); it then changes nothing.
    void load_state_dict(const std::map<std::string, Tensor>& state);

private:
    GradScalerOptions options_;
    double scale_;
    std::int64_t good_steps_ = 0;  // finite steps since the scale last changed
    std::int64_t skipped_ = 0;
};

}  // namespace convkit::optim
