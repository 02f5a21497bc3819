// Optimizers and learning-rate schedules over several steps.
//
// op "optim": parameters "param.<i>" (i < "count") and, for step k < "steps", gradients
//   "grad.<k>.<i>" (absent: parameter i has no gradient at step k and is skipped). Reports the
//   learning rate each step used ("lr.<k>"), every parameter after each step
//   ("after.<k>.param.<i>") and the optimizer's final state_dict ("optimizer.<key>").
// op "train": a module (see torch_modules.cpp) trained for "steps" steps: zero_grad, forward
//   "input.<k>", backward "grad_output.<k>", step; reports "output.<k>" and the parameters and
//   buffers after each step ("after.<k>.state.<name>").
// The optimizer is "optimizer.type" (SGD, Adam, AdamW) with PyTorch's argument names under
// "optimizer."; an optional schedule is "scheduler.type" (StepLR, CosineAnnealingLR,
// OneCycleLR), stepped after every optimizer step.
#include "convkit/optim/adam.h"
#include "convkit/optim/scheduler.h"
#include "convkit/optim/sgd.h"
#include "torch_diff/torch_diff.h"

namespace torch_diff {

namespace {
namespace optim = convkit::optim;
using convkit::DType;
using convkit::Shape;

std::unique_ptr<optim::Optimizer> make_optimizer(const Case& c, std::vector<Tensor> parameters) {
    const std::string& type = c.text("optimizer.type");
    auto number = [&](const char* key, double fallback) { return c.number_or(std::string("optimizer.") + key, fallback); };
    auto flag = [&](const char* key) { return c.flag(std::string("optimizer.") + key, false); };
    if (type == "SGD") {
        return std::make_unique<optim::SGD>(
            std::move(parameters),
            optim::SGDOptions{.lr = c.number("optimizer.lr"), .momentum = number("momentum", 0),
                              .dampening = number("dampening", 0), .weight_decay = number("weight_decay", 0),
                              .nesterov = flag("nesterov"), .maximize = flag("maximize")});
    }
    if (type == "Adam") {
        return std::make_unique<optim::Adam>(
            std::move(parameters),
            optim::AdamOptions{.lr = number("lr", 1e-3), .beta1 = number("beta1", 0.9), .beta2 = number("beta2", 0.999),
                               .eps = number("eps", 1e-8), .weight_decay = number("weight_decay", 0),
                               .amsgrad = flag("amsgrad"), .maximize = flag("maximize")});
    }
    if (type == "AdamW") {
        return std::make_unique<optim::AdamW>(
            std::move(parameters),
            optim::AdamWOptions{.lr = number("lr", 1e-3), .beta1 = number("beta1", 0.9),
                                .beta2 = number("beta2", 0.999), .eps = number("eps", 1e-8),
                                .weight_decay = number("weight_decay", 1e-2), .amsgrad = flag("amsgrad"),
                                .maximize = flag("maximize")});
    }
    throw CaseError("unknown optimizer '" + type + "'");
}

std::unique_ptr<optim::LRScheduler> make_scheduler(const Case& c, optim::Optimizer& optimizer) {
    if (!c.has("scheduler.type")) return nullptr;
    const std::string& type = c.text("scheduler.type");
    if (type == "StepLR") {
        return std::make_unique<optim::StepLR>(optimizer, c.integer("scheduler.step_size"),
                                               c.number_or("scheduler.gamma", 0.1));
    }
    if (type == "CosineAnnealingLR") {
        return std::make_unique<optim::CosineAnnealingLR>(optimizer, c.integer("scheduler.T_max"),
                                                          c.number_or("scheduler.eta_min", 0));
    }
    if (type == "OneCycleLR") {
        optim::OneCycleOptions options;
        options.pct_start = c.number_or("scheduler.pct_start", options.pct_start);
        const std::string strategy = c.text_or("scheduler.anneal_strategy", "cos");
        if (strategy != "cos" && strategy != "linear") throw CaseError("unknown anneal_strategy '" + strategy + "'");
        options.anneal_strategy = strategy == "cos" ? optim::AnnealStrategy::Cosine : optim::AnnealStrategy::Linear;
        options.cycle_momentum = c.flag("scheduler.cycle_momentum", options.cycle_momentum);
        options.base_momentum = c.number_or("scheduler.base_momentum", options.base_momentum);
        options.max_momentum = c.number_or("scheduler.max_momentum", options.max_momentum);
        options.div_factor = c.number_or("scheduler.div_factor", options.div_factor);
        options.final_div_factor = c.number_or("scheduler.final_div_factor", options.final_div_factor);
        options.three_phase = c.flag("scheduler.three_phase", options.three_phase);
        return std::make_unique<optim::OneCycleLR>(optimizer, c.number("scheduler.max_lr"),
                                                   c.integer("scheduler.total_steps"), options);
    }
    throw CaseError("unknown scheduler '" + type + "'");
}

Tensor scalar(double value) { return Tensor::full(Shape{}, value, DType::Float64); }

void add_state(const optim::Optimizer& optimizer, convkit::TensorMap& extras) {
    for (const auto& [key, tensor] : optimizer.state_dict()) extras["optimizer." + key] = tensor.clone();
}

Run optim_steps(Case& c) {
    std::vector<Tensor> parameters;
    for (std::int64_t i = 0; i < c.integer("count"); ++i) {
        // Copies: the optimizer writes into them, and the case's tensors stay as they came.
        parameters.push_back(c.input("param." + std::to_string(i)).clone().set_requires_grad());
    }
    auto optimizer = make_optimizer(c, parameters);
    auto scheduler = make_scheduler(c, *optimizer);
    Run run;
    for (std::int64_t k = 0; k < c.integer("steps"); ++k) {
        const std::string step = std::to_string(k);
        for (std::size_t i = 0; i < parameters.size(); ++i) {
            const std::string name = "grad." + step + "." + std::to_string(i);
            if (c.has_tensor(name)) {
                parameters[i].set_grad(c.tensors().at(name).clone());
            } else {
                parameters[i].clear_grad();
            }
        }
        run.extras["lr." + step] = scalar(optimizer->learning_rate());
        optimizer->step();
        if (scheduler) scheduler->step();
        for (std::size_t i = 0; i < parameters.size(); ++i) {
            run.extras["after." + step + ".param." + std::to_string(i)] = parameters[i].detach().clone();
        }
    }
    add_state(*optimizer, run.extras);
    run.backward_done = true;
    return run;
}

Run train_steps(Case& c) {
    auto module = prepared_module(c);
    auto optimizer = make_optimizer(c, module->parameters());
    auto scheduler = make_scheduler(c, *optimizer);
    Run run;
    for (std::int64_t k = 0; k < c.integer("steps"); ++k) {
        const std::string step = std::to_string(k);
        optimizer->zero_grad();
        const Tensor output = (*module)(c.input("input." + step));
        run.extras["output." + step] = output.detach();
        run.extras["lr." + step] = scalar(optimizer->learning_rate());
        output.backward(c.input("grad_output." + step));
        optimizer->step();
        if (scheduler) scheduler->step();
        for (const auto& [name, tensor] : module->state_dict()) {
            run.extras["after." + step + ".state." + name] = tensor.detach().clone();
        }
    }
    add_state(*optimizer, run.extras);
    run.backward_done = true;
    return run;
}
}  // namespace

void register_optim_ops(OpTable& table) {
    table["optim"] = optim_steps;
    table["train"] = train_steps;
}

}  // namespace torch_diff
