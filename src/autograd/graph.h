#pragma once
// The autograd graph and the API ops use to record into it (see docs/autograd.md).
//
// An op that can be differentiated computes its output as usual, then, when should_record()
// says so, calls record() with the output, its tensor inputs and a backward function: a closure
// that maps the gradient of the output to the gradients of the inputs. Whatever the closure
// captures (SavedTensor, shapes, parameters) lives until that node has run in a backward pass.
//
//   Tensor y = ...;                                   // computed without autograd
//   if (autograd::should_record({x, w})) {
//       autograd::record("conv2d", y, {x, w},
//           [x = autograd::SavedTensor(x), w = autograd::SavedTensor(w), params](
//               const Tensor& dy, const autograd::NeedsGrad& needs) -> std::vector<Tensor> {
//               return {needs[0] ? conv_backward_data(dy, w.get(), ...) : Tensor(),
//                       needs[1] ? conv_backward_filter(dy, x.get(), ...) : Tensor()};
//           });
//   }
//
// Backward functions run with grad mode off, so the ops they call record nothing.
#include <atomic>
#include <cstdint>
#include <functional>
#include <initializer_list>
#include <memory>
#include <string>
#include <vector>

#include "convkit/autograd.h"
#include "convkit/tensor.h"

namespace convkit::autograd {

class Node;

// Where the gradient of one input goes: the node that computed it, or the accumulator of a leaf.
// A null node means the input needs no gradient.
struct Edge {
    std::shared_ptr<Node> node;
};

// What a gradient for an input must look like.
struct InputSignature {
    bool defined = false;
    Shape shape;
    DType dtype = DType::Float32;
    Device device = Device::host();
    MemoryFormat memory_format = MemoryFormat::Contiguous;  // gradients are delivered in it
};

class Node {
public:
    Node(std::string name, std::vector<Edge> next_edges);
    virtual ~Node() = default;
    Node(const Node&) = delete;
    Node& operator=(const Node&) = delete;

    const std::string& name() const { return name_; }
    const std::vector<Edge>& next_edges() const { return next_edges_; }
    // Creation order: later nodes run first among those ready, which keeps the live set small.
    std::uint64_t sequence_number() const { return sequence_number_; }

    // The gradients of the inputs (one per next edge; undefined where none flows) from the
    // gradient of the output.
    virtual std::vector<Tensor> apply(const Tensor& grad_output) = 0;
    // Frees what the node saved for backward; running it afterwards is an error.
    virtual void release() {}

private:
    std::string name_;
    std::vector<Edge> next_edges_;
    std::uint64_t sequence_number_;
};

}  // namespace convkit::autograd

namespace convkit::detail {

// The autograd state of a tensor handle (shared by its copies).
struct AutogradMeta {
    bool requires_grad = false;
    Tensor grad;                                        // leaves only
    std::shared_ptr<autograd::Node> grad_fn;            // null for leaves
    std::weak_ptr<autograd::Node> grad_accumulator;     // leaves: the node that adds into grad
};

}  // namespace convkit::detail

namespace convkit::autograd {

// Which inputs of a node need a gradient, in the order they were recorded.
using NeedsGrad = std::vector<bool>;
using BackwardFunction = std::function<std::vector<Tensor>(const Tensor& grad_output, const NeedsGrad& needs)>;

// A tensor kept for the backward pass: detached (so an op's output saved by its own node makes
// no reference cycle) and stamped with its storage version, so an in-place change between the
// forward and the backward pass is an error rather than a wrong gradient.
class SavedTensor {
public:
    SavedTensor() = default;
    explicit SavedTensor(const Tensor& tensor);
    // The saved tensor; throws Error naming `op` if it was modified in place since it was saved.
    const Tensor& get() const;
    bool defined() const { return tensor_.defined(); }

private:
    Tensor tensor_;
    std::uint64_t version_ = 0;
};

// True when grad mode is on and any of `inputs` requires grad.
bool should_record(std::initializer_list<std::reference_wrapper<const Tensor>> inputs);
bool should_record(const std::vector<Tensor>& inputs);

// Makes `output` the result of a node named `op` over `inputs` (undefined inputs allowed: they
// get no gradient). Does nothing when should_record(inputs) is false.
void record(const std::string& op, Tensor& output, const std::vector<Tensor>& inputs, BackwardFunction backward);


// Where the gradient of `tensor` goes (null when it requires none).
Edge gradient_edge(const Tensor& tensor);

// Runs the backward pass from `root` (see Tensor::backward).
void run_backward(const Tensor& root, const Tensor& gradient, bool retain_graph);

}  // namespace convkit::autograd
