// SGD: argument checks, state, and the dispatch of one update table per dtype to the host loop
// or the fused kernel. The arithmetic is backend_api/optimizer_math.h.
#include "convkit/optim/sgd.h"

#include <cmath>
#include <memory>

#include "convkit/autograd.h"
#include "core/check.h"
#include "optim/captured_update.h"
#include "optim/state_dict_support.h"

namespace convkit::optim {

namespace {

// PyTorch's checks, plus finiteness (a NaN hyperparameter would poison every parameter).
void validate(const SGDOptions& o, const std::string& op) {
    CONVKIT_REQUIRE(o.lr.has_value(), op, "lr is required (it has no default)");
    CONVKIT_REQUIRE(*o.lr >= 0 && std::isfinite(*o.lr), op, "invalid learning rate ", *o.lr,
                    " (must be finite and >= 0)");
    CONVKIT_REQUIRE(o.momentum >= 0 && std::isfinite(o.momentum), op, "invalid momentum ", o.momentum,
                    " (must be finite and >= 0)");
    CONVKIT_REQUIRE(std::isfinite(o.dampening), op, "invalid dampening ", o.dampening);
    CONVKIT_REQUIRE(o.weight_decay >= 0 && std::isfinite(o.weight_decay), op, "invalid weight_decay ", o.weight_decay,
                    " (must be finite and >= 0)");
    CONVKIT_REQUIRE(!o.nesterov || (o.momentum > 0 && o.dampening == 0), op,
                    "nesterov momentum requires momentum > 0 and dampening == 0, got momentum ", o.momentum,
                    " and dampening ", o.dampening);
}

const char* const kHyperparameters[] = {"lr", "momentum", "dampening", "weight_decay", "nesterov", "maximize"};

}  // namespace

SGD::SGD(std::vector<Tensor> parameters, SGDOptions options)
    : Optimizer("SGD", std::move(parameters), options.lr.value_or(0)), options_(options) {
    validate(options_, name());
    momentum_buffers_.resize(this->parameters().size());
}

SGDOptions SGD::options() const {
    SGDOptions o = options_;
    o.lr = learning_rate();
    return o;
}

void SGD::set_cycle_momentum(double momentum) {
    SGDOptions o = options();
    o.momentum = momentum;
    validate(o, name());
    options_.momentum = momentum;
}

void SGD::step() {
    NoGradGuard no_grad;
    const std::vector<std::size_t> active = parameters_with_grad();
    if (active.empty()) return;
    const std::vector<Tensor>& params = parameters();
    const bool use_momentum = options_.momentum != 0;
    detail::GraphCapture* capture = graph_capture("SGD::step", active);

    // A parameter's first step with momentum makes its buffer, which the update fills with d_p. A
    // capture cannot: every replay would take the first step's branch again.
    std::vector<bool> first_step(params.size(), false);
    const std::vector<UpdateOperands> operands = update_operands(active, "SGD::step");
    for (const std::size_t i : active) {
        if (!use_momentum || momentum_buffers_[i].defined()) continue;
        if (capture != nullptr) {
            detail::refuse_in_graph_capture(
                device().index, detail::concat("SGD::step of parameter ", i),
                "its first step with momentum creates the momentum buffer, which every "
                "replay would reset; run an eager step first (CapturedStep's warm-up does)");
        }
        momentum_buffers_[i] = Tensor::empty(params[i].shape(), state_dtype(i), params[i].device());
        first_step[i] = true;
    }
    const auto mark_written = [this, active] {
        for (const std::size_t i : active) {
            parameters()[i].mark_written_in_place("SGD::step");
            if (momentum_buffers_[i].defined()) momentum_buffers_[i].mark_written_in_place("SGD::step");
        }
    };

    // One table per dtype: on a GPU each is one launch for all its parameters. The learning rate
    // and momentum are read when the table is built: at each replay of a captured step.
    const auto enqueue_updates = [this, active, operands, first_step](detail::UpdatePhase phase,
                                                                      detail::DeviceUpdateTables* tables) {
        const bool momentum = options_.momentum != 0;
        const auto update = [&](auto zero) {
            using T = decltype(zero);
            std::vector<detail::SgdTensor<T>> table;
            for (const std::size_t i : active) {
                const UpdateOperands& o = operands[i];
                if (o.weights.dtype() != dtype_of<T> || o.weights.numel() == 0) continue;
                table.push_back({o.weights.data<T>(), o.grad.data<T>(),
                                 momentum ? momentum_buffers_[i].data<T>() : nullptr, parameters()[i].numel(),
                                 first_step[i]});
            }
            if (table.empty()) return;
            const auto c =
                detail::make_sgd_coefficients<T>(learning_rate(), options_.momentum, options_.dampening,
                                                 options_.weight_decay, options_.nesterov, options_.maximize);
            detail::run_update(device(), c, table, phase, tables);
        };
        update(float{});
        update(double{});
    };

    detail::run_or_capture_update(capture, mark_written, enqueue_updates);
    write_back_master_weights(active);
}

std::map<std::string, Tensor> SGD::state_dict() const {
    const SGDOptions o = options();
    const double values[] = {
        *o.lr, o.momentum, o.dampening, o.weight_decay, o.nesterov ? 1.0 : 0.0, o.maximize ? 1.0 : 0.0};
    std::map<std::string, Tensor> state;
    for (std::size_t k = 0; k < std::size(kHyperparameters); ++k) {
        state.emplace(detail::hyperparameter_key(kHyperparameters[k]), detail::scalar_tensor(values[k]));
    }
    for (std::size_t i = 0; i < momentum_buffers_.size(); ++i) {
        if (momentum_buffers_[i].defined()) {
            state.emplace(detail::state_key(i, "momentum_buffer"), momentum_buffers_[i].detach());
        }
    }
    add_master_weights(state);
    return state;
}

void SGD::load_state_dict(const std::map<std::string, Tensor>& state) {
    const std::string op = name() + "::load_state_dict";
    detail::StateDictReader reader(state, op, DType::Float64);  // as state_dict writes them
    SGDOptions o;
    o.lr = reader.scalar(detail::hyperparameter_key("lr"));
    o.momentum = reader.scalar(detail::hyperparameter_key("momentum"));
    o.dampening = reader.scalar(detail::hyperparameter_key("dampening"));
    o.weight_decay = reader.scalar(detail::hyperparameter_key("weight_decay"));
    o.nesterov = reader.flag(detail::hyperparameter_key("nesterov"));
    o.maximize = reader.flag(detail::hyperparameter_key("maximize"));
    validate(o, op);
    std::vector<Tensor> buffers(parameters().size());
    // A parameter has a momentum buffer once stepped with momentum; a 16-bit one may have only
    // master weights (stepped without momentum so far). A buffer without momentum, or any other
    // key, is left over and refused by finish().
    for (std::size_t i = 0; i < buffers.size(); ++i) {
        const std::string key = detail::state_key(i, "momentum_buffer");
        if (o.momentum != 0 && reader.has(key)) buffers[i] = reader.buffer(i, "momentum_buffer", parameters()[i]);
    }
    std::vector<Tensor> masters = read_master_weights(reader);
    reader.finish();
    // Everything checked: now commit.
    set_learning_rate(*o.lr);
    options_ = o;
    momentum_buffers_ = std::move(buffers);
    set_master_weights(std::move(masters));
}

}  // namespace convkit::optim
