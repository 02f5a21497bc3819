#include "sequence_1d/waveforms.h"

#include <cmath>
#include <numbers>
#include <random>

namespace convkit::samples {

const std::vector<std::string>& waveform_names() {
    static const std::vector<std::string> names{"sine", "square", "triangle", "sawtooth"};
    return names;
}

namespace {

// One period of each wave as a function of the phase in [0, 1), with values in [-1, 1].
double wave_value(Waveform kind, double phase) {
    switch (kind) {
        case kSine: return std::sin(2 * std::numbers::pi * phase);
        case kSquare: return phase < 0.5 ? 1.0 : -1.0;
        case kTriangle: return phase < 0.5 ? 4 * phase - 1 : 3 - 4 * phase;
        case kSawtooth: return 2 * phase - 1;
    }
    return 0;
}

void draw_signal(std::mt19937_64& rng, const WaveformConfig& config, Waveform kind, float* signal) {
    std::uniform_real_distribution<double> unit(0.0, 1.0);
    std::normal_distribution<double> noise(0.0, config.noise_stddev);
    const auto length = static_cast<double>(config.length);
    // A burst of at least 40% of the signal, placed anywhere it fits: the time shift.
    const double burst = length * (0.4 + 0.6 * unit(rng));
    const double begin = (length - burst) * unit(rng);
    const double period = 10 + 22 * unit(rng);  // samples per period: 2 to 12 periods per burst
    const double phase0 = unit(rng);
    const double amplitude = 0.7 + 0.3 * unit(rng);
    for (std::int64_t t = 0; t < config.length; ++t) {
        const double time = static_cast<double>(t);
        double value = noise(rng);
        if (time >= begin && time < begin + burst) {
            const double phase = std::fmod(phase0 + (time - begin) / period, 1.0);
            value += amplitude * wave_value(kind, phase);
        }
        signal[t] = static_cast<float>(value);
    }
}

}  // namespace

SignalSet generate_waveforms(std::int64_t count, const WaveformConfig& config, std::uint64_t seed,
                             std::int64_t first_index) {
    SignalSet set{Tensor::zeros(Shape{count, 1, config.length}), Tensor::zeros(Shape{count}, DType::Int64)};
    for (std::int64_t i = 0; i < count; ++i) {
        const std::int64_t index = first_index + i;
        std::seed_seq seq{seed, static_cast<std::uint64_t>(index)};
        std::mt19937_64 rng(seq);
        const auto kind = static_cast<Waveform>(index % kWaveformCount);
        set.labels.data<std::int64_t>()[i] = kind;
        draw_signal(rng, config, kind, set.signals.data<float>() + i * config.length);
    }
    return set;
}

}  // namespace convkit::samples
