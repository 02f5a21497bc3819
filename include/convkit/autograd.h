#pragma once
// Reverse-mode automatic differentiation, LibTorch style.
//
//   Tensor w = Tensor::normal(...).set_requires_grad();   // a leaf: a parameter
//   Tensor loss = mse_loss(conv_forward(x, w, params), target);
//   loss.backward();                                       // w.grad() now holds d loss / d w
//
// Every differentiable op (conv, pool, elementwise, reductions, ...) records a node in a graph
// when grad mode is on and one of its inputs requires grad. backward() runs the graph from the
// output back to the leaves in reverse topological order, adding the gradients of tensors used
// more than once, and frees each node's saved tensors as soon as that node has run (pass
// retain_graph = true to run the same graph again). Gradients of leaves accumulate across
// backward() calls until cleared (Module::zero_grad, Tensor::clear_grad).
//
// Grad mode is per thread and on by default; NoGradGuard turns it off in a scope (evaluation,
// optimizer updates, initialisation). In-place changes (fill_, copy_) to a tensor that requires
// grad are refused while grad mode is on, and a tensor saved for backward that is changed in
// place afterwards makes backward() throw instead of computing a wrong gradient.
namespace convkit {

bool grad_mode_enabled();  // of the calling thread

class NoGradGuard {
public:
    NoGradGuard();
    ~NoGradGuard();
    NoGradGuard(const NoGradGuard&) = delete;
    NoGradGuard& operator=(const NoGradGuard&) = delete;

private:
    bool previous_;
};

// Turns grad mode back on inside a NoGradGuard scope.
class EnableGradGuard {
public:
    EnableGradGuard();
    ~EnableGradGuard();
    EnableGradGuard(const EnableGradGuard&) = delete;
    EnableGradGuard& operator=(const EnableGradGuard&) = delete;

private:
    bool previous_;
};

}  // namespace convkit
