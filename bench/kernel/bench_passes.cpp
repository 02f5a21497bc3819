#include "bench_passes.h"

#include "convkit/convkit.h"

namespace convkit::bench {

Tensor layer_forward(const BenchConfig& config, const InputSet& s) {
    switch (config.op) {
        case BenchOp::BatchNorm: {
            Tensor running_mean = s.running_mean, running_var = s.running_var;  // handles: updated in place
            return batch_norm(s.x, s.w, s.bias, running_mean, running_var, /*training=*/true);
        }
        case BenchOp::Relu:
            return relu(s.x);
        case BenchOp::Add:
            return add(s.x, s.residual);
        default:
            throw InvalidArgument("convkit-bench: " + config.op_name() + " is not a layer row");
    }
}

InputSet with_recorded_forward(const BenchConfig& config, const InputSet& s) {
    InputSet recorded = s;
    recorded.x = s.x.detach().set_requires_grad();
    recorded.leaves = {recorded.x};
    if (config.op == BenchOp::BatchNorm) {
        recorded.w = s.w.detach().set_requires_grad();
        recorded.bias = s.bias.detach().set_requires_grad();
        recorded.leaves.push_back(recorded.w);
        recorded.leaves.push_back(recorded.bias);
    }
    if (config.op == BenchOp::Add) {
        recorded.residual = s.residual.detach().set_requires_grad();
        recorded.leaves.push_back(recorded.residual);
        recorded.result_leaf = 1;
    }
    recorded.recorded = layer_forward(config, recorded);
    return recorded;
}

Tensor layer_backward(const InputSet& recorded) {
    for (Tensor leaf : recorded.leaves) leaf.clear_grad();
    recorded.recorded.backward(recorded.dy, /*retain_graph=*/true);
    return recorded.leaves[recorded.result_leaf].grad();
}

Tensor host_layer_reference(const BenchConfig& config, Direction direction, const InputSet& s) {
    const auto on_host = [](const Tensor& t) { return t.to(Device::host()).to(DType::Float64); };
    const InputSet host = converted(s, on_host, on_host);
    if (direction == Direction::Forward) return layer_forward(config, host);
    return layer_backward(with_recorded_forward(config, host));
}

}  // namespace convkit::bench
