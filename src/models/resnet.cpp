#include "convkit/models/resnet.h"

#include <string>

#include "convkit/ops/activation.h"
#include "convkit/ops/elementwise.h"
#include "convkit/ops/shape_ops.h"
#include "core/check.h"
#include "models/torchvision_init.h"

namespace convkit::models {

namespace {
std::shared_ptr<nn::Conv> conv(std::int64_t in, std::int64_t out, std::int64_t kernel, std::int64_t stride) {
    // No bias: the BatchNorm after each convolution supplies the shift.
    return std::make_shared<nn::Conv2d>(in, out, kernel, ConvParams(2).set_stride(stride).set_padding(kernel / 2),
                                        /*bias=*/false);
}

// The 1x1 projection of the shortcut where the block changes size or channels; else null.
std::shared_ptr<nn::Sequential> shortcut(std::int64_t in_channels, std::int64_t out_channels, std::int64_t stride) {
    if (stride == 1 && in_channels == out_channels) return nullptr;
    return std::make_shared<nn::Sequential>(std::vector<std::shared_ptr<nn::Module>>{
        conv(in_channels, out_channels, 1, stride), std::make_shared<nn::BatchNorm2d>(out_channels)});
}

Tensor shortcut_of(const std::shared_ptr<nn::Sequential>& downsample, const Tensor& input) {
    return downsample ? (*downsample)(input) : input;
}

}  // namespace

namespace detail {
namespace {
// A shortcut (1x1 convolution, BatchNorm) as a new Sequential of the folded convolution and an
// Identity; null when there is none or it is folded already.
std::shared_ptr<nn::Sequential> folded_shortcut(const std::shared_ptr<nn::Sequential>& downsample) {
    if (downsample == nullptr) return nullptr;
    const auto bn = std::dynamic_pointer_cast<nn::BatchNorm>((*downsample)[1]);
    if (bn == nullptr) return nullptr;  // folded
    const auto conv = std::dynamic_pointer_cast<nn::Conv>((*downsample)[0]);
    CONVKIT_REQUIRE(conv != nullptr, "ResNet::fold_batch_norms", "the shortcut's first module is a ",
                    (*downsample)[0]->type_name(), ", not a convolution");
    auto folded = std::make_shared<nn::Sequential>(
        std::vector<std::shared_ptr<nn::Module>>{nn::fold_batch_norm(*conv, *bn), std::make_shared<nn::Identity>()});
    folded->train(downsample->is_training());
    return folded;
}
}  // namespace

void ResNetPart::fold_all(std::initializer_list<FoldSlot> slots, std::shared_ptr<nn::Sequential>* downsample) {
    std::vector<std::shared_ptr<nn::Conv>> folded;
    for (const FoldSlot& slot : slots) folded.push_back(slot.bn ? nn::fold_batch_norm(*slot.conv, *slot.bn) : nullptr);
    const std::shared_ptr<nn::Sequential> shortcut = downsample ? folded_shortcut(*downsample) : nullptr;
    // Nothing refused: now the children change.
    auto next = folded.begin();
    for (const FoldSlot& slot : slots) {
        if (const std::shared_ptr<nn::Conv>& conv = *next++) {
            slot.conv = conv;
            replace_child(slot.conv_name, conv);
            replace_child(slot.bn_name, std::make_shared<nn::Identity>());
            slot.bn = nullptr;
        }
    }
    if (shortcut != nullptr) {
        *downsample = shortcut;
        replace_child("downsample", shortcut);
    }
}
}  // namespace detail

namespace {
nn::BatchNorm2d& unfolded(const std::shared_ptr<nn::BatchNorm2d>& bn, const char* where) {
    CONVKIT_REQUIRE(bn != nullptr, where, "the BatchNorms were folded into the convolutions (fold_batch_norms)");
    return *bn;
}

void require_evaluation_mode(const nn::Module& module, const char* where) {
    CONVKIT_REQUIRE(!module.is_training(), where,
                    "the model is in training mode; folding uses the BatchNorms' running statistics (call eval() "
                    "first)");
}
}  // namespace

BasicBlock::BasicBlock(std::int64_t in_channels, std::int64_t planes, std::int64_t stride)
    : conv1_(register_module("conv1", conv(in_channels, planes, 3, stride))),
      bn1_(register_module("bn1", std::make_shared<nn::BatchNorm2d>(planes))),
      conv2_(register_module("conv2", conv(planes, planes, 3, 1))),
      bn2_(register_module("bn2", std::make_shared<nn::BatchNorm2d>(planes))) {
    if (auto projection = shortcut(in_channels, planes * kExpansion, stride)) {
        downsample_ = register_module("downsample", projection);
    }
}

Tensor BasicBlock::forward(const Tensor& input) {
    if (bn1_ == nullptr) {  // folded: the epilogues carry the ReLUs and the residual add
        const Tensor shortcut = shortcut_of(downsample_, input);
        return conv2_->forward_with(conv1_->forward_with(input, {.residual = Tensor(), .relu = true}),
                                    {shortcut, true});
    }
    const Tensor branch = (*bn2_)((*conv2_)(bn1_->forward_relu((*conv1_)(input))));
    return relu(branch + shortcut_of(downsample_, input));
}

nn::BatchNorm2d& BasicBlock::last_norm() {
    return unfolded(bn2_, "BasicBlock::last_norm");
}

void BasicBlock::fold_batch_norms() {
    require_evaluation_mode(*this, "BasicBlock::fold_batch_norms");
    fold_all({{"conv1", conv1_, "bn1", bn1_}, {"conv2", conv2_, "bn2", bn2_}}, &downsample_);
}

Bottleneck::Bottleneck(std::int64_t in_channels, std::int64_t planes, std::int64_t stride)
    : conv1_(register_module("conv1", conv(in_channels, planes, 1, 1))),
      bn1_(register_module("bn1", std::make_shared<nn::BatchNorm2d>(planes))),
      conv2_(register_module("conv2", conv(planes, planes, 3, stride))),
      bn2_(register_module("bn2", std::make_shared<nn::BatchNorm2d>(planes))),
      conv3_(register_module("conv3", conv(planes, planes * kExpansion, 1, 1))),
      bn3_(register_module("bn3", std::make_shared<nn::BatchNorm2d>(planes * kExpansion))) {
    if (auto projection = shortcut(in_channels, planes * kExpansion, stride)) {
        downsample_ = register_module("downsample", projection);
    }
}

Tensor Bottleneck::forward(const Tensor& input) {
    if (bn1_ == nullptr) {  // folded
        const Tensor shortcut = shortcut_of(downsample_, input);
        const Tensor reduced = conv1_->forward_with(input, {.residual = Tensor(), .relu = true});
        return conv3_->forward_with(conv2_->forward_with(reduced, {.residual = Tensor(), .relu = true}),
                                    {shortcut, true});
    }
    const Tensor reduced = bn1_->forward_relu((*conv1_)(input));
    const Tensor spatial = bn2_->forward_relu((*conv2_)(reduced));
    const Tensor branch = (*bn3_)((*conv3_)(spatial));
    return relu(branch + shortcut_of(downsample_, input));
}

nn::BatchNorm2d& Bottleneck::last_norm() {
    return unfolded(bn3_, "Bottleneck::last_norm");
}

void Bottleneck::fold_batch_norms() {
    require_evaluation_mode(*this, "Bottleneck::fold_batch_norms");
    fold_all({{"conv1", conv1_, "bn1", bn1_}, {"conv2", conv2_, "bn2", bn2_}, {"conv3", conv3_, "bn3", bn3_}},
             &downsample_);
}

ResNet::ResNet(ResNetBlock block, const std::array<int, 4>& blocks_per_stage, const ResNetOptions& options) {
    CONVKIT_REQUIRE(options.num_classes > 0 && options.in_channels > 0, "ResNet", "num_classes ", options.num_classes,
                    " and in_channels ", options.in_channels, " must be positive");
    for (int blocks : blocks_per_stage) {
        CONVKIT_REQUIRE(blocks > 0, "ResNet", "every stage needs at least one block, got ", blocks);
    }
    conv1_ = register_module("conv1", conv(options.in_channels, 64, 7, 2));
    bn1_ = register_module("bn1", std::make_shared<nn::BatchNorm2d>(64));
    relu_ = register_module("relu", std::make_shared<nn::ReLU>());
    maxpool_ =
        register_module("maxpool", std::make_shared<nn::MaxPool2d>(PoolParams(2, 3).set_stride(2).set_padding(1)));
    const std::int64_t planes[4] = {64, 128, 256, 512};
    for (int s = 0; s < 4; ++s) {
        stages_[static_cast<std::size_t>(s)] = register_module(
            "layer" + std::to_string(s + 1),
            make_stage(block, planes[s], blocks_per_stage[static_cast<std::size_t>(s)], s == 0 ? 1 : 2));
    }
    feature_count_ = in_channels_;
    avgpool_ = register_module("avgpool", std::make_shared<nn::AdaptiveAvgPool2d>(1));
    fc_ = register_module("fc", std::make_shared<nn::Linear>(feature_count_, options.num_classes));
    detail::torchvision_initialise(*this, detail::LinearInit::PyTorchDefault);
    if (options.zero_init_residual) {
        for (auto& [name, module] : named_modules()) {
            Tensor weight;
            if (auto* basic = dynamic_cast<BasicBlock*>(module)) weight = basic->last_norm().weight();
            if (auto* bottleneck = dynamic_cast<Bottleneck*>(module)) weight = bottleneck->last_norm().weight();
            if (weight.defined()) nn::init::constant_(weight, 0.0);
        }
    }
}

std::shared_ptr<nn::Sequential> ResNet::make_stage(ResNetBlock block, std::int64_t planes, int blocks,
                                                   std::int64_t stride) {
    auto stage = std::make_shared<nn::Sequential>();
    for (int i = 0; i < blocks; ++i) {
        const std::int64_t block_stride = i == 0 ? stride : 1;
        if (block == ResNetBlock::Basic) {
            stage->push_back(std::make_shared<BasicBlock>(in_channels_, planes, block_stride));
            in_channels_ = planes * BasicBlock::kExpansion;
        } else {
            stage->push_back(std::make_shared<Bottleneck>(in_channels_, planes, block_stride));
            in_channels_ = planes * Bottleneck::kExpansion;
        }
    }
    return stage;
}

Tensor ResNet::features(const Tensor& input) {
    Tensor x = bn1_ == nullptr ? (*maxpool_)(conv1_->forward_with(input, {.residual = Tensor(), .relu = true}))
                               : (*maxpool_)((*relu_)((*bn1_)((*conv1_)(input))));
    for (auto& stage : stages_) x = (*stage)(x);
    return flatten((*avgpool_)(x), 1);
}

Tensor ResNet::forward(const Tensor& input) {
    return (*fc_)(features(input));
}

void ResNet::reset_classifier(std::int64_t num_classes) {
    CONVKIT_REQUIRE(num_classes > 0, "ResNet::reset_classifier", "num_classes must be positive, got ", num_classes);
    auto fresh = std::make_shared<nn::Linear>(feature_count_, num_classes);
    fresh->to(fc_->weight().dtype());
    fresh->to(fc_->weight().device());
    replace_child("fc", fresh);
    fc_ = fresh;
}

void ResNet::fold_batch_norms() {
    require_evaluation_mode(*this, "ResNet::fold_batch_norms");
    fold_all({{"conv1", conv1_, "bn1", bn1_}}, nullptr);
    for (auto& stage : stages_) {
        for (std::size_t i = 0; i < stage->size(); ++i) {
            if (auto* basic = dynamic_cast<BasicBlock*>((*stage)[i].get())) basic->fold_batch_norms();
            if (auto* bottleneck = dynamic_cast<Bottleneck*>((*stage)[i].get())) bottleneck->fold_batch_norms();
        }
    }
}

void ResNet::freeze_backbone() {
    for (auto& [name, parameter] : named_parameters()) {
        if (name.rfind("fc.", 0) != 0) parameter.set_requires_grad(false);
    }
}

std::shared_ptr<ResNet> resnet18(const ResNetOptions& options) {
    return std::make_shared<ResNet>(ResNetBlock::Basic, std::array<int, 4>{2, 2, 2, 2}, options);
}
std::shared_ptr<ResNet> resnet34(const ResNetOptions& options) {
    return std::make_shared<ResNet>(ResNetBlock::Basic, std::array<int, 4>{3, 4, 6, 3}, options);
}
std::shared_ptr<ResNet> resnet50(const ResNetOptions& options) {
    return std::make_shared<ResNet>(ResNetBlock::Bottleneck, std::array<int, 4>{3, 4, 6, 3}, options);
}

}  // namespace convkit::models
