#include "convkit/data/idx.h"

#include <zlib.h>

#include <algorithm>
#include <array>
#include <bit>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <memory>
#include <string>
#include <system_error>
#include <utility>

#include "convkit/error.h"
#include "core/check.h"

namespace convkit::data {

using detail::concat;

namespace {

// "cannot open: No such file or directory"
std::string concat_error(const char* what, int error_number) {
    return std::string(what) + ": " + std::error_code(error_number, std::generic_category()).message();
}

[[noreturn]] void fail(const std::string& path, const std::string& what) { throw IoError(path + ": " + what); }

// Sequential bytes of a file, decompressed when it is gzip. read() returns fewer bytes than
// asked only at the end of the data.
class ByteSource {
public:
    virtual ~ByteSource() = default;
    virtual std::size_t read(std::uint8_t* destination, std::size_t count) = 0;
};

struct FileCloser {
    void operator()(std::FILE* file) const { std::fclose(file); }
};
using FilePointer = std::unique_ptr<std::FILE, FileCloser>;

std::size_t read_file(std::FILE* file, const std::string& path, std::uint8_t* destination, std::size_t count) {
    const std::size_t got = std::fread(destination, 1, count, file);
    if (got < count && std::ferror(file)) fail(path, concat_error("read failed", errno));
    return got;
}

class PlainSource final : public ByteSource {
public:
    PlainSource(FilePointer file, std::string path) : file_(std::move(file)), path_(std::move(path)) {}
    std::size_t read(std::uint8_t* destination, std::size_t count) override {
        return read_file(file_.get(), path_, destination, count);
    }

private:
    FilePointer file_;
    std::string path_;
};

// RFC 1952 gzip, possibly several members one after another (as `cat a.gz b.gz` makes, and gzip
// itself reads). zlib checks each member's CRC-32 and length, so a corrupt stream is an error,
// never silently wrong data.
class GzipSource final : public ByteSource {
public:
    GzipSource(FilePointer file, std::string path) : file_(std::move(file)), path_(std::move(path)) {
        // 16 + MAX_WBITS: expect a gzip header and trailer, not a raw zlib stream.
        if (inflateInit2(&stream_, 16 + MAX_WBITS) != Z_OK) fail(path_, "zlib could not start decompressing");
    }
    ~GzipSource() override { inflateEnd(&stream_); }
    GzipSource(const GzipSource&) = delete;
    GzipSource& operator=(const GzipSource&) = delete;

    std::size_t read(std::uint8_t* destination, std::size_t count) override {
        std::size_t produced = 0;
        while (produced < count && !finished_) {
            if (stream_.avail_in == 0 && !refill()) {
                if (!member_ended_) fail(path_, "the gzip stream ends early (the file is truncated)");
                finished_ = true;
                break;
            }
            if (member_ended_) {  // more input after a finished member: the next member
                if (inflateReset(&stream_) != Z_OK) fail(path_, "zlib could not restart decompressing");
                member_ended_ = false;
            }
            const std::size_t chunk = std::min<std::size_t>(count - produced, kMaxChunk);
            stream_.next_out = destination + produced;
            stream_.avail_out = static_cast<uInt>(chunk);
            const int status = inflate(&stream_, Z_NO_FLUSH);
            produced += chunk - stream_.avail_out;
            if (status == Z_STREAM_END) {
                member_ended_ = true;
            } else if (status == Z_MEM_ERROR) {
                throw OutOfMemory(path_ + ": zlib ran out of memory decompressing");
            } else if (status != Z_OK && status != Z_BUF_ERROR) {
                fail(path_, std::string("corrupt gzip data (") + (stream_.msg != nullptr ? stream_.msg : "zlib error") + ")");
            }
        }
        return produced;
    }

private:
    static constexpr std::size_t kMaxChunk = std::size_t{1} << 30;  // avail_out is 32 bits

    bool refill() {
        const std::size_t got = read_file(file_.get(), path_, input_.data(), input_.size());
        stream_.next_in = input_.data();
        stream_.avail_in = static_cast<uInt>(got);
        return got > 0;
    }

    FilePointer file_;
    std::string path_;
    z_stream stream_{};
    std::array<std::uint8_t, 1 << 16> input_{};
    bool member_ended_ = false;
    bool finished_ = false;
};

std::unique_ptr<ByteSource> open_source(const std::string& path) {
    std::error_code error;
    if (std::filesystem::is_directory(path, error)) fail(path, "is a directory, not an IDX file");
    FilePointer file(std::fopen(path.c_str(), "rb"));
    if (!file) fail(path, concat_error("cannot open", errno));
    // gzip is recognised by its magic bytes 1f 8b (an IDX file starts with 00 00).
    std::array<std::uint8_t, 2> magic{};
    const std::size_t got = read_file(file.get(), path, magic.data(), magic.size());
    std::rewind(file.get());
    if (got == 2 && magic[0] == 0x1f && magic[1] == 0x8b) return std::make_unique<GzipSource>(std::move(file), path);
    return std::make_unique<PlainSource>(std::move(file), path);
}

bool valid_type_code(std::uint8_t code) {
    switch (static_cast<IdxType>(code)) {
        case IdxType::UInt8:
        case IdxType::Int8:
        case IdxType::Int16:
        case IdxType::Int32:
        case IdxType::Float32:
        case IdxType::Float64: return true;
    }
    return false;
}

std::uint32_t big_endian_u32(const std::uint8_t* bytes) {
    return (std::uint32_t{bytes[0]} << 24) | (std::uint32_t{bytes[1]} << 16) | (std::uint32_t{bytes[2]} << 8) |
           std::uint32_t{bytes[3]};
}

std::string dims_text(const std::vector<std::int64_t>& dims) {
    std::string text = "[";
    for (std::size_t i = 0; i < dims.size(); ++i) text += (i > 0 ? ", " : "") + std::to_string(dims[i]);
    return text + "]";
}

// The header, after which `source` stands at the first value.
IdxArray read_header(ByteSource& source, const std::string& path) {
    std::array<std::uint8_t, 4> magic{};
    const std::size_t got = source.read(magic.data(), magic.size());
    if (got < magic.size()) fail(path, concat("ends after ", got, " bytes, inside the 4-byte IDX magic number (truncated or empty)"));
    if (magic[0] != 0 || magic[1] != 0 || !valid_type_code(magic[2])) {
        fail(path, concat("is not an IDX file: its magic number is ", std::hex, "0x", int{magic[0]}, " 0x", int{magic[1]},
                          " 0x", int{magic[2]}, " 0x", int{magic[3]},
                          ", an IDX file starts 0x0 0x0 then a type code (0x8, 0x9, 0xb, 0xc, 0xd or 0xe)"));
    }
    IdxArray array;
    array.type = static_cast<IdxType>(magic[2]);
    const int ndims = magic[3];
    std::vector<std::uint8_t> dim_bytes(static_cast<std::size_t>(ndims) * 4);
    const std::size_t dims_got = source.read(dim_bytes.data(), dim_bytes.size());
    if (dims_got < dim_bytes.size()) {
        fail(path, concat("ends inside its header: ", ndims, " dimensions need ", dim_bytes.size(),
                          " bytes of sizes after the magic number, the file has ", dims_got, " (truncated?)"));
    }
    for (int d = 0; d < ndims; ++d) array.dims.push_back(big_endian_u32(&dim_bytes[static_cast<std::size_t>(d) * 4]));
    return array;
}

// The declared payload size, or an error if it could never be held in memory.
std::size_t payload_bytes(const IdxArray& array, const std::string& path) {
    std::size_t bytes = idx_type_size(array.type);
    for (std::int64_t d : array.dims) {
        if (__builtin_mul_overflow(bytes, static_cast<std::size_t>(d), &bytes) || bytes > std::size_t{PTRDIFF_MAX}) {
            fail(path, "its header's dims " + dims_text(array.dims) + " describe more data than can be addressed (corrupt header?)");
        }
    }
    return bytes;
}

// Reads the values, growing the buffer as data arrives: a corrupt header that declares
// terabytes fails as truncated instead of attempting the allocation.
void read_payload(ByteSource& source, IdxArray& array, const std::string& path) {
    const std::size_t expected = payload_bytes(array, path);
    constexpr std::size_t kFirstChunk = std::size_t{1} << 24;
    std::size_t have = 0;
    while (have < expected) {
        const std::size_t target = std::min(expected, std::max(kFirstChunk, 2 * have));
        array.bytes.resize(target);
        const std::size_t got = source.read(array.bytes.data() + have, target - have);
        have += got;
        if (have < target) {
            fail(path, concat("holds ", have, " bytes of values but its header declares ", expected, " (",
                              idx_type_name(array.type), " ", dims_text(array.dims), "): the file is truncated"));
        }
    }
    std::uint8_t probe[4096];
    std::size_t trailing = 0;
    for (std::size_t got; (got = source.read(probe, sizeof probe)) > 0;) trailing += got;
    if (trailing > 0) {
        fail(path, concat("has ", trailing, " bytes after the ", expected, " bytes of values its header declares (",
                          idx_type_name(array.type), " ", dims_text(array.dims), ")"));
    }
}

// IDX stores values big-endian.
void to_host_byte_order(IdxArray& array) {
    if constexpr (std::endian::native == std::endian::big) return;
    const std::size_t width = idx_type_size(array.type);
    if (width == 1) return;
    for (std::size_t i = 0; i < array.bytes.size(); i += width) std::reverse(&array.bytes[i], &array.bytes[i] + width);
}

template <typename Stored, typename Out>
void convert_values(const IdxArray& array, Out* out) {
    const Stored* values = array.values<Stored>();
    const std::int64_t n = array.numel();
    for (std::int64_t i = 0; i < n; ++i) out[i] = static_cast<Out>(values[i]);
}

const char* const kFashionMnistHint =
    "to get Fashion-MNIST, install the Debian package dataset-fashion-mnist (sudo apt-get install "
    "dataset-fashion-mnist, which puts it in /usr/share/datasets/fashion-mnist) or pass --data-dir with a "
    "directory holding its four IDX files";

// The .gz file if there is one, else the plain one; an IoError naming both when neither exists.
std::string find_idx_file(const std::string& directory, const std::string& name) {
    const std::filesystem::path base = std::filesystem::path(directory) / name;
    const std::string gz = base.string() + ".gz";
    std::error_code error;
    if (std::filesystem::exists(gz, error)) return gz;
    if (std::filesystem::exists(base, error)) return base.string();
    const std::string where = std::filesystem::is_directory(directory, error)
                                  ? "neither " + gz + " nor " + base.string() + " exists"
                                  : "the directory " + directory + " does not exist (looked for " + gz + ")";
    throw IoError(std::string("load_fashion_mnist: ") + where + "; " + kFashionMnistHint);
}

IdxArray read_with_hint(const std::string& path) {
    try {
        return read_idx_array(path);
    } catch (const IoError& e) {
        throw IoError(std::string(e.what()) + "; " + kFashionMnistHint);
    }
}

void require_u8_with_dims(const IdxArray& array, const std::string& path, std::size_t ndims, const char* layout) {
    if (array.type != IdxType::UInt8 || array.dims.size() != ndims) {
        fail(path, concat("expected ", ndims, " dimensions ", layout, " of u8, the header says ", array.dims.size(),
                          " dimensions ", dims_text(array.dims), " of ", idx_type_name(array.type), "; ",
                          kFashionMnistHint));
    }
}

}  // namespace

std::size_t idx_type_size(IdxType type) {
    switch (type) {
        case IdxType::UInt8:
        case IdxType::Int8: return 1;
        case IdxType::Int16: return 2;
        case IdxType::Int32:
        case IdxType::Float32: return 4;
        case IdxType::Float64: return 8;
    }
    throw InvalidArgument(detail::concat("idx_type_size: unknown IDX type code ", static_cast<int>(type)));
}

const char* idx_type_name(IdxType type) {
    switch (type) {
        case IdxType::UInt8: return "u8";
        case IdxType::Int8: return "i8";
        case IdxType::Int16: return "i16";
        case IdxType::Int32: return "i32";
        case IdxType::Float32: return "f32";
        case IdxType::Float64: return "f64";
    }
    return "unknown";
}

std::int64_t IdxArray::numel() const {
    std::int64_t n = 1;
    for (std::int64_t d : dims) n *= d;
    return n;
}

void IdxArray::check_value_type(IdxType requested) const {
    CONVKIT_REQUIRE(requested == type, "IdxArray::values", "the array holds ", idx_type_name(type), " values but ",
                    idx_type_name(requested), " values were asked for");
}

IdxArray read_idx_array(const std::string& path) {
    const std::unique_ptr<ByteSource> source = open_source(path);
    IdxArray array = read_header(*source, path);
    read_payload(*source, array, path);
    to_host_byte_order(array);
    return array;
}

Tensor read_idx(const std::string& path) {
    const IdxArray array = read_idx_array(path);
    if (array.dims.size() > static_cast<std::size_t>(Shape::kMaxRank)) {
        fail(path, concat("has ", array.dims.size(), " dimensions ", dims_text(array.dims), "; a tensor holds at most ",
                          Shape::kMaxRank, " (use read_idx_array)"));
    }
    const Shape shape(array.dims);
    switch (array.type) {
        case IdxType::Float32: {
            Tensor t = Tensor::empty(shape, DType::Float32);
            // An empty file's buffers may be null, and memcpy must not see a null pointer.
            if (!array.bytes.empty()) std::memcpy(t.raw_data(), array.bytes.data(), array.bytes.size());
            return t;
        }
        case IdxType::Float64: {
            Tensor t = Tensor::empty(shape, DType::Float64);
            if (!array.bytes.empty()) std::memcpy(t.raw_data(), array.bytes.data(), array.bytes.size());
            return t;
        }
        default: break;
    }
    Tensor t = Tensor::empty(shape, DType::Int64);
    auto* out = t.data<std::int64_t>();
    switch (array.type) {
        case IdxType::UInt8: convert_values<std::uint8_t>(array, out); break;
        case IdxType::Int8: convert_values<std::int8_t>(array, out); break;
        case IdxType::Int16: convert_values<std::int16_t>(array, out); break;
        default: convert_values<std::int32_t>(array, out); break;
    }
    return t;
}

ImageClassificationSet load_fashion_mnist(const std::string& directory, Split split) {
    const std::string prefix = split == Split::Train ? "train" : "t10k";
    const std::string images_path = find_idx_file(directory, prefix + "-images-idx3-ubyte");
    const std::string labels_path = find_idx_file(directory, prefix + "-labels-idx1-ubyte");
    const IdxArray images = read_with_hint(images_path);
    require_u8_with_dims(images, images_path, 3, "[N, rows, cols]");
    const IdxArray labels = read_with_hint(labels_path);
    require_u8_with_dims(labels, labels_path, 1, "[N]");
    const std::int64_t n = images.dims[0];
    if (labels.dims[0] != n) {
        fail(labels_path, concat("holds ", labels.dims[0], " labels but ", images_path, " holds ", n, " images; ",
                                 kFashionMnistHint));
    }

    ImageClassificationSet set;
    set.labels = Tensor::empty(Shape{n}, DType::Int64);
    const std::uint8_t* label_values = labels.values<std::uint8_t>();
    auto* label_out = set.labels.data<std::int64_t>();
    for (std::int64_t i = 0; i < n; ++i) {
        if (label_values[i] >= 10) {
            fail(labels_path, concat("label ", i, " is ", int{label_values[i]}, ", outside the classes 0..9; ",
                                     kFashionMnistHint));
        }
        label_out[i] = label_values[i];
    }
    // Straight from the packed bytes to float32: no int64 copy of the images ever exists.
    set.images = Tensor::empty(Shape{n, 1, images.dims[1], images.dims[2]}, DType::Float32);
    const std::uint8_t* pixels = images.values<std::uint8_t>();
    auto* out = set.images.data<float>();
    const std::int64_t count = images.numel();
    for (std::int64_t i = 0; i < count; ++i) out[i] = static_cast<float>(pixels[i]) / 255.0f;
    return set;
}

const std::vector<std::string>& fashion_mnist_class_names() {
    static const std::vector<std::string> names = {"T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                                                   "Sandal",      "Shirt",   "Sneaker",  "Bag",   "Ankle boot"};
    return names;
}

}  // namespace convkit::data
