#pragma once
// Generated 1-D signals: which of four waveforms is hidden in a noisy recording? Each signal
// holds one burst of a sine, square, triangle or sawtooth wave of random frequency, phase,
// amplitude and length, starting at a random time; around and on top of it is Gaussian noise.
// The class is the shape of one period, wherever and however long the burst is: exactly the
// kind of "the same pattern anywhere" problem a convolution is built for.
#include <cstdint>
#include <string>
#include <vector>

#include "convkit/tensor.h"

namespace convkit::samples {

enum Waveform : std::int64_t { kSine = 0, kSquare = 1, kTriangle = 2, kSawtooth = 3 };
inline constexpr std::int64_t kWaveformCount = 4;
const std::vector<std::string>& waveform_names();  // "sine", "square", "triangle", "sawtooth"

struct WaveformConfig {
    std::int64_t length = 128;  // samples per signal
    double noise_stddev = 0.25;  // against a wave amplitude of 0.7 .. 1
};

struct SignalSet {
    Tensor signals;  // float32 [N, 1, length]: one channel, as Conv1d expects
    Tensor labels;   // int64 [N]: a Waveform
};

// Signals first_index .. first_index + count - 1 of the stream `seed` (signal i depends only
// on (seed, i)); the labels cycle through the classes, so every class is equally common.
SignalSet generate_waveforms(std::int64_t count, const WaveformConfig& config, std::uint64_t seed,
                             std::int64_t first_index = 0);

}  // namespace convkit::samples
