// The safetensors format (https://github.com/huggingface/safetensors, docs/checkpoints.md):
//   8 bytes    N, the header size, an unsigned little-endian 64-bit integer
//   N bytes    the header: a UTF-8 JSON object, padded with spaces to a multiple of 8
//                {"__metadata__": {"key": "value", ...},           (optional, strings only)
//                 "name": {"dtype": "F32", "shape": [2, 3], "data_offsets": [begin, end]}, ...}
//   the rest   the byte buffer: each tensor's elements, row-major, little-endian, at
//              [begin, end) relative to the buffer's start; together they cover it exactly.
#include "convkit/io/safetensors.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <bit>
#include <cerrno>
#include <cstdint>
#include <limits>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <system_error>
#include <tuple>
#include <vector>

#include "core/check.h"
#include "io/atomic_file.h"

namespace convkit {

// Tensor bytes go to and from the file as they are in memory.
static_assert(std::endian::native == std::endian::little, "the safetensors format stores little-endian data");

namespace {

// ordered_json keeps the keys in file order, so the first problem reported is the first in the file,
// and writes them in the order given, as the reference writer does.
using Json = nlohmann::ordered_json;

constexpr std::uint64_t kHeaderSizeBytes = 8;
// The reference implementation refuses larger headers; a real one is at most a few MB.
constexpr std::uint64_t kMaxHeaderBytes = 100'000'000;
constexpr const char* kMetadataKey = "__metadata__";
constexpr int kMaxProblemsListed = 8;

// Every dtype the format defines (the reference's Dtype enum), so a file holding one convkit has
// no tensors of is still checked in full, then refused as NotSupported rather than called corrupt.
struct FileDType {
    const char* name;
    std::uint64_t bits;  // per element; F4 and F6 are packed
    std::optional<DType> convkit;
};
constexpr std::array<FileDType, 22> kFileDTypes{{
    {"BOOL", 8, std::nullopt},    {"F4", 4, std::nullopt},          {"F6_E2M3", 6, std::nullopt},
    {"F6_E3M2", 6, std::nullopt}, {"U8", 8, std::nullopt},          {"I8", 8, std::nullopt},
    {"F8_E5M2", 8, std::nullopt}, {"F8_E4M3", 8, std::nullopt},     {"F8_E8M0", 8, std::nullopt},
    {"F8_E4M3FNUZ", 8, std::nullopt}, {"F8_E5M2FNUZ", 8, std::nullopt}, {"I16", 16, std::nullopt},
    {"U16", 16, std::nullopt},    {"F16", 16, DType::Float16},       {"BF16", 16, DType::BFloat16},
    {"I32", 32, std::nullopt},    {"U32", 32, std::nullopt},        {"F32", 32, DType::Float32},
    {"C64", 64, std::nullopt},    {"F64", 64, DType::Float64},      {"I64", 64, DType::Int64},
    {"U64", 64, std::nullopt},
}};

const FileDType* find_file_dtype(const std::string& name) {
    for (const FileDType& d : kFileDTypes)
        if (name == d.name) return &d;
    return nullptr;
}

const char* file_dtype_name(DType dtype) {
    switch (dtype) {
        case DType::Float32: return "F32";
        case DType::Float64: return "F64";
        case DType::Int64: return "I64";
        case DType::BFloat16: return "BF16";
        case DType::Float16: return "F16";
    }
    return "?";
}

// The reference writer orders tensors by its Dtype enum descending (I64, F64, F32, BF16, F16 for
// ours: wider types first), then by name, so that with the header padded to 8 bytes every tensor
// starts aligned to its element size. BF16 before F16 follows the enum, not the size.
int reference_order(DType dtype) {
    switch (dtype) {
        case DType::Int64: return 0;
        case DType::Float64: return 1;
        case DType::Float32: return 2;
        case DType::BFloat16: return 3;
        case DType::Float16: return 4;
    }
    return 5;
}

std::string error_text(int error) { return std::system_category().message(error); }

// ---------------------------------------------------------------------------------------------
// Saving

struct TensorToWrite {
    const std::string* name;
    const Tensor* tensor;
    std::uint64_t nbytes;
};

std::vector<TensorToWrite> tensors_in_file_order(const TensorMap& tensors) {
    std::vector<TensorToWrite> order;
    for (const auto& [name, tensor] : tensors) {
        CONVKIT_REQUIRE(name != kMetadataKey, "save_safetensors",
                        "a tensor cannot be named \"__metadata__\" (the format reserves it)");
        CONVKIT_REQUIRE(tensor.defined(), "save_safetensors", "tensor '", name, "' is undefined");
        order.push_back({&name, &tensor, tensor.nbytes()});
    }
    std::stable_sort(order.begin(), order.end(), [](const TensorToWrite& a, const TensorToWrite& b) {
        return reference_order(a.tensor->dtype()) < reference_order(b.tensor->dtype());
    });
    return order;
}

// The header text, padded with spaces to a multiple of 8 as the reference writer does.
std::string header_text(const std::vector<TensorToWrite>& order,
                        const std::map<std::string, std::string>& metadata) {
    Json header = Json::object();
    if (!metadata.empty()) {
        Json strings = Json::object();
        for (const auto& [key, value] : metadata) strings[key] = value;
        header[kMetadataKey] = std::move(strings);
    }
    std::uint64_t offset = 0;
    for (const TensorToWrite& t : order) {
        Json entry = Json::object();
        entry["dtype"] = file_dtype_name(t.tensor->dtype());
        entry["shape"] = t.tensor->shape().to_vector();
        entry["data_offsets"] = Json::array({offset, offset + t.nbytes});
        header[*t.name] = std::move(entry);
        offset += t.nbytes;
    }
    std::string text;
    try {
        text = header.dump();
    } catch (const Json::type_error& e) {
        // The only way dump() fails: a name or a metadata string that is not UTF-8.
        throw InvalidArgument(detail::concat("save_safetensors: tensor names and metadata must be valid UTF-8 (",
                                             e.what(), ")"));
    }
    text.append((8 - text.size() % 8) % 8, ' ');
    return text;
}

void write_u64_le(detail::AtomicFile& file, std::uint64_t value) {
    std::array<unsigned char, 8> bytes{};
    for (std::size_t i = 0; i < bytes.size(); ++i) bytes[i] = static_cast<unsigned char>(value >> (8 * i));
    file.write(bytes.data(), bytes.size());
}

// ---------------------------------------------------------------------------------------------
// Loading

// "load_safetensors: <path>: <what>"
class LoadErrors {
public:
    explicit LoadErrors(const std::string& path) : path_(path) {}
    [[noreturn]] void fail(const std::string& what) const {
        throw IoError(detail::concat("load_safetensors: ", path_, ": ", what));
    }
    const std::string& path() const { return path_; }

private:
    const std::string& path_;
};

class ReadOnlyFile {
public:
    ReadOnlyFile(const std::string& path, const LoadErrors& errors) : errors_(errors) {
        fd_ = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
        if (fd_ < 0) errors_.fail(detail::concat("cannot open: ", error_text(errno)));
        struct stat info {};
        if (::fstat(fd_, &info) != 0) errors_.fail(detail::concat("cannot stat: ", error_text(errno)));
        if (!S_ISREG(info.st_mode)) errors_.fail("not a regular file");
        size_ = static_cast<std::uint64_t>(info.st_size);
    }
    ~ReadOnlyFile() { ::close(fd_); }
    ReadOnlyFile(const ReadOnlyFile&) = delete;
    ReadOnlyFile& operator=(const ReadOnlyFile&) = delete;

    std::uint64_t size() const { return size_; }

    // Exactly `count` bytes at `offset`; the caller has checked the range against size().
    void read(std::uint64_t offset, void* destination, std::uint64_t count) const {
        auto* bytes = static_cast<unsigned char*>(destination);
        while (count > 0) {
            const ssize_t n = ::pread(fd_, bytes, count, static_cast<off_t>(offset));
            if (n < 0 && errno == EINTR) continue;
            if (n < 0) errors_.fail(detail::concat("cannot read: ", error_text(errno)));
            if (n == 0) errors_.fail("the file became shorter while it was read");
            bytes += n;
            offset += static_cast<std::uint64_t>(n);
            count -= static_cast<std::uint64_t>(n);
        }
    }

private:
    const LoadErrors& errors_;
    int fd_ = -1;
    std::uint64_t size_ = 0;
};

struct TensorEntry {
    std::string name;
    const FileDType* dtype = nullptr;
    std::vector<std::int64_t> dims;
    std::uint64_t begin = 0;
    std::uint64_t end = 0;
};

struct Header {
    std::vector<TensorEntry> entries;  // in file order
    std::map<std::string, std::string> metadata;
    std::uint64_t buffer_start = 0;
};

std::string json_type(const Json& value) {
    if (value.is_number_float()) return "a fractional number";
    if (value.is_number()) return "an integer";
    const std::string name = value.type_name();
    return (name == "array" || name == "object" ? "an " : "a ") + name;
}

std::string offsets_text(std::uint64_t begin, std::uint64_t end) { return detail::concat("[", begin, ", ", end, "]"); }

std::string dims_text(const std::vector<std::int64_t>& dims) { return Shape(dims).to_string(); }

// Text from the file shortened for a message: a hostile header may hold megabytes in one value.
std::string brief(std::string text, std::size_t limit = 80) {
    if (text.size() > limit) text = text.substr(0, limit) + "...";
    return text;
}
std::string brief(const Json& value) { return brief(value.dump()); }

// JSON objects keep the last of two equal keys; the format forbids duplicates, so the parser
// callback watches every object's keys (nested ones too) and reports the first repeat.
Json parse_header_json(const std::string& text, const LoadErrors& errors) {
    std::vector<std::set<std::string>> keys_of_open_objects;
    std::optional<std::string> duplicate;
    const Json::parser_callback_t watch_keys = [&](int, Json::parse_event_t event, Json& parsed) {
        if (event == Json::parse_event_t::object_start) {
            keys_of_open_objects.emplace_back();
        } else if (event == Json::parse_event_t::object_end) {
            keys_of_open_objects.pop_back();
        } else if (event == Json::parse_event_t::key && !duplicate) {
            const auto& key = parsed.get_ref<const std::string&>();
            if (!keys_of_open_objects.back().insert(key).second) duplicate = key;
        }
        return true;
    };
    Json header;
    try {
        header = Json::parse(text, watch_keys);
    } catch (const Json::exception& e) {
        errors.fail(detail::concat("the header is not valid JSON: ", brief(e.what(), 300)));
    }
    if (duplicate) errors.fail(detail::concat("the header has the key '", brief(*duplicate), "' twice"));
    return header;
}

std::map<std::string, std::string> read_metadata(const Json& value, const LoadErrors& errors) {
    if (!value.is_object()) {
        errors.fail(detail::concat("\"__metadata__\" is ", json_type(value), ", not an object of strings"));
    }
    std::map<std::string, std::string> metadata;
    for (const auto& [key, item] : value.items()) {
        if (!item.is_string()) {
            errors.fail(detail::concat("\"__metadata__\" maps '", brief(key), "' to ", json_type(item),
                                       ", but its values must be strings"));
        }
        metadata[key] = item.get<std::string>();
    }
    return metadata;
}

// A JSON number that is a non-negative integer, as a uint64.
std::optional<std::uint64_t> as_count(const Json& value) {
    if (value.is_number_unsigned()) return value.get<std::uint64_t>();
    if (value.is_number_integer() && value.get<std::int64_t>() >= 0) return value.get<std::uint64_t>();
    return std::nullopt;
}


// Fills `entry` from the header's object for one tensor, or returns what is wrong with it.
std::optional<std::string> read_entry(const Json& value, std::uint64_t buffer_size, TensorEntry& entry) {
    if (!value.is_object()) return detail::concat("is ", json_type(value), ", not an object with dtype, shape and data_offsets");
    for (const auto& [key, item] : value.items()) {
        if (key != "dtype" && key != "shape" && key != "data_offsets")
            return detail::concat("has the unknown field \"", brief(key), "\"");
    }
    for (const char* field : {"dtype", "shape", "data_offsets"}) {
        if (!value.contains(field)) return detail::concat("has no \"", field, "\"");
    }

    const Json& dtype = value["dtype"];
    if (!dtype.is_string()) return detail::concat("\"dtype\" is ", json_type(dtype), ", not a string");
    entry.dtype = find_file_dtype(dtype.get<std::string>());
    if (entry.dtype == nullptr) return detail::concat("has the unknown dtype \"", brief(dtype.get<std::string>()), "\"");

    const Json& shape = value["shape"];
    if (!shape.is_array()) return detail::concat("\"shape\" is ", json_type(shape), ", not an array");
    if (shape.size() > static_cast<std::size_t>(Shape::kMaxRank)) {
        return detail::concat("\"shape\" ", brief(shape), " has rank ", shape.size(),
                              ", more than convkit's maximum of ", Shape::kMaxRank);
    }
    std::uint64_t numel = 1;
    bool numel_overflows = false;
    for (std::size_t i = 0; i < shape.size(); ++i) {
        const std::optional<std::uint64_t> dim = as_count(shape[i]);
        if (!dim) return detail::concat("\"shape\" ", brief(shape), ": dimension ", i, " is ", brief(shape[i]),
                                        ", not a non-negative integer");
        if (*dim > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max()))
            return detail::concat("\"shape\" ", brief(shape), ": dimension ", i, " is too large");
        entry.dims.push_back(static_cast<std::int64_t>(*dim));
        numel_overflows |= __builtin_mul_overflow(numel, *dim, &numel);
    }

    const Json& offsets = value["data_offsets"];
    if (!offsets.is_array() || offsets.size() != 2)
        return detail::concat("\"data_offsets\" is ", brief(offsets), ", not [begin, end]");
    const std::optional<std::uint64_t> begin = as_count(offsets[0]);
    const std::optional<std::uint64_t> end = as_count(offsets[1]);
    if (!begin || !end) return detail::concat("\"data_offsets\" ", brief(offsets), " are not non-negative integers");
    entry.begin = *begin;
    entry.end = *end;
    const std::string range = offsets_text(entry.begin, entry.end);
    if (entry.end < entry.begin) return detail::concat("\"data_offsets\" ", range, " end before they begin");
    if (entry.end > buffer_size) {
        return detail::concat("\"data_offsets\" ", range, " run past the end of the ", buffer_size,
                              "-byte data buffer");
    }

    std::uint64_t bits = 0;
    if (numel_overflows || __builtin_mul_overflow(numel, entry.dtype->bits, &bits)) {
        return detail::concat("shape ", dims_text(entry.dims), " of ", entry.dtype->name,
                              " has more bytes than 64 bits can count");
    }
    if (bits % 8 != 0) {
        return detail::concat("shape ", dims_text(entry.dims), " of ", entry.dtype->name,
                              " does not fill a whole number of bytes");
    }
    if (entry.end - entry.begin != bits / 8) {
        return detail::concat("\"data_offsets\" ", range, " hold ", entry.end - entry.begin, " bytes but shape ",
                              dims_text(entry.dims), " of ", entry.dtype->name, " needs ", bits / 8);
    }
    return std::nullopt;
}

// The format requires the tensors to cover the byte buffer exactly: no byte in two tensors, none
// in no tensor (which would let a file hide other content, a "polyglot").
void check_buffer_coverage(const std::vector<TensorEntry>& entries, std::uint64_t buffer_size, const LoadErrors& errors) {
    std::vector<const TensorEntry*> by_offset;
    for (const TensorEntry& e : entries) by_offset.push_back(&e);
    std::sort(by_offset.begin(), by_offset.end(), [](const TensorEntry* a, const TensorEntry* b) {
        return std::tie(a->begin, a->end, a->name) < std::tie(b->begin, b->end, b->name);
    });
    std::uint64_t covered = 0;
    const TensorEntry* previous = nullptr;
    for (const TensorEntry* e : by_offset) {
        if (e->begin < covered) {
            errors.fail(detail::concat("tensor '", brief(e->name), "' (data_offsets ", offsets_text(e->begin, e->end),
                                       ") overlaps tensor '", brief(previous->name), "' (data_offsets ",
                                       offsets_text(previous->begin, previous->end), ")"));
        }
        if (e->begin > covered) {
            errors.fail(detail::concat("the data buffer has a hole: bytes [", covered, ", ", e->begin,
                                       ") before tensor '", brief(e->name), "' belong to no tensor"));
        }
        covered = e->end;
        previous = e;
    }
    if (covered != buffer_size) {
        errors.fail(detail::concat("the data buffer has a hole: its last ", buffer_size - covered, " bytes (from ",
                                   covered, " of ", buffer_size, ") belong to no tensor"));
    }
}

Header read_header(const ReadOnlyFile& file, const LoadErrors& errors) {
    if (file.size() < kHeaderSizeBytes) {
        errors.fail(detail::concat("the file is ", file.size(), " bytes long, too short for the 8-byte header size"));
    }
    std::array<unsigned char, kHeaderSizeBytes> size_bytes{};
    file.read(0, size_bytes.data(), size_bytes.size());
    std::uint64_t header_size = 0;
    for (std::size_t i = 0; i < size_bytes.size(); ++i) header_size |= std::uint64_t{size_bytes[i]} << (8 * i);
    if (header_size > kMaxHeaderBytes) {
        errors.fail(detail::concat("the header size ", header_size, " is larger than the limit of ", kMaxHeaderBytes,
                                   " bytes"));
    }
    if (header_size > file.size() - kHeaderSizeBytes) {
        errors.fail(detail::concat("the header size ", header_size, " is larger than the file (", file.size(),
                                   " bytes, so at most ", file.size() - kHeaderSizeBytes, " after the size)"));
    }
    std::string text(header_size, '\0');
    file.read(kHeaderSizeBytes, text.data(), header_size);
    if (text.empty() || text.front() != '{') errors.fail("the header is not a JSON object (it must start with '{')");
    const Json json = parse_header_json(text, errors);

    Header header;
    header.buffer_start = kHeaderSizeBytes + header_size;
    const std::uint64_t buffer_size = file.size() - header.buffer_start;
    std::vector<std::string> problems;
    for (const auto& [name, value] : json.items()) {
        if (name == kMetadataKey) {
            header.metadata = read_metadata(value, errors);
            continue;
        }
        TensorEntry entry;
        entry.name = name;
        if (const std::optional<std::string> problem = read_entry(value, buffer_size, entry)) {
            problems.push_back(detail::concat("tensor '", brief(name), "' ", *problem));
        } else {
            header.entries.push_back(std::move(entry));
        }
    }
    if (problems.size() == 1) errors.fail(problems.front());
    if (!problems.empty()) {
        std::string listed;
        for (std::size_t i = 0; i < problems.size() && i < kMaxProblemsListed; ++i) listed += "; " + problems[i];
        if (problems.size() > kMaxProblemsListed) listed += detail::concat("; and ", problems.size() - kMaxProblemsListed, " more");
        errors.fail(detail::concat(problems.size(), " tensors are invalid", listed));
    }
    check_buffer_coverage(header.entries, buffer_size, errors);
    return header;
}

}  // namespace

void save_safetensors(const std::string& path, const TensorMap& tensors,
                      const std::map<std::string, std::string>& metadata) {
    // Everything that can be checked is checked before the file is created.
    const std::vector<TensorToWrite> order = tensors_in_file_order(tensors);
    const std::string header = header_text(order, metadata);

    detail::AtomicFile file(path, "save_safetensors");
    write_u64_le(file, header.size());
    file.write(header.data(), header.size());
    for (const TensorToWrite& t : order) {
        if (t.nbytes == 0) continue;
        // One tensor at a time on the host: a CUDA model needs host memory for its largest tensor only.
        // safetensors holds the logical (row-major) order: a channels-last tensor is written contiguous.
        const Tensor host = t.tensor->to(Device::host()).contiguous();
        file.write(host.raw_data(), t.nbytes);
    }
    file.commit();
}

TensorMap load_safetensors(const std::string& path, std::map<std::string, std::string>* metadata) {
    const LoadErrors errors(path);
    const ReadOnlyFile file(path, errors);
    Header header = read_header(file, errors);

    for (const TensorEntry& e : header.entries) {
        if (!e.dtype->convkit) {
            throw NotSupported(detail::concat("load_safetensors: ", path, ": tensor '", brief(e.name), "' has dtype ",
                                              e.dtype->name, ", which convkit does not support (it reads F32, F64, I64, BF16 and F16)"));
        }
    }
    TensorMap tensors;
    for (const TensorEntry& e : header.entries) {
        Tensor t = Tensor::empty(Shape(e.dims), *e.dtype->convkit);
        if (e.end > e.begin) file.read(header.buffer_start + e.begin, t.raw_data(), e.end - e.begin);
        tensors.emplace(e.name, std::move(t));
    }
    if (metadata != nullptr) *metadata = std::move(header.metadata);
    return tensors;
}

}  // namespace convkit
