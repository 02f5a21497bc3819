#include "bench_config.h"

#include <algorithm>
#include <charconv>
#include <fstream>
#include <sstream>

#include "convkit/error.h"

namespace convkit::bench {

namespace {

template <typename... Parts>
[[noreturn]] void fail(const std::string& where, const Parts&... parts) {
    std::ostringstream message;
    message << where << ": ";
    (message << ... << parts);
    throw InvalidArgument(message.str());
}

std::vector<std::string> split(const std::string& text, char separator) {
    std::vector<std::string> pieces;
    std::string piece;
    std::istringstream stream(text);
    while (std::getline(stream, piece, separator)) pieces.push_back(piece);
    if (!text.empty() && text.back() == separator) pieces.emplace_back();
    return pieces;
}

bool parse_positive(const std::string& text, std::int64_t& value, bool allow_zero) {
    const char* end = text.data() + text.size();
    const auto [ptr, error] = std::from_chars(text.data(), end, value);
    return error == std::errc() && ptr == end && !text.empty() && (allow_zero ? value >= 0 : value >= 1);
}

// "3x3" with `count` values, or one value repeated over `count` dims when `broadcast` is set.
std::vector<std::int64_t> parse_dims(const std::string& text, int count, bool broadcast, bool allow_zero,
                                     const std::string& where, const std::string& field) {
    const std::vector<std::string> pieces = split(text, 'x');
    std::vector<std::int64_t> values;
    for (const std::string& piece : pieces) {
        std::int64_t value = 0;
        if (!parse_positive(piece, value, allow_zero)) {
            fail(where, "field '", field, "': '", piece, "' in '", text, "' is not a ",
                 allow_zero ? "non-negative" : "positive", " integer");
        }
        values.push_back(value);
    }
    if (broadcast && values.size() == 1) values.assign(static_cast<std::size_t>(count), values[0]);
    if (static_cast<int>(values.size()) != count) {
        fail(where, "field '", field, "': expected ", count, " sizes joined by 'x'",
             broadcast ? " (or one for all)" : "", ", got '", text, "' (", values.size(), ")");
    }
    return values;
}

void assign(SpatialDims& dims, const std::vector<std::int64_t>& values) {
    std::copy(values.begin(), values.end(), dims.begin());
}

struct OpName {
    BenchOp op;
    int rank;  // spatial dims; 0 for relu and add, whose rank is their input's
};

OpName parse_op_name(const std::string& name, const std::string& where) {
    static const std::pair<const char*, BenchOp> prefixes[] = {{"conv_transpose", BenchOp::ConvTranspose},
                                                               {"conv", BenchOp::Conv},
                                                               {"max_pool", BenchOp::MaxPool},
                                                               {"avg_pool", BenchOp::AvgPool},
                                                               {"adaptive_avg_pool", BenchOp::AdaptiveAvgPool},
                                                               {"batch_norm", BenchOp::BatchNorm}};
    if (name == "relu") return {BenchOp::Relu, 0};
    if (name == "add") return {BenchOp::Add, 0};
    for (const auto& [prefix, op] : prefixes) {
        const std::string p = prefix;
        if (name.size() == p.size() + 2 && name.compare(0, p.size(), p) == 0 && name.back() == 'd' &&
            name[p.size()] >= '1' && name[p.size()] <= '3') {
            return {op, name[p.size()] - '0'};
        }
    }
    fail(where, "field 'op': '", name,
         "' is not one of conv{1,2,3}d, conv_transpose{1,2,3}d, max_pool{1,2,3}d, avg_pool{1,2,3}d, "
         "adaptive_avg_pool{1,2,3}d, batch_norm{1,2,3}d, relu, add");
}

void parse_conv_params(const std::string& text, ConvParams& params, const std::string& where) {
    const int r = params.spatial_rank;
    for (const std::string& part : split(text, '_')) {
        if (part == "zeros" || part == "reflect" || part == "replicate" || part == "circular") {
            params.padding_mode = part == "zeros"       ? PaddingMode::Zeros
                                  : part == "reflect"   ? PaddingMode::Reflect
                                  : part == "replicate" ? PaddingMode::Replicate
                                                        : PaddingMode::Circular;
        } else if (part.rfind("op", 0) == 0) {
            assign(params.output_padding, parse_dims(part.substr(2), r, true, true, where, "output_padding"));
        } else if (part == "psame") {
            params.same_padding = true;
        } else if (!part.empty() && part[0] == 's') {
            assign(params.stride, parse_dims(part.substr(1), r, true, false, where, "stride"));
        } else if (!part.empty() && part[0] == 'p') {
            assign(params.padding, parse_dims(part.substr(1), r, true, true, where, "padding"));
        } else if (!part.empty() && part[0] == 'd') {
            assign(params.dilation, parse_dims(part.substr(1), r, true, false, where, "dilation"));
        } else if (!part.empty() && part[0] == 'g') {
            params.groups = parse_dims(part.substr(1), 1, false, false, where, "groups")[0];
        } else {
            fail(where, "field 'params': '", part, "' in '", text,
                 "' is not s<stride>, p<padding>, psame, d<dilation>, g<groups>, op<output_padding> or a padding mode");
        }
    }
}

void parse_pool_params(const std::string& text, PoolParams& params, bool& has_kernel, const std::string& where) {
    const int r = params.spatial_rank;
    bool has_stride = false;
    for (const std::string& part : split(text, '_')) {
        if (part == "ceil") {
            params.ceil_mode = true;
        } else if (part == "excludepad") {
            params.count_include_pad = false;
        } else if (!part.empty() && part[0] == 'k') {
            assign(params.kernel, parse_dims(part.substr(1), r, true, false, where, "kernel"));
            has_kernel = true;
        } else if (!part.empty() && part[0] == 's') {
            assign(params.stride, parse_dims(part.substr(1), r, true, false, where, "stride"));
            has_stride = true;
        } else if (!part.empty() && part[0] == 'p') {
            assign(params.padding, parse_dims(part.substr(1), r, true, true, where, "padding"));
        } else if (!part.empty() && part[0] == 'd') {
            assign(params.dilation, parse_dims(part.substr(1), r, true, false, where, "dilation"));
        } else {
            fail(where, "field 'params': '", part, "' in '", text,
                 "' is not k<kernel>, s<stride>, p<padding>, d<dilation>, ceil or excludepad");
        }
    }
    if (!has_stride) params.stride = params.kernel;  // PyTorch's default
}

BenchEpilogue parse_epilogue(const std::string& text, const std::string& where) {
    if (text.empty()) fail(where, "field 'epilogue': empty (e.g. epilogue=bias+relu)");
    BenchEpilogue epilogue;
    bool* const parts[] = {&epilogue.bias, &epilogue.residual, &epilogue.relu};
    const char* const names[] = {"bias", "residual", "relu"};
    int next = 0;  // parts come in the order of `names`, each once
    for (const std::string& piece : split(text, '+')) {
        int found = 0;
        while (found < 3 && piece != names[found]) ++found;
        if (found == 3) fail(where, "field 'epilogue': '", piece, "' in '", text, "' is not bias, residual or relu");
        if (found < next) {
            fail(where, "field 'epilogue': '", text,
                 "' must name each of bias, residual, relu at most once, in that order");
        }
        *parts[found] = true;
        next = found + 1;
    }
    return epilogue;
}

Shape parse_shape(const std::string& text, int rank, const std::string& where, const std::string& field) {
    return Shape(parse_dims(text, rank, false, false, where, field));
}

// Whether `addend` (of the same rank) broadcasts to `input` without enlarging it.
bool addend_broadcasts_to(const Shape& addend, const Shape& input) {
    if (addend.rank() != input.rank()) return false;
    for (int d = 0; d < input.rank(); ++d) {
        if (addend[d] != 1 && addend[d] != input[d]) return false;
    }
    return true;
}

// The rank of relu's and add's input: N x C and 1 to 3 spatial dims.
int input_rank(const std::string& text, const std::string& where) {
    const auto rank = static_cast<int>(split(text, 'x').size());
    if (rank < 3 || rank > 5) fail(where, "field 'in': expected N x C and 1 to 3 spatial sizes, got '", text, "'");
    return rank;
}

// The average pooling with adaptive pooling's windows (each input extent a multiple of the
// output's: windows of in / out, side by side), which cuDNN's side of the row runs.
PoolParams equal_windows_pooling(const Shape& input, const std::vector<std::int64_t>& output,
                                 const std::string& where) {
    const int rank = static_cast<int>(output.size());
    PoolParams params(rank, 1);
    for (int s = 0; s < rank; ++s) {
        const std::int64_t in = input[2 + s];
        if (in % output[static_cast<std::size_t>(s)] != 0) {
            fail(where, "field 'out': input extent ", in, " (spatial dim ", s, ") is not a multiple of ",
                 output[static_cast<std::size_t>(s)],
                 ": cuDNN, which has no adaptive pooling, times the average pooling with the same windows");
        }
        params.kernel[static_cast<std::size_t>(s)] = in / output[static_cast<std::size_t>(s)];
    }
    params.stride = params.kernel;
    return params;
}

}  // namespace

std::string BenchEpilogue::text() const {
    std::string text;
    for (const auto& [present, name] : {std::pair{bias, "bias"}, {residual, "residual"}, {relu, "relu"}}) {
        if (!present) continue;
        if (!text.empty()) text += '+';  // appends only: GCC 12's -Wrestrict misfires on "literal" + string
        text += name;
    }
    return text;
}

const char* op_family_name(BenchOp op) {
    switch (op) {
        case BenchOp::Conv:
            return "conv";
        case BenchOp::ConvTranspose:
            return "conv_transpose";
        case BenchOp::MaxPool:
        case BenchOp::AvgPool:
        case BenchOp::AdaptiveAvgPool:
            return "pool";
        case BenchOp::BatchNorm:
        case BenchOp::Relu:
        case BenchOp::Add:
            return "layer";
    }
    return "unknown";
}

RowOperands row_operands(const std::string& dtype, const BenchConfig& config) {
    const DType element = dtype == "bf16" ? DType::BFloat16 : dtype == "fp16" ? DType::Float16 : DType::Float32;
    if (!is_conv(config.op)) return {element, config.layout};
    return {element, dtype != "f32" ? MemoryFormat::ChannelsLast : MemoryFormat::Contiguous};
}

const char* direction_name(Direction direction) {
    switch (direction) {
        case Direction::Forward:
            return "fwd";
        case Direction::BackwardData:
            return "bwd_data";
        case Direction::BackwardFilter:
            return "bwd_filter";
    }
    return "unknown";
}

Direction parse_direction(const std::string& name) {
    for (Direction d : {Direction::Forward, Direction::BackwardData, Direction::BackwardFilter}) {
        if (name == direction_name(d)) return d;
    }
    throw InvalidArgument("direction '" + name + "' is not one of fwd, bwd_data, bwd_filter");
}

std::string BenchConfig::op_name() const {
    switch (op) {
        case BenchOp::Conv:
            return conv_op_name(spatial_rank());
        case BenchOp::ConvTranspose:
            return conv_op_name(spatial_rank(), true);
        case BenchOp::MaxPool:
            return pool_op_name(spatial_rank(), PoolKind::Max);
        case BenchOp::AvgPool:
            return pool_op_name(spatial_rank(), PoolKind::Average);
        case BenchOp::AdaptiveAvgPool:
            return "adaptive_" + pool_op_name(spatial_rank(), PoolKind::Average);
        case BenchOp::BatchNorm:
            return "batch_norm" + std::to_string(spatial_rank()) + "d";
        case BenchOp::Relu:
            return "relu";
        case BenchOp::Add:
            return "add";
    }
    return "unknown";
}

std::string BenchConfig::to_line() const {
    std::ostringstream line;
    line << op_name() << " in=" << shape_text(input);
    if (is_pool(op)) {
        line << " "
             << (op == BenchOp::AdaptiveAvgPool ? "out=" + shape_text(Shape(adaptive_output)) : pool.to_string());
    }
    if (addend.rank() > 0) line << " with=" << shape_text(addend);
    if (!is_conv(op)) {
        if (layout == MemoryFormat::ChannelsLast) line << " layout=nhwc";
    } else {
        line << " w=" << shape_text(weight) << " " << conv.to_string();
        if (epilogue.any()) line << " epilogue=" << epilogue.text();
    }
    return line.str();
}

std::vector<Direction> BenchConfig::directions() const {
    if (op == BenchOp::Add && !broadcasts_addend()) return {Direction::Forward};
    if (!is_conv(op)) return {Direction::Forward, Direction::BackwardData};
    if (epilogue.any()) return {Direction::Forward};
    return {Direction::Forward, Direction::BackwardData, Direction::BackwardFilter};
}

Shape BenchConfig::output_shape() const {
    switch (op) {
        case BenchOp::Conv:
            return conv_output_shape(input, weight, conv);
        case BenchOp::ConvTranspose:
            return conv_transpose_output_shape(input, weight, conv);
        case BenchOp::MaxPool:
            return pool_output_shape(input, pool, PoolKind::Max);
        case BenchOp::AvgPool:
        case BenchOp::AdaptiveAvgPool:  // `pool` has its windows
            return pool_output_shape(input, pool, PoolKind::Average);
        case BenchOp::BatchNorm:
        case BenchOp::Relu:
        case BenchOp::Add:
            return input;
    }
    return Shape();
}

bool operator==(const BenchConfig& a, const BenchConfig& b) {
    // Compared through the text form: it holds every field the benchmark uses.
    return a.to_line() == b.to_line();
}

std::string shape_text(const Shape& shape) {
    std::ostringstream text;
    for (int i = 0; i < shape.rank(); ++i) text << (i ? "x" : "") << shape[i];
    return text.str();
}

BenchConfig parse_config_line(const std::string& line, const std::string& where) {
    std::istringstream stream(line);
    std::vector<std::string> tokens;
    for (std::string token; stream >> token;) tokens.push_back(token);
    if (tokens.empty()) fail(where, "field 'op': the line is empty");

    const OpName name = parse_op_name(tokens[0], where);
    BenchConfig config;
    config.op = name.op;
    // (relu and add use neither; their rank is their input's)
    config.conv = ConvParams(std::max(name.rank, 1));
    config.pool = PoolParams(std::max(name.rank, 1), 1);
    bool has_input = false, has_weight = false, has_params = false, has_kernel = false, has_layout = false;
    const bool adaptive = name.op == BenchOp::AdaptiveAvgPool;
    for (std::size_t i = 1; i < tokens.size(); ++i) {
        const std::string& token = tokens[i];
        if (token.rfind("in=", 0) == 0) {
            if (has_input) fail(where, "field 'in': given twice");
            config.input = parse_shape(token.substr(3),
                                       name.rank > 0 ? name.rank + 2 : input_rank(token.substr(3), where), where, "in");
            has_input = true;
        } else if (token.rfind("w=", 0) == 0) {
            if (!is_conv(name.op)) fail(where, "field 'w': only convolutions have a weight");
            if (has_weight) fail(where, "field 'w': given twice");
            config.weight = parse_shape(token.substr(2), name.rank + 2, where, "w");
            has_weight = true;
        } else if (token.rfind("layout=", 0) == 0) {
            if (is_conv(name.op)) fail(where, "field 'layout': convolutions take theirs from the dtype");
            if (has_layout) fail(where, "field 'layout': given twice");
            const std::string layout = token.substr(7);
            if (layout != "nchw" && layout != "nhwc") fail(where, "field 'layout': '", layout, "' is not nchw or nhwc");
            config.layout = layout == "nhwc" ? MemoryFormat::ChannelsLast : MemoryFormat::Contiguous;
            has_layout = true;
        } else if (token.rfind("with=", 0) == 0) {
            if (name.op != BenchOp::Add) fail(where, "field 'with': only add takes a second addend's shape");
            if (config.addend.rank() > 0) fail(where, "field 'with': given twice");
            config.addend = parse_shape(token.substr(5), input_rank(token.substr(5), where), where, "with");
        } else if (token.rfind("out=", 0) == 0) {
            if (!adaptive) fail(where, "field 'out': only adaptive pooling takes its output's extents");
            if (!config.adaptive_output.empty()) fail(where, "field 'out': given twice");
            config.adaptive_output = parse_dims(token.substr(4), name.rank, true, false, where, "out");
        } else if (token.rfind("epilogue=", 0) == 0) {
            if (!is_conv(name.op)) fail(where, "field 'epilogue': only convolutions have one");
            if (config.epilogue.any()) fail(where, "field 'epilogue': given twice");
            config.epilogue = parse_epilogue(token.substr(9), where);
        } else if (token.find('=') != std::string::npos) {
            fail(where, "field '", token.substr(0, token.find('=')),
                 "': unknown (expected in=, w=, out=, with=, layout=, epilogue= or parameters)");
        } else {
            if (adaptive) fail(where, "field 'params': adaptive pooling takes out= instead ('", token, "')");
            if (is_layer(name.op)) fail(where, "field 'params': ", tokens[0], " takes none ('", token, "')");
            if (has_params) fail(where, "field 'params': given twice ('", token, "')");
            if (is_pool(name.op)) {
                parse_pool_params(token, config.pool, has_kernel, where);
            } else {
                parse_conv_params(token, config.conv, where);
            }
            has_params = true;
        }
    }
    if (!has_input) fail(where, "field 'in': missing (e.g. in=32x64x56x56)");
    if (is_conv(name.op) && !has_weight) fail(where, "field 'w': missing (e.g. w=64x64x3x3)");
    if (adaptive) {
        if (config.adaptive_output.empty()) fail(where, "field 'out': missing (e.g. out=1x1)");
        config.pool = equal_windows_pooling(config.input, config.adaptive_output, where);
    } else if (is_pool(name.op) && !has_kernel) {
        fail(where, "field 'kernel': missing (e.g. k3x3_s2x2_p1x1)");
    }
    try {
        (void)config.output_shape();
    } catch (const InvalidArgument& error) {
        fail(where, "field 'geometry': ", error.what());
    }
    if (config.addend.rank() > 0 && !addend_broadcasts_to(config.addend, config.input)) {
        fail(where, "field 'with': ", shape_text(config.addend), " does not broadcast to the input ",
             shape_text(config.input), " (each of its dims 1 or the input's)");
    }
    return config;
}

std::vector<BenchConfig> parse_config_text(const std::string& text, const std::string& source) {
    std::vector<BenchConfig> configs;
    std::istringstream stream(text);
    int number = 0;
    for (std::string line; std::getline(stream, line);) {
        ++number;
        const std::string content = line.substr(0, line.find('#'));
        if (content.find_first_not_of(" \t\r") == std::string::npos) continue;
        configs.push_back(parse_config_line(content, source + ":" + std::to_string(number)));
    }
    return configs;
}

std::vector<BenchConfig> read_config_file(const std::string& path) {
    std::ifstream file(path);
    if (!file) throw InvalidArgument("--config-file: cannot read '" + path + "'");
    std::ostringstream text;
    text << file.rdbuf();
    return parse_config_text(text.str(), path);
}

}  // namespace convkit::bench
