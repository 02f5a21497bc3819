// Adam and AdamW: argument checks, per-parameter state, and the dispatch of one update table per
// dtype to the host loop or the fused kernel. The arithmetic is backend_api/optimizer_math.h.
#include "convkit/optim/adam.h"

#include <cmath>
#include <initializer_list>
#include <memory>

#include "convkit/autograd.h"
#include "core/check.h"
#include "optim/captured_update.h"
#include "optim/state_dict_support.h"

namespace convkit::optim {

namespace {

// PyTorch's checks, plus finiteness (a NaN hyperparameter would poison every parameter).
void validate(const AdamOptions& o, const std::string& op) {
    CONVKIT_REQUIRE(o.lr >= 0 && std::isfinite(o.lr), op, "invalid learning rate ", o.lr, " (must be finite and >= 0)");
    CONVKIT_REQUIRE(o.beta1 >= 0 && o.beta1 < 1, op, "invalid beta1 ", o.beta1, " (must be in [0, 1))");
    CONVKIT_REQUIRE(o.beta2 >= 0 && o.beta2 < 1, op, "invalid beta2 ", o.beta2, " (must be in [0, 1))");
    CONVKIT_REQUIRE(o.eps >= 0 && std::isfinite(o.eps), op, "invalid eps ", o.eps, " (must be finite and >= 0)");
    CONVKIT_REQUIRE(o.weight_decay >= 0 && std::isfinite(o.weight_decay), op, "invalid weight_decay ", o.weight_decay,
                    " (must be finite and >= 0)");
}

AdamOptions as_adam_options(const AdamWOptions& o) {
    return {o.lr, o.beta1, o.beta2, o.eps, o.weight_decay, o.amsgrad, o.maximize};
}

const char* const kHyperparameters[] = {"lr", "beta1", "beta2", "eps", "weight_decay", "amsgrad", "maximize"};

}  // namespace

Adam::Adam(std::vector<Tensor> parameters, AdamOptions options) : Adam(std::move(parameters), options, false, "Adam") {}

Adam::Adam(std::vector<Tensor> parameters, AdamOptions options, bool decoupled, const char* name)
    : Optimizer(name, std::move(parameters), options.lr), options_(options), decoupled_(decoupled) {
    validate(options_, this->name());
    state_.resize(this->parameters().size());
}

AdamW::AdamW(std::vector<Tensor> parameters, AdamWOptions options)
    : Adam(std::move(parameters), as_adam_options(options), true, "AdamW") {}

AdamOptions Adam::options() const {
    AdamOptions o = options_;
    o.lr = learning_rate();
    return o;
}

std::int64_t Adam::step_count(std::size_t i) const {
    CONVKIT_REQUIRE(i < state_.size(), name(), "parameter index ", i, " is out of range for ", state_.size(),
                    " parameters");
    return state_[i].step;
}

void Adam::set_cycle_momentum(double beta1) {
    AdamOptions o = options();
    o.beta1 = beta1;
    validate(o, name());
    options_.beta1 = beta1;
}

void Adam::step() {
    NoGradGuard no_grad;
    const std::vector<std::size_t> active = parameters_with_grad();
    if (active.empty()) return;
    const std::vector<Tensor>& params = parameters();
    const std::string op = name() + "::step";
    detail::GraphCapture* capture = graph_capture(op, active);

    // A parameter's first step makes its state: zero moments, as PyTorch's lazy initialisation.
    // A capture cannot: every replay would zero the moments again.
    const std::vector<UpdateOperands> operands = update_operands(active, op.c_str());
    for (const std::size_t i : active) {
        const Tensor& p = params[i];
        ParameterState& s = state_[i];
        const bool has_state = s.exp_avg.defined() && (!options_.amsgrad || s.max_exp_avg_sq.defined());
        if (capture != nullptr && !has_state) {
            detail::refuse_in_graph_capture(device().index, detail::concat(op, " of parameter ", i),
                                            "its first step creates the moments, which every replay would zero "
                                            "again; run an eager step first (CapturedStep's warm-up does)");
        }
        if (!s.exp_avg.defined()) {
            s.exp_avg = Tensor::zeros(p.shape(), state_dtype(i), p.device());
            s.exp_avg_sq = Tensor::zeros(p.shape(), state_dtype(i), p.device());
        }
        if (options_.amsgrad && !s.max_exp_avg_sq.defined()) {
            s.max_exp_avg_sq = Tensor::zeros(p.shape(), state_dtype(i), p.device());
        }
    }
    const auto advance_steps = [this, active, op] {
        for (const std::size_t i : active) {
            ParameterState& s = state_[i];
            ++s.step;
            for (const Tensor* t :
                 std::initializer_list<const Tensor*>{&parameters()[i], &s.exp_avg, &s.exp_avg_sq, &s.max_exp_avg_sq}) {
                if (t->defined()) t->mark_written_in_place(op.c_str());
            }
        }
    };

    // One table per dtype: on a GPU each is one launch for all its parameters. The step's scalars
    // (lr, bias corrections) are read from the optimizer when the table is built: at each replay
    // of a captured step, so a scheduler's learning rate reaches the graph.
    const auto enqueue_updates = [this, active, operands](detail::UpdatePhase phase,
                                                          detail::DeviceUpdateTables* tables) {
        const double lr = learning_rate();
        const auto update = [&](auto zero) {
            using T = decltype(zero);
            std::vector<detail::AdamTensor<T>> table;
            for (const std::size_t i : active) {
                const UpdateOperands& o = operands[i];
                if (o.weights.dtype() != dtype_of<T> || o.weights.numel() == 0) continue;
                const ParameterState& s = state_[i];
                detail::AdamTensor<T> entry{o.weights.data<T>(),
                                            o.grad.data<T>(),
                                            s.exp_avg.data<T>(),
                                            s.exp_avg_sq.data<T>(),
                                            options_.amsgrad ? s.max_exp_avg_sq.data<T>() : nullptr,
                                            o.weights.numel(),
                                            T(0),
                                            T(0)};
                detail::set_adam_step_scalars(entry, lr, options_.beta1, options_.beta2, s.step);
                table.push_back(entry);
            }
            if (table.empty()) return;
            const auto c = detail::make_adam_coefficients<T>(lr, options_.beta1, options_.beta2, options_.eps,
                                                             options_.weight_decay, decoupled_, options_.maximize);
            detail::run_update(device(), c, table, phase, tables);
        };
        update(float{});
        update(double{});
    };

    detail::run_or_capture_update(capture, advance_steps, enqueue_updates);
    write_back_master_weights(active);
}

std::map<std::string, Tensor> Adam::state_dict() const {
    const AdamOptions o = options();
    const double values[] = {
        o.lr, o.beta1, o.beta2, o.eps, o.weight_decay, o.amsgrad ? 1.0 : 0.0, o.maximize ? 1.0 : 0.0};
    std::map<std::string, Tensor> state;
    for (std::size_t k = 0; k < std::size(kHyperparameters); ++k) {
        state.emplace(detail::hyperparameter_key(kHyperparameters[k]), detail::scalar_tensor(values[k]));
    }
    for (std::size_t i = 0; i < state_.size(); ++i) {
        const ParameterState& s = state_[i];
        if (!s.exp_avg.defined()) continue;
        state.emplace(detail::state_key(i, "step"), detail::scalar_tensor(static_cast<double>(s.step)));
        state.emplace(detail::state_key(i, "exp_avg"), s.exp_avg.detach());
        state.emplace(detail::state_key(i, "exp_avg_sq"), s.exp_avg_sq.detach());
        if (options_.amsgrad) state.emplace(detail::state_key(i, "max_exp_avg_sq"), s.max_exp_avg_sq.detach());
    }
    add_master_weights(state);
    return state;
}

void Adam::load_state_dict(const std::map<std::string, Tensor>& state) {
    const std::string op = name() + "::load_state_dict";
    detail::StateDictReader reader(state, op, DType::Float64);  // as state_dict writes them
    AdamOptions o;
    o.lr = reader.scalar(detail::hyperparameter_key("lr"));
    o.beta1 = reader.scalar(detail::hyperparameter_key("beta1"));
    o.beta2 = reader.scalar(detail::hyperparameter_key("beta2"));
    o.eps = reader.scalar(detail::hyperparameter_key("eps"));
    o.weight_decay = reader.scalar(detail::hyperparameter_key("weight_decay"));
    o.amsgrad = reader.flag(detail::hyperparameter_key("amsgrad"));
    o.maximize = reader.flag(detail::hyperparameter_key("maximize"));
    validate(o, op);
    std::vector<ParameterState> loaded(parameters().size());
    for (std::size_t i = 0; i < loaded.size(); ++i) {
        if (!reader.has_state(i)) continue;
        const Tensor& p = parameters()[i];
        ParameterState& s = loaded[i];
        s.step = reader.count(detail::state_key(i, "step"));
        s.exp_avg = reader.buffer(i, "exp_avg", p);
        s.exp_avg_sq = reader.buffer(i, "exp_avg_sq", p);
        if (o.amsgrad) s.max_exp_avg_sq = reader.buffer(i, "max_exp_avg_sq", p);
    }
    std::vector<Tensor> masters = read_master_weights(reader);
    reader.finish();
    // Everything checked: now commit.
    set_learning_rate(o.lr);
    options_ = o;
    state_ = std::move(loaded);
    set_master_weights(std::move(masters));
}

}  // namespace convkit::optim
