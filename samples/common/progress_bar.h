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
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <string>

namespace convkit::samples {

class ProgressBar {
public:
    ProgressBar(std::string label, std::int64_t total_steps, std::FILE* out = stdout);
    ProgressBar(const ProgressBar&) = delete;
    ProgressBar& operator=(const ProgressBar&) = delete;

    // After each step: how many images it took, their mean loss, and how many it classified right.
    void step(std::int64_t images, double mean_loss, std::int64_t correct);
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
    std::int64_t correct_ = 0;
    double loss_sum_ = 0;  // sum over images of their loss
    bool finished_ = false;
};

}  // namespace convkit::samples
