#pragma once
// ResNet-18/34/50 (He et al., 2015) with torchvision's module names, so that state dicts move
// between convkit and torchvision unchanged: conv1, bn1, layer1.0.conv1, layer1.0.downsample.0,
// ..., fc. ResNet-50 is "v1.5": a Bottleneck's stride sits in its 3x3 convolution.
//
//   auto model = models::resnet18({.num_classes = 10});
//   nn::load(*model, "resnet18.safetensors");      // scripts/export-torchvision writes one
//   Tensor logits = (*model)(images);               // [N, 3, H, W] -> [N, 10], any H, W >= 32
#include <array>
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <string>

#include "convkit/nn.h"

namespace convkit::models {

struct ResNetOptions {
    std::int64_t num_classes = 1000;
    std::int64_t in_channels = 3;
    // Start each residual branch's last BatchNorm at zero, so every block begins as the identity
    // (torchvision's zero_init_residual; helps training from scratch).
    bool zero_init_residual = false;
};

namespace detail {
// What the ResNet modules share for fold_batch_norms: folding their BatchNorms into the
// convolutions before them and putting the results in the children's places.
class ResNetPart : public nn::Module {
protected:
    // A convolution and the BatchNorm after it, by member and by child name.
    struct FoldSlot {
        const char* conv_name;
        std::shared_ptr<nn::Conv>& conv;
        const char* bn_name;
        std::shared_ptr<nn::BatchNorm2d>& bn;  // null once folded
    };
    // Every slot's BatchNorm (and the shortcut's, when `downsample` is given and not null)
    // folded into its convolution (nn::fold_batch_norm), the folded convolution registered in
    // the old one's place and the BatchNorm left as an nn::Identity, its member reset to null.
    // All or nothing: every fold is computed before any child is replaced, so a refusal (a
    // BatchNorm in training mode, without running statistics) leaves the module as it was.
    void fold_all(std::initializer_list<FoldSlot> slots, std::shared_ptr<nn::Sequential>* downsample);
};
}  // namespace detail

// Two 3x3 convolutions with a shortcut: relu(bn2(conv2(relu(bn1(conv1(x))))) + shortcut(x)).
// The shortcut is `downsample` (1x1 convolution + BatchNorm) where the shape changes.
class BasicBlock : public detail::ResNetPart {
public:
    static constexpr std::int64_t kExpansion = 1;
    BasicBlock(std::int64_t in_channels, std::int64_t planes, std::int64_t stride);
    Tensor forward(const Tensor& input) override;
    std::string type_name() const override { return "BasicBlock"; }
    // The residual branch's last BatchNorm (zero_init_residual); InvalidArgument once folded.
    nn::BatchNorm2d& last_norm();
    // For inference (evaluation mode): each BatchNorm folded into the convolution before it
    // (nn::fold_batch_norm) and left as an nn::Identity, so the block is two convolutions whose
    // epilogues carry the ReLUs and the residual add: relu(conv2'(relu(conv1'(x))) + shortcut(x)).
    void fold_batch_norms();

private:
    std::shared_ptr<nn::Conv> conv1_;
    std::shared_ptr<nn::BatchNorm2d> bn1_;  // null once folded
    std::shared_ptr<nn::Conv> conv2_;
    std::shared_ptr<nn::BatchNorm2d> bn2_;
    std::shared_ptr<nn::Sequential> downsample_;  // null: the identity
};

// 1x1 (reduce to `planes`), 3x3 (with the stride), 1x1 (expand to 4 * planes), and a shortcut.
class Bottleneck : public detail::ResNetPart {
public:
    static constexpr std::int64_t kExpansion = 4;
    Bottleneck(std::int64_t in_channels, std::int64_t planes, std::int64_t stride);
    Tensor forward(const Tensor& input) override;
    std::string type_name() const override { return "Bottleneck"; }
    nn::BatchNorm2d& last_norm();
    // As BasicBlock::fold_batch_norms: three convolutions, the last adding the shortcut.
    void fold_batch_norms();

private:
    std::shared_ptr<nn::Conv> conv1_;
    std::shared_ptr<nn::BatchNorm2d> bn1_;  // null once folded
    std::shared_ptr<nn::Conv> conv2_;
    std::shared_ptr<nn::BatchNorm2d> bn2_;
    std::shared_ptr<nn::Conv> conv3_;
    std::shared_ptr<nn::BatchNorm2d> bn3_;
    std::shared_ptr<nn::Sequential> downsample_;
};

enum class ResNetBlock { Basic, Bottleneck };

// The stem (7x7/2 convolution, BatchNorm, ReLU, 3x3/2 max pooling), four stages of blocks
// (64, 128, 256, 512 planes; stride 2 from the second on), global average pooling and `fc`.
class ResNet : public detail::ResNetPart {
public:
    ResNet(ResNetBlock block, const std::array<int, 4>& blocks_per_stage, const ResNetOptions& options);
    Tensor forward(const Tensor& input) override;
    std::string type_name() const override { return "ResNet"; }

    // Everything but `fc`: [N, C, H, W] -> [N, feature_count()] (the pooled features).
    Tensor features(const Tensor& input);
    std::int64_t feature_count() const { return feature_count_; }
    nn::Linear& fc() { return *fc_; }
    // A new, freshly initialised `fc` for `num_classes` (transfer learning).
    void reset_classifier(std::int64_t num_classes);
    // requires_grad off for every parameter but fc's (a frozen backbone).
    void freeze_backbone();
    // For inference, in evaluation mode: every BatchNorm folded into the convolution before it
    // (the stem's and each block's, shortcuts included; nn::fold_batch_norm), the ReLUs and
    // residual adds carried by the convolutions' epilogues (fused into the output pass on
    // cuda.igemm). The same outputs to rounding; the state dict loses the BatchNorms' entries and
    // gains the convolutions' biases (as PyTorch's fuse_modules). InvalidArgument in training mode;
    // a BatchNorm that refuses (in training mode on its own, without running statistics) leaves
    // its block as it was, and each part computes the same either way.
    void fold_batch_norms();

private:
    std::shared_ptr<nn::Sequential> make_stage(ResNetBlock block, std::int64_t planes, int blocks, std::int64_t stride);

    std::int64_t in_channels_ = 64;  // the running channel count while the stages are built
    std::int64_t feature_count_ = 0;
    std::shared_ptr<nn::Conv> conv1_;
    std::shared_ptr<nn::BatchNorm2d> bn1_;  // null once folded
    std::shared_ptr<nn::ReLU> relu_;
    std::shared_ptr<nn::MaxPool2d> maxpool_;
    std::array<std::shared_ptr<nn::Sequential>, 4> stages_;
    std::shared_ptr<nn::AdaptiveAvgPool> avgpool_;
    std::shared_ptr<nn::Linear> fc_;
};

std::shared_ptr<ResNet> resnet18(const ResNetOptions& options = {});
std::shared_ptr<ResNet> resnet34(const ResNetOptions& options = {});
std::shared_ptr<ResNet> resnet50(const ResNetOptions& options = {});

}  // namespace convkit::models
