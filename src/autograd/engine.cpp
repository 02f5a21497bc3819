// The backward pass: collect the graph reachable from the root, count each node's consumers,
// then run nodes whose gradients are complete, latest-created first, summing the gradients of
// outputs used more than once. Saved tensors are freed as each node finishes.
#include <algorithm>
#include <chrono>
#include <queue>
#include <unordered_map>

#include "autograd/graph.h"
#include "convkit/autograd_profiler.h"
#include "convkit/ops/elementwise.h"
#include "core/check.h"
#include "tensor/memory_format_support.h"

namespace convkit {

namespace {
thread_local bool tls_grad_mode = true;
// The node running now, for the message of a SavedTensor changed in place.
thread_local const autograd::Node* tls_running_node = nullptr;
std::atomic<std::uint64_t> next_sequence_number{0};
thread_local BackwardProfiler* tls_profiler = nullptr;

double seconds_since(std::chrono::steady_clock::time_point start) {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}
}  // namespace

BackwardProfiler::BackwardProfiler() : previous_(tls_profiler) { tls_profiler = this; }
BackwardProfiler::~BackwardProfiler() { tls_profiler = previous_; }

void BackwardProfiler::add(const std::string& name, double seconds) {
    auto it = std::find_if(timings_.begin(), timings_.end(), [&](const NodeTiming& t) { return t.name == name; });
    if (it == timings_.end()) it = timings_.insert(timings_.end(), NodeTiming{name, 0, 0});
    it->seconds += seconds;
    ++it->calls;
}

bool grad_mode_enabled() { return tls_grad_mode; }

NoGradGuard::NoGradGuard() : previous_(tls_grad_mode) { tls_grad_mode = false; }
NoGradGuard::~NoGradGuard() { tls_grad_mode = previous_; }
EnableGradGuard::EnableGradGuard() : previous_(tls_grad_mode) { tls_grad_mode = true; }
EnableGradGuard::~EnableGradGuard() { tls_grad_mode = previous_; }

namespace autograd {

Node::Node(std::string name, std::vector<Edge> next_edges)
    : name_(std::move(name)), next_edges_(std::move(next_edges)), sequence_number_(next_sequence_number++) {}

SavedTensor::SavedTensor(const Tensor& tensor)
    : tensor_(tensor.defined() ? tensor.detach() : Tensor()), version_(tensor.storage_version()) {}

const Tensor& SavedTensor::get() const {
    if (tensor_.defined() && tensor_.storage_version() != version_) {
        throw InvalidArgument(detail::concat(
            tls_running_node ? tls_running_node->name() : std::string("autograd"), "_backward: a tensor of shape ",
            tensor_.shape().to_string(), " saved for the backward pass was modified in place after it was saved ",
            "(version ", version_, ", now ", tensor_.storage_version(), "); compute on a clone instead"));
    }
    return tensor_;
}

namespace {

// A recorded op: checks that its backward function returns one gradient of the right shape,
// dtype and device per input, so a wrong backward fails at its own node.
class FunctionNode final : public Node {
public:
    FunctionNode(const std::string& name, std::vector<Edge> next_edges, std::vector<InputSignature> inputs,
                 BackwardFunction backward)
        : Node(name, std::move(next_edges)), inputs_(std::move(inputs)), backward_(std::move(backward)) {}

    std::vector<Tensor> apply(const Tensor& grad_output) override {
        CONVKIT_REQUIRE(backward_ != nullptr, name() + "_backward",
                        "this part of the graph has already been run backward and its saved tensors freed; pass "
                        "retain_graph = true to the first backward() to run it again");
        NeedsGrad needs(next_edges().size());
        for (std::size_t i = 0; i < needs.size(); ++i) needs[i] = next_edges()[i].node != nullptr;
        std::vector<Tensor> grads = backward_(grad_output, needs);
        check_gradients(grads);
        conform_formats(grads);
        return grads;
    }

    void release() override { backward_ = nullptr; }

private:
    void check_gradients(const std::vector<Tensor>& grads) const {
        const std::string op = name() + "_backward";
        if (grads.size() != inputs_.size()) {
            throw Error(detail::concat(op, ": returned ", grads.size(), " gradients for ", inputs_.size(), " inputs"));
        }
        for (std::size_t i = 0; i < grads.size(); ++i) {
            if (!grads[i].defined() || !next_edges()[i].node) continue;
            const InputSignature& in = inputs_[i];
            if (grads[i].shape() != in.shape || grads[i].dtype() != in.dtype || grads[i].device() != in.device) {
                throw Error(detail::concat(op, ": the gradient of input ", i, " is ", grads[i].shape().to_string(), " ",
                                           dtype_name(grads[i].dtype()), " on ", grads[i].device().to_string(),
                                           " but the input is ", in.shape.to_string(), " ", dtype_name(in.dtype),
                                           " on ", in.device.to_string()));
            }
        }
    }

    // Each gradient arrives in the memory format of the tensor it belongs to, whatever format the
    // backward computed it in (a converting op's gradient is contiguous); counted as a conversion.
    void conform_formats(std::vector<Tensor>& grads) const {
        for (std::size_t i = 0; i < grads.size(); ++i) {
            if (grads[i].defined()) grads[i] = detail::operand_in_format(grads[i], inputs_[i].memory_format);
        }
    }

    std::vector<InputSignature> inputs_;
    BackwardFunction backward_;
};

// The end of the graph at a leaf: adds the incoming gradient into the leaf's grad().
class AccumulateGrad final : public Node {
public:
    explicit AccumulateGrad(std::shared_ptr<detail::AutogradMeta> leaf)
        : Node("accumulate_grad", {}), leaf_(std::move(leaf)) {}

    std::vector<Tensor> apply(const Tensor& grad_output) override {
        // A new tensor each time rather than an in-place add: a grad() the caller holds keeps
        // its values, and the gradient may share storage with other tensors of the pass.
        leaf_->grad = leaf_->grad.defined() ? add(leaf_->grad, grad_output) : grad_output;
        return {};
    }

private:
    std::shared_ptr<detail::AutogradMeta> leaf_;
};

InputSignature signature_of(const Tensor& t) {
    if (!t.defined()) return {};
    return {true, t.shape(), t.dtype(), t.device(), t.memory_format()};
}

bool requires_grad(const Tensor& t) { return t.defined() && t.requires_grad(); }

}  // namespace

Edge gradient_edge(const Tensor& t) {
    if (!requires_grad(t)) return {};
    const auto& meta = t.autograd_meta();
    if (meta->grad_fn) return {meta->grad_fn};
    std::shared_ptr<Node> accumulator = meta->grad_accumulator.lock();
    if (!accumulator) {
        accumulator = std::make_shared<AccumulateGrad>(meta);
        meta->grad_accumulator = accumulator;
    }
    return {accumulator};
}

bool should_record(std::initializer_list<std::reference_wrapper<const Tensor>> inputs) {
    return grad_mode_enabled() &&
           std::any_of(inputs.begin(), inputs.end(), [](const Tensor& t) { return requires_grad(t); });
}

bool should_record(const std::vector<Tensor>& inputs) {
    return grad_mode_enabled() && std::any_of(inputs.begin(), inputs.end(), requires_grad);
}

void record(const std::string& op, Tensor& output, const std::vector<Tensor>& inputs, BackwardFunction backward) {
    // Integer outputs (indices, counts) are not differentiable, as in PyTorch.
    if (!should_record(inputs) || !is_floating_point(output.dtype())) return;
    std::vector<Edge> edges;
    std::vector<InputSignature> signatures;
    for (const Tensor& input : inputs) {
        edges.push_back(gradient_edge(input));
        signatures.push_back(signature_of(input));
    }
    const auto& meta = output.autograd_meta();
    meta->requires_grad = true;
    meta->grad_fn = std::make_shared<FunctionNode>(op, std::move(edges), std::move(signatures), std::move(backward));
}

namespace {

// How many edges of the graph below `root` point at each node.
std::unordered_map<Node*, int> count_consumers(Node* root) {
    std::unordered_map<Node*, int> consumers{{root, 0}};
    std::vector<Node*> stack{root};
    while (!stack.empty()) {
        Node* node = stack.back();
        stack.pop_back();
        for (const Edge& edge : node->next_edges()) {
            if (!edge.node) continue;
            auto [it, first_visit] = consumers.try_emplace(edge.node.get(), 0);
            ++it->second;
            if (first_visit) stack.push_back(edge.node.get());
        }
    }
    return consumers;
}

struct LatestFirst {
    bool operator()(const Node* a, const Node* b) const { return a->sequence_number() < b->sequence_number(); }
};

class RunningNodeScope {
public:
    explicit RunningNodeScope(const Node* node) : previous_(tls_running_node) { tls_running_node = node; }
    ~RunningNodeScope() { tls_running_node = previous_; }
    RunningNodeScope(const RunningNodeScope&) = delete;
    RunningNodeScope& operator=(const RunningNodeScope&) = delete;

private:
    const Node* previous_;
};

Tensor root_gradient(const Tensor& root, const Tensor& gradient) {
    if (!gradient.defined()) {
        CONVKIT_REQUIRE(root.numel() == 1, "backward", "a gradient can be implied only for a one-element output ",
                        "(a loss); this output has shape ", root.shape().to_string(),
                        ", so pass backward(gradient) of that shape");
        return Tensor::full(root.shape(), 1.0, root.dtype(), root.device());
    }
    CONVKIT_REQUIRE(gradient.shape() == root.shape() && gradient.dtype() == root.dtype() &&
                        gradient.device() == root.device(),
                    "backward", "the gradient is ", gradient.shape().to_string(), " ", dtype_name(gradient.dtype()),
                    " on ", gradient.device().to_string(), " but the output is ", root.shape().to_string(), " ",
                    dtype_name(root.dtype()), " on ", root.device().to_string());
    // In the output's format, as every gradient the engine passes on (conform_formats).
    return detail::operand_in_format(gradient.detach(), root.memory_format());
}

}  // namespace

void run_backward(const Tensor& root, const Tensor& gradient, bool retain_graph) {
    CONVKIT_REQUIRE(root.defined(), "backward", "the tensor is undefined");
    CONVKIT_REQUIRE(root.requires_grad(), "backward", "the tensor of shape ", root.shape().to_string(),
                    " does not require grad and was not computed from any tensor that does");
    NoGradGuard no_grad;
    const Edge root_edge = gradient_edge(root);
    std::unordered_map<Node*, int> consumers = count_consumers(root_edge.node.get());
    std::unordered_map<Node*, Tensor> pending{{root_edge.node.get(), root_gradient(root, gradient)}};
    // Shared pointers keep nodes alive while they wait: the tensors that own them may be gone.
    std::unordered_map<Node*, std::shared_ptr<Node>> owners{{root_edge.node.get(), root_edge.node}};
    std::priority_queue<Node*, std::vector<Node*>, LatestFirst> ready;
    ready.push(root_edge.node.get());

    while (!ready.empty()) {
        Node* node = ready.top();
        ready.pop();
        const Tensor grad_output = std::move(pending[node]);
        pending.erase(node);
        // No gradient reached this node (every path to it carried none, e.g. a max's losers):
        // it contributes nothing, but still counts as done for the nodes below it.
        std::vector<Tensor> grads;
        if (grad_output.defined()) {
            RunningNodeScope running(node);
            if (tls_profiler == nullptr) {
                grads = node->apply(grad_output);
            } else {
                const auto start = std::chrono::steady_clock::now();
                grads = node->apply(grad_output);
                tls_profiler->add(node->name(), seconds_since(start));
            }
        }
        if (!retain_graph) node->release();
        for (std::size_t i = 0; i < node->next_edges().size(); ++i) {
            const std::shared_ptr<Node>& next = node->next_edges()[i].node;
            if (!next) continue;
            Tensor& slot = pending[next.get()];
            if (i < grads.size() && grads[i].defined()) {
                if (!slot.defined()) {
                    slot = grads[i];
                } else if (tls_profiler == nullptr) {
                    slot = add(slot, grads[i]);
                } else {
                    const auto start = std::chrono::steady_clock::now();
                    slot = add(slot, grads[i]);
                    tls_profiler->add("(engine: gradient sums)", seconds_since(start));
                }
            }
            owners.try_emplace(next.get(), next);
            if (--consumers[next.get()] == 0) ready.push(next.get());
        }
        owners.erase(node);
    }
}

}  // namespace autograd
}  // namespace convkit
