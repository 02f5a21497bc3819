// Batch normalization and the shape ops (flatten, concat, slice, split, nearest upsampling).
// Ops with several inputs or outputs number them: "input.0", "input.1", ... and "output.0",
// with "grad_output.0", ... for each output.
#include "convkit/ops/norm.h"
#include "convkit/ops/shape_ops.h"
#include "torch_diff/torch_diff.h"

namespace torch_diff {

namespace {

// F.batch_norm(input, running_mean, running_var, weight, bias, training, momentum, eps); the
// running statistics after the call are reported as "after.running_mean" / "after.running_var".
Run batch_norm(Case& c) {
    const Tensor input = c.input("input");
    const Tensor weight = c.optional_input("weight");
    const Tensor bias = c.optional_input("bias");
    Tensor running_mean = c.optional_input("running_mean");
    Tensor running_var = c.optional_input("running_var");
    Run run{convkit::batch_norm(input, weight, bias, running_mean, running_var, c.flag("training", true),
                                c.number("momentum"), c.number("eps")),
            {}};
    if (running_mean.defined()) run.extras["after.running_mean"] = running_mean.clone();
    if (running_var.defined()) run.extras["after.running_var"] = running_var.clone();
    return run;
}

Run flatten(Case& c) {
    return {convkit::flatten(c.input("input"), static_cast<int>(c.integer("start_dim")),
                             static_cast<int>(c.integer("end_dim"))),
            {}};
}

Run concat(Case& c) {
    std::vector<Tensor> inputs;
    for (std::int64_t i = 0; i < c.integer("count"); ++i) inputs.push_back(c.input("input." + std::to_string(i)));
    return {convkit::concat(inputs, static_cast<int>(c.integer("dim"))), {}};
}

Run slice(Case& c) {
    return {convkit::slice(c.input("input"), static_cast<int>(c.integer("dim")), c.integer("start"), c.integer("end")),
            {}};
}

// Several outputs: each part runs its own backward pass, and the input's gradient accumulates.
Run split(Case& c) {
    const auto parts = convkit::split(c.input("input"), static_cast<int>(c.integer("dim")), c.integers("sizes"));
    Run run;
    for (std::size_t i = 0; i < parts.size(); ++i) run.extras["output." + std::to_string(i)] = parts[i].detach();
    for (std::size_t i = 0; i < parts.size(); ++i) {
        const std::string grad_name = "grad_output." + std::to_string(i);
        if (!c.has_tensor(grad_name)) throw CaseError("the case has no tensor '" + grad_name + "'");
        parts[i].backward(c.tensors().at(grad_name));
    }
    run.backward_done = true;
    return run;
}

Run upsample_nearest(Case& c) {
    const Tensor input = c.input("input");
    if (c.has("scale_factor")) return {convkit::upsample_nearest(input, c.integers("scale_factor")), {}};
    return {convkit::upsample_nearest_to_size(input, c.integers("size")), {}};
}

}  // namespace

void register_norm_shape_ops(OpTable& table) {
    table["batch_norm"] = batch_norm;
    table["flatten"] = flatten;
    table["concat"] = concat;
    table["slice"] = slice;
    table["split"] = split;
    table["upsample_nearest"] = upsample_nearest;
}

}  // namespace torch_diff
