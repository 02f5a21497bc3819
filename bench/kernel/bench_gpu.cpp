#include "bench_gpu.h"

#include <cuda_runtime_api.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <ctime>
#include <fstream>
#include <functional>
#include <iostream>
#include <regex>
#include <sstream>

#include "bench_passes.h"
#include "convkit/convkit.h"
#ifdef CONVKIT_WITH_CUDNN
#include "backends/cudnn/cudnn_epilogue_route.h"
#endif
#include "cuda/cublas_api.h"
#include "cuda/cublas_check.h"
#include "cuda/cuda_check.h"
#include "cuda/cuda_runtime.h"

namespace convkit::bench {

namespace {

// Events recorded around each run on the current stream. All runs are enqueued before the one
// synchronization, so the GPU runs them back to back and host-side gaps are not measured unless
// the host cannot keep up (then they are part of the op's real cost).
std::vector<double> time_runs(const std::function<void()>& run, int runs, cudaStream_t stream) {
    std::vector<cudaEvent_t> events(2 * static_cast<std::size_t>(runs));
    for (cudaEvent_t& event : events) CONVKIT_CHECK_CUDA(cudaEventCreate(&event));
    std::vector<double> times;
    try {
        for (int i = 0; i < runs; ++i) {
            CONVKIT_CHECK_CUDA(cudaEventRecord(events[2 * static_cast<std::size_t>(i)], stream));
            run();
            CONVKIT_CHECK_CUDA(cudaEventRecord(events[2 * static_cast<std::size_t>(i) + 1], stream));
        }
        CONVKIT_CHECK_CUDA(cudaEventSynchronize(events.back()));
        for (int i = 0; i < runs; ++i) {
            float ms = 0;
            CONVKIT_CHECK_CUDA(cudaEventElapsedTime(&ms, events[2 * static_cast<std::size_t>(i)],
                                                    events[2 * static_cast<std::size_t>(i) + 1]));
            times.push_back(ms);
        }
    } catch (...) {
        for (cudaEvent_t event : events) cudaEventDestroy(event);
        throw;
    }
    for (cudaEvent_t event : events) CONVKIT_CHECK_CUDA(cudaEventDestroy(event));
    return times;
}

cudaStream_t stream_of(int device) {
    return detail::to_cuda(current_stream(device));
}

std::string utc_now() {
    const std::time_t now = std::time(nullptr);
    std::tm parts{};
    gmtime_r(&now, &parts);
    char text[32];
    std::strftime(text, sizeof text, "%Y-%m-%dT%H:%M:%SZ", &parts);
    return text;
}

// The kernel module's version ("550.54.15"); the runtime only knows the CUDA version it supports.
std::string driver_version() {
    std::ifstream file("/proc/driver/nvidia/version");
    std::string line;
    std::getline(file, line);
    std::smatch match;
    if (std::regex_search(line, match, std::regex(R"(Kernel Module\s+(\S+))"))) return match[1];
    int version = 0;
    if (cudaDriverGetVersion(&version) != cudaSuccess) return "unknown";
    return "supports CUDA " + std::to_string(version / 1000) + "." + std::to_string(version % 1000 / 10);
}

std::string cudnn_version() {
    // build_info() has "cuDNN compiled 9.1.0, loaded 9.1.0" (or why it is not built).
    std::istringstream lines(build_info());
    for (std::string line; std::getline(lines, line);) {
        if (line.rfind("cuDNN ", 0) != 0) continue;
        const auto loaded = line.find("loaded ");
        return loaded == std::string::npos ? line.substr(6) : line.substr(loaded + 7);
    }
    return "unknown";
}

double median_of(std::vector<double> times) {
    return summarize(std::move(times)).median_ms;
}

// The two sides of a comparison (SideGuard below sets one up).
enum class Side { Convkit, Cudnn };

// One pass of the row's op on `side`. cuDNN has no adaptive pooling: its side runs the average
// pooling with the same windows (BenchConfig::pool), the same result.
Tensor run_pass(const BenchConfig& c, Direction direction, const InputSet& s, Side side) {
    const BenchOp op = c.op == BenchOp::AdaptiveAvgPool && side == Side::Cudnn ? BenchOp::AvgPool : c.op;
    const ConvEpilogue epilogue{s.residual, c.epilogue.relu};
    switch (op) {
        case BenchOp::Conv:
            if (direction == Direction::Forward) return conv_forward(s.x, s.w, s.bias, c.conv, epilogue);
            if (direction == Direction::BackwardData) return conv_backward_data(s.dy, s.w, c.input, c.conv);
            return conv_backward_filter(s.dy, s.x, c.weight, c.conv);
        case BenchOp::ConvTranspose:
            if (direction == Direction::Forward) return conv_transpose_forward(s.x, s.w, s.bias, c.conv, epilogue);
            if (direction == Direction::BackwardData) return conv_transpose_backward_data(s.dy, s.w, c.input, c.conv);
            return conv_transpose_backward_filter(s.dy, s.x, c.weight, c.conv);
        case BenchOp::MaxPool:
            if (direction == Direction::Forward) return max_pool_forward(s.x, c.pool);
            return max_pool_backward(s.dy, s.x, c.pool);
        case BenchOp::AvgPool:
            if (direction == Direction::Forward) return avg_pool_forward(s.x, c.pool);
            return avg_pool_backward(s.dy, c.input, c.pool);
        case BenchOp::AdaptiveAvgPool:
            if (direction == Direction::Forward) return adaptive_avg_pool_forward(s.x, c.adaptive_output);
            return adaptive_avg_pool_backward(s.dy, c.input);
        case BenchOp::BatchNorm:
        case BenchOp::Relu:
        case BenchOp::Add:
            break;
    }
    if (side == Side::Cudnn) throw NotSupported("convkit-bench: the layer rows have no cuDNN side");
    return direction == Direction::Forward ? layer_forward(c, s) : layer_backward(s);
}

// How cuDNN's side ran an epilogue row's epilogue (its fused call, or separate calls and why),
// after its first pass; "" for a row without one.
std::string cudnn_epilogue_note(const BenchConfig& config) {
    if (!config.epilogue.any()) return "";
#ifdef CONVKIT_WITH_CUDNN
    return "cudnn epilogue: " + detail::cudnn_last_epilogue_route();
#else
    return "";
#endif
}

// sum((a - b)^2) and sum(b^2) on the GPU with the hand-written kernels, in float32 whatever the
// results' dtype.
double backends_difference(const Tensor& convkit_result, const Tensor& cudnn_result) {
    BackendGuard guard(Backend::Cuda);
    const Tensor ours = convkit_result.to(DType::Float32), theirs = cudnn_result.to(DType::Float32);
    const double difference = sum(square(ours - theirs)).to_vector()[0];
    const double reference = sum(square(theirs)).to_vector()[0];
    return relative_l2_error(difference, reference);
}

// One side of a comparison for a scope: cuDNN, or convkit's hand-written kernels (the Cuda
// backend), or the variant --variant names for every convolution (and pooling, where that
// variant pools) pass.
class SideGuard {
public:
    SideGuard(Side side, const Options& options) : backend_(side == Side::Convkit ? Backend::Cuda : Backend::Cudnn) {
        // Nothing from the environment (CONVKIT_CONV_VARIANT, measured selection) may change a side.
        set_conv_variant("");
        set_pool_variant("");
        set_variant_selection(VariantSelection::Default);
        if (side != Side::Convkit || options.variant.empty()) return;
        set_conv_variant(options.variant);
        for (const VariantInfo& v : registered_variants()) {
            if (v.family == "pool" && v.name == options.variant) {
                set_pool_variant(options.variant);
                break;
            }
        }
    }

private:
    BackendGuard backend_;
    VariantGuard variants_;
};

TimingStats time_backend(Side side, const std::function<Tensor(const InputSet&)>& pass,
                         const std::vector<InputSet>& sets, const Options& options) {
    SideGuard guard(side, options);
    const cudaStream_t stream = stream_of(options.device);
    std::size_t next = 0;
    const auto run = [&] {
        (void)pass(sets[next]);
        next = (next + 1) % sets.size();
    };
    for (int i = 0; i < options.warmup; ++i) run();
    const double first_ms = median_of(time_runs(run, 1, stream));
    const int runs = repetitions_for(first_ms, options.budget_ms, options.min_repeat, options.repeat);
    return summarize(time_runs(run, runs, stream));
}

std::vector<InputSet> make_sets(const BenchConfig& config, std::size_t l2_bytes, int device) {
    const Device gpu = Device::cuda(device);
    const Shape out = config.output_shape();
    const bool has_weight = is_conv(config.op);
    const bool second_operand = config.epilogue.residual || config.op == BenchOp::Add;
    const std::size_t set_bytes =
        4 * static_cast<std::size_t>(config.input.numel() + out.numel() * (second_operand ? 2 : 1) +
                                     (has_weight ? config.weight.numel() : 0));
    // The previous configuration's blocks go back to the driver so its free memory is real.
    cuda_empty_cache();
    std::size_t free_bytes = 0, total_bytes = 0;
    CONVKIT_CHECK_CUDA(cudaMemGetInfo(&free_bytes, &total_bytes));
    // Rotation may use at most a quarter of the free memory: the passes need room for outputs
    // and cuDNN workspaces.
    constexpr std::size_t kMostSets = 64;
    const std::size_t affordable =
        std::clamp<std::size_t>(free_bytes / 4 / std::max<std::size_t>(1, set_bytes), 1, kMostSets);
    const int count = rotation_count(set_bytes, l2_bytes, static_cast<int>(affordable));
    std::vector<InputSet> sets;
    for (int i = 0; i < count; ++i) {
        const auto seed = static_cast<std::uint64_t>(3 * i + 1);
        InputSet s;
        s.x = Tensor::uniform(config.input, -1, 1, seed, DType::Float32, gpu);
        s.dy = Tensor::uniform(out, -1, 1, seed + 1, DType::Float32, gpu);
        if (has_weight) s.w = Tensor::uniform(config.weight, -1, 1, seed + 2, DType::Float32, gpu);
        if (config.epilogue.bias) s.bias = Tensor::uniform(Shape{out[1]}, -1, 1, seed + 3, DType::Float32, gpu);
        if (config.epilogue.residual) s.residual = Tensor::uniform(out, -1, 1, seed + 4, DType::Float32, gpu);
        if (config.op == BenchOp::Add) {
            s.residual = Tensor::uniform(config.addend_shape(), -1, 1, seed + 4, DType::Float32, gpu);
        }
        if (config.op == BenchOp::BatchNorm) {
            const Shape channels{config.input[1]};
            s.w = Tensor::uniform(channels, 0.5, 2, seed + 2, DType::Float32, gpu);
            s.bias = Tensor::uniform(channels, -1, 1, seed + 3, DType::Float32, gpu);
            s.running_mean = Tensor::zeros(channels, DType::Float32, gpu);
            s.running_var = Tensor::full(channels, 1.0, DType::Float32, gpu);
        }
        sets.push_back(std::move(s));
    }
    return sets;
}

// The sets as a row of `dtype` gives them to both sides (row_operands). Weights stay
// contiguous, as the ops take them.
std::vector<InputSet> sets_for(const std::vector<InputSet>& sets, const std::string& dtype, const BenchConfig& config) {
    const RowOperands row = row_operands(dtype, config);
    if (row.element == DType::Float32 && row.activations == MemoryFormat::Contiguous) return sets;
    std::vector<InputSet> rows;
    for (const InputSet& s : sets) {
        rows.push_back(converted(
            s, [&](const Tensor& t) { return t.to(row.element).to(row.activations); },
            [&](const Tensor& t) { return t.to(row.element); }));
        // A broadcast addend is a parameter (a bias, a layer scale): contiguous, as a model holds it.
        if (config.broadcasts_addend()) rows.back().residual = s.residual.to(row.element);
    }
    return rows;
}

// Whether a row's two results differ by at most `tolerance`; if not, the row is a mismatch and
// its note (after any it has) says by how much.
bool agrees(BenchResult& result, double difference, double tolerance) {
    if (difference <= tolerance) return true;
    result.status = Status::Mismatch;
    std::ostringstream note;
    note << "relative L2 difference " << difference << " exceeds " << tolerance << " (not timed)";
    result.note = result.note.empty() ? note.str() : result.note + "; " + note.str();
    return false;
}

// Runs one pass with both backends, compares, and times the two if they agree.
void measure(BenchResult& result, const std::vector<InputSet>& sets, const Options& options, double tolerance) {
    const auto pass_on = [&](Side side) {
        return std::function<Tensor(const InputSet&)>(
            [&result, side](const InputSet& s) { return run_pass(result.config, result.direction, s, side); });
    };
    const std::function<Tensor(const InputSet&)> our_pass = pass_on(Side::Convkit), their_pass = pass_on(Side::Cudnn);
    Tensor ours, theirs;
    try {
        SideGuard guard(Side::Convkit, options);
        ours = our_pass(sets[0]);
        result.convkit_variant = is_pool(result.config.op) ? last_pool_variant() : last_conv_variant();
    } catch (const NotSupported& error) {
        result.status = Status::Unsupported;
        result.note = std::string("convkit: ") + error.what();
        return;
    }
    try {
        SideGuard guard(Side::Cudnn, options);
        theirs = their_pass(sets[0]);
        result.note = cudnn_epilogue_note(result.config);
    } catch (const NotSupported& error) {
        result.status = Status::Unsupported;
        result.note = std::string("cudnn: ") + error.what();
        return;
    }
    const double difference = backends_difference(ours, theirs);
    ours = Tensor();
    theirs = Tensor();
    if (!agrees(result, difference, tolerance)) return;
    result.convkit = time_backend(Side::Convkit, our_pass, sets, options);
    result.cudnn = time_backend(Side::Cudnn, their_pass, sets, options);
    result.status = Status::Ok;
}

// A layer row: convkit's CUDA pass checked against the host's in float64 on the first set, then
// timed alone (its rate is read against the copy bandwidth). (tf32 rows are refused before the
// sets are converted: a convolution math mode; the f32 rows time these float32 layers.)
void measure_layer(BenchResult& result, const std::vector<InputSet>& sets, const Options& options, double tolerance) {
    const std::function<Tensor(const InputSet&)> pass = [&result](const InputSet& s) {
        return run_pass(result.config, result.direction, s, Side::Convkit);
    };
    std::vector<InputSet> passes = sets;
    Tensor ours;
    {
        SideGuard guard(Side::Convkit, options);
        if (result.direction != Direction::Forward) {
            for (InputSet& s : passes) s = with_recorded_forward(result.config, s);
        }
        ours = pass(passes[0]);
    }
    const Tensor reference = host_layer_reference(result.config, result.direction, sets[0]);
    const double difference = backends_difference(ours, reference.to(DType::Float32).to(Device::cuda(options.device)));
    ours = Tensor();
    std::ostringstream note;
    note << "no cuDNN side: against the host in float64, relative L2 difference " << difference;
    result.note = note.str();
    if (!agrees(result, difference, tolerance)) return;
    result.convkit = time_backend(Side::Convkit, pass, passes, options);
    result.status = Status::Ok;
}

}  // namespace

RunInfo describe_machine(int device, std::size_t& l2_bytes) {
    cudaDeviceProp properties{};
    CONVKIT_CHECK_CUDA(cudaGetDeviceProperties(&properties, device));
    l2_bytes = static_cast<std::size_t>(properties.l2CacheSize);
    int runtime = 0;
    CONVKIT_CHECK_CUDA(cudaRuntimeGetVersion(&runtime));
    RunInfo info;
    info.gpu = properties.name;
    info.date = utc_now();
    info.driver = driver_version();
    info.cuda = std::to_string(runtime / 1000) + "." + std::to_string(runtime % 1000 / 10);
    info.cudnn = cudnn_version();
    return info;
}

Peak measure_peak(int device) {
    const Device gpu = Device::cuda(device);
    const cudaStream_t stream = stream_of(device);
    Peak peak;
    constexpr int kRuns = 10;
    try {
        std::size_t free_bytes = 0, total_bytes = 0;
        CONVKIT_CHECK_CUDA(cudaMemGetInfo(&free_bytes, &total_bytes));
        const std::size_t bytes = std::min<std::size_t>(std::size_t{1} << 30, free_bytes / 4) / 4 * 4;
        const Tensor source = Tensor::full(Shape{static_cast<std::int64_t>(bytes / 4)}, 1.0, DType::Float32, gpu);
        const Tensor target = Tensor::empty(source.shape(), DType::Float32, gpu);
        const auto copy = [&] {
            CONVKIT_CHECK_CUDA(
                cudaMemcpyAsync(target.raw_data(), source.raw_data(), bytes, cudaMemcpyDeviceToDevice, stream));
        };
        (void)time_runs(copy, 2, stream);
        // A copy reads and writes every byte.
        peak.copy_gbps = 2.0 * static_cast<double>(bytes) / (median_of(time_runs(copy, kRuns, stream)) * 1e-3) / 1e9;
    } catch (const Error& error) {
        std::cerr << "convkit-bench: the copy bandwidth was not measured: " << error.what() << "\n";
    }
    try {
        const detail::CublasApi& api = detail::cublas_api();
        cublasHandle_t handle = nullptr;  // one per process, never destroyed (as the library's own)
        CONVKIT_CHECK_CUBLAS(api.create(&handle));
        CONVKIT_CHECK_CUBLAS(api.set_stream(handle, stream));
        constexpr std::int64_t n = 8192;
        const double flops = 2.0 * n * n * n;
        const Tensor a = Tensor::uniform(Shape{n, n}, -1, 1, 11, DType::Float32, gpu);
        const Tensor b = Tensor::uniform(Shape{n, n}, -1, 1, 12, DType::Float32, gpu);
        const Tensor c = Tensor::zeros(Shape{n, n}, DType::Float32, gpu);
        const float one = 1, zero = 0;
        const auto sgemm = [&] {
            CONVKIT_CHECK_CUBLAS(api.sgemm(handle, CUBLAS_OP_N, CUBLAS_OP_N, n, n, n, &one, a.data<float>(), n,
                                           b.data<float>(), n, &zero, c.data<float>(), n));
        };
        const auto tflops_of = [&](const std::function<void()>& gemm) {
            (void)time_runs(gemm, 2, stream);
            return flops / (median_of(time_runs(gemm, kRuns, stream)) * 1e-3) / 1e12;
        };
        CONVKIT_CHECK_CUBLAS(api.set_math_mode(handle, CUBLAS_DEFAULT_MATH));
        peak.fp32_tflops = tflops_of(sgemm);
        CONVKIT_CHECK_CUBLAS(api.set_math_mode(handle, CUBLAS_TF32_TENSOR_OP_MATH));
        peak.tf32_tflops = tflops_of(sgemm);
        // bf16 in the float32 buffers' memory (half of each used): the float 0x3F803F80 is the
        // bf16 pair (1.0, 1.0), so every operand is a valid number.
        const float pair_of_ones = std::bit_cast<float>(0x3F803F80u);
        Tensor(a).fill_(pair_of_ones);
        Tensor(b).fill_(pair_of_ones);
        const auto bf16_gemm = [&] {
            CONVKIT_CHECK_CUBLAS(api.gemm_ex(handle, CUBLAS_OP_N, CUBLAS_OP_N, n, n, n, &one, a.raw_data(), CUDA_R_16BF,
                                             n, b.raw_data(), CUDA_R_16BF, n, &zero, c.raw_data(), CUDA_R_16BF, n,
                                             CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
        };
        CONVKIT_CHECK_CUBLAS(api.set_math_mode(handle, CUBLAS_DEFAULT_MATH));
        peak.bf16_tflops = tflops_of(bf16_gemm);
    } catch (const Error& error) {
        std::cerr << "convkit-bench: the cuBLAS peaks were not (all) measured: " << error.what() << "\n";
    }
    return peak;
}

std::vector<BenchResult> run_config(const NamedConfig& entry, const Options& options, std::size_t l2_bytes) {
    std::vector<Direction> directions;
    for (Direction d : entry.config.directions()) {
        if (options.directions.empty() ||
            std::find(options.directions.begin(), options.directions.end(), d) != options.directions.end()) {
            directions.push_back(d);
        }
    }
    std::vector<BenchResult> results;
    std::vector<InputSet> sets;
    std::string setup_error;
    try {
        sets = make_sets(entry.config, l2_bytes, options.device);
    } catch (const Error& error) {
        setup_error = error.what();
    }
    for (const std::string& dtype : options.dtypes) {
        for (Direction direction : directions) {
            BenchResult result;
            result.suite = entry.suite;
            result.config = entry.config;
            result.direction = direction;
            result.dtype = dtype;
            const bool sixteen_bit = dtype == "bf16" || dtype == "fp16";
            result.work = work_counts(entry.config, direction, sixteen_bit ? 2 : 4);
            if (!setup_error.empty()) {
                result.status = Status::Unsupported;
                result.note = "inputs not allocated: " + setup_error;
            } else {
                // 16-bit: both sides on the tensor cores whatever the math mode (cuda.igemm; cuDNN's
                // tensor-op math), on channels-last activations; tf32 too, under AllowTF32.
                set_default_math_mode(dtype == "tf32" ? MathMode::AllowTF32 : MathMode::Strict);
                set_default_algorithm_search(AlgorithmSearch::Timed);
                const double tolerance = sixteen_bit       ? options.tolerance_16bit
                                         : dtype == "tf32" ? options.tolerance_tf32
                                                           : options.tolerance_f32;
                try {
                    if (is_layer(entry.config.op) && dtype == "tf32") {
                        result.status = Status::Unsupported;
                        result.note = "tf32 is a convolution math mode: the f32 row times this layer";
                    } else if (is_layer(entry.config.op)) {
                        measure_layer(result, sets_for(sets, dtype, entry.config), options, tolerance);
                    } else {
                        measure(result, sets_for(sets, dtype, entry.config), options, tolerance);
                    }
                } catch (const OutOfMemory& error) {
                    result.status = Status::Unsupported;
                    result.note = std::string("out of memory: ") + error.what();
                } catch (const Error& error) {
                    // A failing kernel is a failed configuration, not one the backend declined.
                    result.status = Status::Mismatch;
                    result.convkit.reset();
                    result.cudnn.reset();
                    result.note = std::string("failed: ") + error.what();
                }
            }
            results.push_back(std::move(result));
        }
    }
    return results;
}

}  // namespace convkit::bench
