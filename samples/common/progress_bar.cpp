#include "common/progress_bar.h"

#include <unistd.h>

#include <algorithm>
#include <cmath>

#include "convkit/ops/elementwise.h"

namespace convkit::samples {

namespace {
constexpr int kBarWidth = 20;
constexpr auto kRedrawInterval = std::chrono::milliseconds(100);
constexpr std::int64_t kPlainLinesPerBar = 5;
}  // namespace

ProgressBar::ProgressBar(std::string label, std::int64_t total_steps, std::FILE* out)
    : label_(std::move(label)),
      total_steps_(std::max<std::int64_t>(total_steps, 1)),
      out_(out),
      redraw_in_place_(::isatty(::fileno(out)) != 0),
      start_(std::chrono::steady_clock::now()),
      last_draw_(start_) {}

ProgressBar::~ProgressBar() {
    finish();
}

void ProgressBar::step(std::int64_t images, double mean_loss, std::int64_t correct) {
    correct_ += correct;
    loss_sum_ += mean_loss * static_cast<double>(images);
    advance(images);
}

void ProgressBar::step(std::int64_t images, const Tensor& mean_loss, const Tensor& correct) {
    const Tensor loss_sum = mean_loss.detach().to(DType::Float64) * static_cast<double>(images);
    const Tensor count = correct.to(DType::Float64);
    pending_loss_sum_ = pending_loss_sum_.defined() ? pending_loss_sum_ + loss_sum : loss_sum;
    pending_correct_ = pending_correct_.defined() ? pending_correct_ + count : count;
    advance(images);
}

void ProgressBar::settle() const {
    if (!pending_loss_sum_.defined()) return;
    loss_sum_ += pending_loss_sum_.to(Device::host()).item(0);
    correct_ += std::llround(pending_correct_.to(Device::host()).item(0));
    pending_loss_sum_ = Tensor();
    pending_correct_ = Tensor();
}

void ProgressBar::advance(std::int64_t images) {
    ++steps_;
    images_ += images;
    if (redraw_in_place_) {
        const auto now = std::chrono::steady_clock::now();
        if (now - last_draw_ >= kRedrawInterval) {
            last_draw_ = now;
            draw(false);
        }
    } else {
        // A line each time the step count crosses a fifth of the total.
        const std::int64_t every = std::max<std::int64_t>(total_steps_ / kPlainLinesPerBar, 1);
        if (steps_ % every == 0 && steps_ < total_steps_) draw(false);
    }
}

void ProgressBar::finish() {
    if (finished_) return;
    finished_ = true;
    draw(true);
}

double ProgressBar::mean_loss() const {
    settle();
    return images_ > 0 ? loss_sum_ / static_cast<double>(images_) : NAN;
}
double ProgressBar::accuracy() const {
    settle();
    return images_ > 0 ? static_cast<double>(correct_) / static_cast<double>(images_) : NAN;
}
double ProgressBar::seconds() const {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
}
double ProgressBar::images_per_second() const {
    const double s = seconds();
    return s > 0 ? static_cast<double>(images_) / s : 0.0;
}

void ProgressBar::draw(bool final_line) {
    if (final_line && !redraw_in_place_ && last_drawn_step_ == steps_) return;
    last_drawn_step_ = steps_;
    const int filled = static_cast<int>(std::min<std::int64_t>(steps_, total_steps_) * kBarWidth / total_steps_);
    std::string bar(static_cast<std::size_t>(kBarWidth), ' ');
    std::fill_n(bar.begin(), filled, '=');
    if (filled < kBarWidth) bar[static_cast<std::size_t>(filled)] = '>';
    const int digits = static_cast<int>(std::to_string(total_steps_).size());
    std::fprintf(out_, "%s%s [%s] %*lld/%lld  loss %.4f  acc %.4f  %.0f img/s%s", redraw_in_place_ ? "\r" : "",
                 label_.c_str(), bar.c_str(), digits, static_cast<long long>(steps_),
                 static_cast<long long>(total_steps_), mean_loss(), accuracy(), images_per_second(),
                 redraw_in_place_ ? "\x1b[K" : "\n");  // \x1b[K: clear what a longer line left behind
    if (redraw_in_place_ && final_line) std::fputc('\n', out_);
    std::fflush(out_);
}

}  // namespace convkit::samples
