#include "optim_scenario.h"

#include <map>
#include <memory>
#include <sstream>
#include <stdexcept>

#include "convkit/convkit.h"

namespace convkit::testing {

namespace {

using Spec = std::map<std::string, std::string>;

Spec parse(const std::string& text) {
    Spec spec{{"dtype", "float64"}, {"steps", "6"}, {"skip", "0"}, {"scheduler", "none"}};
    std::istringstream words(text);
    for (std::string word; words >> word;) {
        const auto equals = word.find('=');
        if (equals == std::string::npos) throw std::invalid_argument("scenario word without '=': " + word);
        spec[word.substr(0, equals)] = word.substr(equals + 1);
    }
    return spec;
}

double number(const Spec& spec, const std::string& key, double fallback) {
    const auto it = spec.find(key);
    return it == spec.end() ? fallback : std::stod(it->second);
}

bool flag(const Spec& spec, const std::string& key) {
    return number(spec, key, 0) == 1;
}

std::unique_ptr<optim::Optimizer> make_optimizer(const Spec& spec, const std::vector<Tensor>& params) {
    const std::string& kind = spec.at("optimizer");
    if (kind == "sgd") {
        return std::make_unique<optim::SGD>(params, optim::SGDOptions{.lr = number(spec, "lr", 0),
                                                                      .momentum = number(spec, "momentum", 0),
                                                                      .dampening = number(spec, "dampening", 0),
                                                                      .weight_decay = number(spec, "weight_decay", 0),
                                                                      .nesterov = flag(spec, "nesterov"),
                                                                      .maximize = flag(spec, "maximize")});
    }
    if (kind == "adam") {
        return std::make_unique<optim::Adam>(params, optim::AdamOptions{.lr = number(spec, "lr", 1e-3),
                                                                        .beta1 = number(spec, "beta1", 0.9),
                                                                        .beta2 = number(spec, "beta2", 0.999),
                                                                        .eps = number(spec, "eps", 1e-8),
                                                                        .weight_decay = number(spec, "weight_decay", 0),
                                                                        .amsgrad = flag(spec, "amsgrad"),
                                                                        .maximize = flag(spec, "maximize")});
    }
    if (kind == "adamw") {
        return std::make_unique<optim::AdamW>(params,
                                              optim::AdamWOptions{.lr = number(spec, "lr", 1e-3),
                                                                  .beta1 = number(spec, "beta1", 0.9),
                                                                  .beta2 = number(spec, "beta2", 0.999),
                                                                  .eps = number(spec, "eps", 1e-8),
                                                                  .weight_decay = number(spec, "weight_decay", 1e-2),
                                                                  .amsgrad = flag(spec, "amsgrad"),
                                                                  .maximize = flag(spec, "maximize")});
    }
    throw std::invalid_argument("unknown optimizer " + kind);
}

std::unique_ptr<optim::LRScheduler> make_scheduler(const Spec& spec, optim::Optimizer& opt, std::int64_t steps) {
    const std::string& kind = spec.at("scheduler");
    if (kind == "none") return nullptr;
    if (kind == "step") return std::make_unique<optim::StepLR>(opt, 2, 0.5);
    if (kind == "cosine") return std::make_unique<optim::CosineAnnealingLR>(opt, 4, 0.001);
    if (kind == "onecycle" || kind == "onecycle_linear") {
        optim::OneCycleOptions options;
        if (kind == "onecycle_linear") options.anneal_strategy = optim::AnnealStrategy::Linear;
        return std::make_unique<optim::OneCycleLR>(opt, 0.5, steps + 1, options);
    }
    throw std::invalid_argument("unknown scheduler " + kind);
}

}  // namespace

std::vector<double> run_scenario(const std::string& text) {
    const Spec spec = parse(text);
    const DType dtype = spec.at("dtype") == "float32" ? DType::Float32 : DType::Float64;
    const auto steps = static_cast<std::int64_t>(number(spec, "steps", 6));
    const std::vector<Shape> shapes = {Shape{3}, Shape{2, 2}, Shape{5}};
    std::vector<Tensor> params;
    std::vector<Tensor> a;
    std::vector<Tensor> b;
    int j = 0;
    for (const Shape& shape : shapes) {
        std::vector<double> p0;
        std::vector<double> av;
        std::vector<double> bv;
        for (std::int64_t k = 0; k < shape.numel(); ++k, ++j) {
            p0.push_back(((j % 7) - 3) / 4.0 + (j % 3) / 8.0 + 1 / 16.0);
            av.push_back(1 + (j % 4) / 2.0);
            bv.push_back(((j % 5) - 2) / 8.0);
        }
        params.push_back(Tensor::from_vector(shape, p0).to(dtype).set_requires_grad());
        a.push_back(Tensor::from_vector(shape, av).to(dtype));
        b.push_back(Tensor::from_vector(shape, bv).to(dtype));
    }
    const std::unique_ptr<optim::Optimizer> opt = make_optimizer(spec, params);
    const std::unique_ptr<optim::LRScheduler> scheduler = make_scheduler(spec, *opt, steps);
    const Tensor quarter = Tensor::full(Shape{}, 0.25, dtype);
    for (std::int64_t step = 0; step < steps; ++step) {
        for (std::size_t i = 0; i < params.size(); ++i) {
            if (flag(spec, "skip") && i == 1 && step % 3 == 1) {
                params[i].clear_grad();
                continue;
            }
            NoGradGuard no_grad;
            const Tensor& p = params[i];
            // The same operations in the same order as PyTorch's a*p + b + 0.25*p*p*p.
            params[i].set_grad(a[i] * p + b[i] + quarter * p * p * p);
        }
        opt->step();
        if (scheduler) scheduler->step();
    }
    std::vector<double> values;
    for (const Tensor& p : params) {
        for (const double v : p.to_vector()) values.push_back(v);
    }
    return values;
}

}  // namespace convkit::testing
