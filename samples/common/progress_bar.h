#pragma once
// The progress line of a training epoch or an evaluation pass: step/total, running loss,
// running accuracy and images per second.
//   on a terminal:  one line redrawn in place with '\r' (at most ten times a second);
//   otherwise:      (a log, CI, a pipe) a plain line at every fifth of the steps.
//
//   ProgressBar bar("epoch 1/10", loader.batches_per_epoch());
//   for (...) { ...; bar.step(batch_size, loss, correct); }
//   bar.finish();
//
//   epoch 1/10 [=========>          ]  469/938  loss 0.5123  acc 0.8132  1843 img/s
//
// Given the loss and the correct count as tensors (a CUDA training step's), the bar adds them up
// on their device and reads the sums only when it draws, so the steps between draws never wait
// for the device.
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <string>

#include "convkit/tensor.h"

namespace convkit::samples {

class ProgressBar {
public:
    ProgressBar(std::string label, std::int64_t total_steps, std::FILE* out = stdout);
    ProgressBar(const ProgressBar&) = delete;
    ProgressBar& operator=(const ProgressBar&) = delete;

    // After each step: how many images it took, their mean loss, and how many it classified right.
    void step(std::int64_t images, double mean_loss, std::int64_t correct);
    // The same with the step's mean loss and correct count as one-element tensors on any device
    // (cross_entropy's loss, correct_predictions' count): added up there, read when drawn.
    void step(std::int64_t images, const Tensor& mean_loss, const Tensor& correct);
    // Shows the final state and ends the line. Called by the destructor if not before.
    void finish();
    ~ProgressBar();

    // Means over the images seen so far.
    double mean_loss() const;
    double accuracy() const;
    double images_per_second() const;
    double seconds() const;
    std::int64_t images() const { return images_; }

private:
    void advance(std::int64_t images);
    // Adds the sums still on the device to the host's (waits for the device if there are any).
    void settle() const;
    void draw(bool final_line);

    std::string label_;
    std::int64_t total_steps_;
    std::FILE* out_;
    bool redraw_in_place_;
    std::chrono::steady_clock::time_point start_;
    std::chrono::steady_clock::time_point last_draw_;
    std::int64_t steps_ = 0;
    std::int64_t last_drawn_step_ = -1;
    std::int64_t images_ = 0;
    // Settled: read from the device already (or given as numbers).
    mutable std::int64_t correct_ = 0;
    mutable double loss_sum_ = 0;  // sum over images of their loss
    // Not yet settled: float64 scalars on the steps' device, undefined when nothing is pending.
    mutable Tensor pending_correct_;
    mutable Tensor pending_loss_sum_;
    bool finished_ = false;
};

}  // namespace convkit::samples
