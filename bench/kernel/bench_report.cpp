#include "bench_report.h"

#include <cstdio>
#include <nlohmann/json.hpp>
#include <sstream>

namespace convkit::bench {

namespace {
using Json = nlohmann::ordered_json;

Json number_or_null(double value) {
    return value > 0 ? Json(value) : Json(nullptr);
}
Json optional_or_null(const std::optional<double>& value) {
    return value ? Json(*value) : Json(nullptr);
}

std::string format(const char* pattern, double value) {
    char text[64];
    std::snprintf(text, sizeof text, pattern, value);
    return text;
}

// Fields of a CSV row never hold commas or quotes except the free-text note, which is quoted.
std::string csv_quote(const std::string& text) {
    std::string quoted = "\"";
    for (char c : text) quoted += c == '"' ? std::string("\"\"") : std::string(1, c);
    return quoted + "\"";
}

std::string csv_number(const std::optional<double>& value) {
    return value ? format("%.6g", *value) : "";
}
}  // namespace

const char* status_name(Status status) {
    switch (status) {
        case Status::Ok:
            return "ok";
        case Status::Mismatch:
            return "mismatch";
        case Status::Unsupported:
            return "unsupported";
    }
    return "unknown";
}

std::optional<double> BenchResult::ratio() const {
    if (!convkit || !cudnn || convkit->median_ms <= 0) return std::nullopt;
    return cudnn->median_ms / convkit->median_ms;
}

std::optional<double> BenchResult::rate(const TimingStats& stats) const {
    if (stats.median_ms <= 0) return std::nullopt;
    const double seconds = stats.median_ms * 1e-3;
    return reports_flops(config.op) ? work.flops / seconds * 1e-12 : work.bytes / seconds * 1e-9;
}

double peak_for(const Peak& peak, const BenchResult& result) {
    if (!reports_flops(result.config.op)) return peak.copy_gbps;
    if (result.dtype == "f32") return peak.fp32_tflops;
    if (result.dtype == "tf32") return peak.tf32_tflops;
    if (result.dtype == "bf16" || result.dtype == "fp16") return peak.bf16_tflops;
    return 0;
}

std::string to_json(const RunInfo& info, const std::vector<BenchResult>& results,
                    const std::vector<ModelStepResult>& model_steps) {
    Json root;
    root["gpu"] = info.gpu;
    root["date"] = info.date;
    root["driver"] = info.driver;
    root["cuda"] = info.cuda;
    root["cudnn"] = info.cudnn;
    root["peak"] = {{"copy_gbps", number_or_null(info.peak.copy_gbps)},
                    {"bf16_tflops", number_or_null(info.peak.bf16_tflops)},
                    {"tf32_tflops", number_or_null(info.peak.tf32_tflops)},
                    {"fp32_tflops", number_or_null(info.peak.fp32_tflops)}};
    Json rows = Json::array();
    for (const BenchResult& r : results) {
        Json row;
        row["suite"] = r.suite;
        row["name"] = r.name();
        row["op"] = op_family_name(r.config.op);
        row["direction"] = direction_name(r.direction);
        row["dtype"] = r.dtype;
        row["convkit_ms"] = r.convkit ? Json(r.convkit->median_ms) : Json(nullptr);
        row["cudnn_ms"] = r.cudnn ? Json(r.cudnn->median_ms) : Json(nullptr);
        row["ratio"] = optional_or_null(r.ratio());
        const std::optional<double> rate = r.convkit ? r.rate(*r.convkit) : std::nullopt;
        row[reports_flops(r.config.op) ? "tflops" : "gbps"] = optional_or_null(rate);
        row["status"] = status_name(r.status);
        row["convkit_variant"] = r.convkit_variant.empty() ? Json(nullptr) : Json(r.convkit_variant);
        if (!r.note.empty()) row["note"] = r.note;
        rows.push_back(std::move(row));
    }
    root["results"] = std::move(rows);
    if (!model_steps.empty()) {
        Json steps = Json::array();
        for (const ModelStepResult& m : model_steps) {
            steps.push_back({{"model", m.model},
                             {"mode", m.mode},
                             {"batch", m.batch},
                             {"dtype", m.dtype},
                             {"status", m.status},
                             {"steps", m.steps},
                             {"median_ms", m.median_ms},
                             {"min_ms", m.min_ms},
                             {"max_ms", m.max_ms},
                             {"images_per_second", m.images_per_second()}});
        }
        root["model_steps"] = std::move(steps);
    }
    return root.dump(2) + "\n";
}

std::string model_steps_table(const std::vector<ModelStepResult>& model_steps) {
    std::ostringstream out;
    out << "whole models, 3x224x224 (train: forward, backward, SGD in float32; inference: a forward in bfloat16):\n";
    for (const ModelStepResult& m : model_steps) {
        if (m.status != "ok") {
            out << "  " << m.model << " " << m.mode << " batch " << m.batch << ": " << m.status << "\n";
            continue;
        }
        out << "  " << m.model << " " << m.mode << " batch " << m.batch << ": " << m.median_ms << " ms/step (min " << m.min_ms
            << ", max " << m.max_ms << ", " << m.steps << " steps), " << static_cast<long long>(m.images_per_second())
            << " images/s\n";
    }
    return out.str();
}

std::string to_csv(const RunInfo& info, const std::vector<BenchResult>& results) {
    std::ostringstream out;
    out << "suite,name,op,direction,dtype,status,convkit_ms,convkit_min_ms,convkit_max_ms,cudnn_ms,cudnn_min_ms,"
           "cudnn_max_ms,ratio,tflops,gbps,cudnn_tflops,cudnn_gbps,peak_percent,cudnn_peak_percent,flops,bytes,"
           "floor_ms,note\n";
    for (const BenchResult& r : results) {
        const auto median = [](const std::optional<TimingStats>& s) {
            return s ? std::optional<double>(s->median_ms) : std::nullopt;
        };
        const auto low = [](const std::optional<TimingStats>& s) {
            return s ? std::optional<double>(s->min_ms) : std::nullopt;
        };
        const auto high = [](const std::optional<TimingStats>& s) {
            return s ? std::optional<double>(s->max_ms) : std::nullopt;
        };
        const double peak = peak_for(info.peak, r);
        const std::optional<double> rate = r.convkit ? r.rate(*r.convkit) : std::nullopt;
        const std::optional<double> cudnn_rate = r.cudnn ? r.rate(*r.cudnn) : std::nullopt;
        const auto percent = [&](const std::optional<double>& value) {
            return value && peak > 0 ? std::optional<double>(100 * *value / peak) : std::nullopt;
        };
        const bool flops = reports_flops(r.config.op);
        out << r.suite << "," << r.name() << "," << op_family_name(r.config.op) << "," << direction_name(r.direction)
            << "," << r.dtype << "," << status_name(r.status) << "," << csv_number(median(r.convkit)) << ","
            << csv_number(low(r.convkit)) << "," << csv_number(high(r.convkit)) << "," << csv_number(median(r.cudnn))
            << "," << csv_number(low(r.cudnn)) << "," << csv_number(high(r.cudnn)) << "," << csv_number(r.ratio())
            << "," << csv_number(flops ? rate : std::nullopt) << "," << csv_number(flops ? std::nullopt : rate) << ","
            << csv_number(flops ? cudnn_rate : std::nullopt) << "," << csv_number(flops ? std::nullopt : cudnn_rate)
            << "," << csv_number(percent(rate)) << "," << csv_number(percent(cudnn_rate)) << ","
            << format("%.0f", r.work.flops) << "," << format("%.0f", r.work.bytes) << ","
            << csv_number(floor_ms(r.work, flops ? peak : 0, info.peak.copy_gbps)) << "," << csv_quote(r.note) << "\n";
    }
    return out.str();
}

std::string to_table(const RunInfo& info, const std::vector<BenchResult>& results) {
    std::ostringstream out;
    out << "GPU " << info.gpu << " | driver " << info.driver << " | CUDA " << info.cuda << " | cuDNN " << info.cudnn
        << " | " << info.date << "\n";
    out << "measured peaks: copy " << format("%.0f", info.peak.copy_gbps) << " GB/s, fp32 "
        << format("%.1f", info.peak.fp32_tflops) << " TFLOP/s, tf32 " << format("%.1f", info.peak.tf32_tflops)
        << " TFLOP/s, bf16 " << format("%.1f", info.peak.bf16_tflops) << " TFLOP/s\n";
    out << "times: median [min-max] ms; rate: TFLOP/s (conv) or GB/s (pool) with % of the measured peak;\n"
           "floor: max(FLOPs / peak, bytes / copy bandwidth); ratio: cudnn / convkit (above 1: convkit faster)\n";
    char line[512];
    std::string suite;
    for (const BenchResult& r : results) {
        if (r.suite != suite) {
            suite = r.suite;
            std::snprintf(line, sizeof line, "\n[%s]\n%-10s %-5s %-24s %-24s %-16s %-16s %9s %7s %-11s %s\n",
                          suite.c_str(), "dir", "dtype", "convkit ms", "cudnn ms", "convkit rate", "cudnn rate",
                          "floor ms", "ratio", "status", "config");
            out << line;
        }
        const double peak = peak_for(info.peak, r);
        const auto time_text = [](const std::optional<TimingStats>& s) {
            if (!s) return std::string("-");
            char text[64];
            std::snprintf(text, sizeof text, "%.4g [%.4g-%.4g]", s->median_ms, s->min_ms, s->max_ms);
            return std::string(text);
        };
        const auto rate_text = [&](const std::optional<TimingStats>& s) {
            const std::optional<double> rate = s ? r.rate(*s) : std::nullopt;
            if (!rate) return std::string("-");
            char text[64];
            if (peak > 0) {
                std::snprintf(text, sizeof text, "%.3g (%.0f%%)", *rate, 100 * *rate / peak);
            } else {
                std::snprintf(text, sizeof text, "%.3g", *rate);
            }
            return std::string(text);
        };
        const double floor = floor_ms(r.work, reports_flops(r.config.op) ? peak : 0, info.peak.copy_gbps);
        const std::optional<double> ratio = r.ratio();
        std::snprintf(line, sizeof line, "%-10s %-5s %-24s %-24s %-16s %-16s %9s %7s %-11s %s\n",
                      direction_name(r.direction), r.dtype.c_str(), time_text(r.convkit).c_str(),
                      time_text(r.cudnn).c_str(), rate_text(r.convkit).c_str(), rate_text(r.cudnn).c_str(),
                      floor > 0 ? format("%.4g", floor).c_str() : "-", ratio ? format("%.2f", *ratio).c_str() : "-",
                      status_name(r.status), r.name().c_str());
        out << line;
        if (!r.convkit_variant.empty()) out << "           convkit ran " << r.convkit_variant << "\n";
        if (!r.note.empty()) out << "           note: " << r.note << "\n";
    }
    return out.str();
}

}  // namespace convkit::bench
