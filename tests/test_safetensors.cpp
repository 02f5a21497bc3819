// save_safetensors / load_safetensors: bit-exact round trips, the reference writer's byte layout,
// and a named error (never a crash) for every truncated or corrupted file.
#include <signal.h>
#include <sys/resource.h>

#include <cstring>
#include <limits>
#include <map>
#include <string>
#include <vector>

#include "convkit/io/safetensors.h"
#include "temp_dir.h"
#include "test_util.h"

namespace convkit {
namespace {

using testing::message_of;
using testing::read_bytes;
using testing::TempDir;
using testing::write_bytes;

// Evaluates `text` once: it is often a message_of call that saves or loads.
#define EXPECT_CONTAINS(text, part)                                                          \
    do {                                                                                     \
        const std::string text_ = (text);                                                    \
        EXPECT_NE(text_.find(part), std::string::npos) << "expected \"" << (part) << "\" in: " << text_; \
    } while (0)

std::string raw_bytes(const Tensor& t) {
    const Tensor host = t.to(Device::host());
    return {static_cast<const char*>(host.raw_data()), host.nbytes()};
}

// Random bit patterns, NaN payloads, infinities and denormals included: the file must carry
// bytes, not values.
Tensor random_bits(const Shape& shape, DType dtype, std::mt19937_64& rng) {
    Tensor t = Tensor::empty(shape, dtype);
    auto* bytes = static_cast<unsigned char*>(t.raw_data());
    for (std::size_t i = 0; i < t.nbytes(); ++i) bytes[i] = static_cast<unsigned char>(rng());
    return t;
}

void expect_same_tensors(const TensorMap& loaded, const TensorMap& saved) {
    ASSERT_EQ(loaded.size(), saved.size());
    for (const auto& [name, tensor] : saved) {
        SCOPED_TRACE("tensor " + name);
        const auto it = loaded.find(name);
        ASSERT_NE(it, loaded.end());
        const Tensor& got = it->second;
        EXPECT_TRUE(got.device().is_host());
        EXPECT_EQ(got.dtype(), tensor.dtype());
        EXPECT_EQ(got.shape(), tensor.shape()) << got.shape().to_string() << " vs " << tensor.shape().to_string();
        EXPECT_TRUE(raw_bytes(got) == raw_bytes(tensor)) << "bytes differ";
    }
}

const std::vector<Shape>& shapes_of_every_rank() {
    static const std::vector<Shape> shapes{Shape{}, Shape{5}, Shape{2, 3}, Shape{2, 1, 3}, Shape{3, 1, 2, 2},
                                           Shape{1, 2, 3, 1, 2}};
    return shapes;
}

std::string u64_le(std::uint64_t n) {
    std::string s(8, '\0');
    for (int i = 0; i < 8; ++i) s[static_cast<std::size_t>(i)] = static_cast<char>((n >> (8 * i)) & 0xff);
    return s;
}

// A file from its parts: the size field, the header (padded with spaces to a multiple of 8
// unless `pad` is false), the byte buffer.
std::string file_bytes(std::string header, const std::string& buffer, bool pad = true) {
    if (pad) header.append((8 - header.size() % 8) % 8, ' ');
    return u64_le(header.size()) + header + buffer;
}

std::string f32_bytes(const std::vector<float>& values) {
    return {reinterpret_cast<const char*>(values.data()), values.size() * sizeof(float)};
}

// ---------------------------------------------------------------------------------------------
// Round trips

TEST(Safetensors, EveryDtypeAndRankRoundTripsBitExactly) {
    CONVKIT_SEEDED_RNG(rng);
    TempDir dir;
    TensorMap saved;
    for (DType dtype : {DType::Float32, DType::Float64, DType::Int64, DType::BFloat16, DType::Float16}) {
        for (const Shape& shape : shapes_of_every_rank()) {
            saved[std::string(dtype_name(dtype)) + "_rank" + std::to_string(shape.rank())] =
                random_bits(shape, dtype, rng);
        }
    }
    save_safetensors(dir.file("all.safetensors"), saved);
    expect_same_tensors(load_safetensors(dir.file("all.safetensors")), saved);
}

TEST(Safetensors, EmptyTensorsKeepTheirShapes) {
    TempDir dir;
    TensorMap saved;
    for (DType dtype : {DType::Float32, DType::Float64, DType::Int64, DType::BFloat16, DType::Float16}) {
        saved[std::string("empty_") + dtype_name(dtype)] = Tensor::empty(Shape{2, 0, 3}, dtype);
    }
    saved["empty_rank1"] = Tensor::empty(Shape{0});
    saved["empty_rank5"] = Tensor::empty(Shape{0, 0, 0, 0, 0}, DType::Int64);
    saved["one"] = Tensor::full(Shape{1}, 7.0);  // between the empty ones in the buffer
    save_safetensors(dir.file("empty.safetensors"), saved);
    expect_same_tensors(load_safetensors(dir.file("empty.safetensors")), saved);
}

TEST(Safetensors, MetadataRoundTrips) {
    TempDir dir;
    const std::map<std::string, std::string> metadata{
        {"format", "pt"}, {"epoch", "12"}, {"empty", ""}, {"text", "quotes \" \\ and unicode \xc3\xbc \xe2\x88\x91"}};
    save_safetensors(dir.file("m.safetensors"), {{"x", Tensor::full(Shape{2}, 1.5)}}, metadata);
    std::map<std::string, std::string> loaded{{"stale", "entry"}};
    const TensorMap tensors = load_safetensors(dir.file("m.safetensors"), &loaded);
    EXPECT_EQ(loaded, metadata);
    EXPECT_EQ(tensors.at("x").to_vector(), (std::vector<double>{1.5, 1.5}));

    // A file without "__metadata__" empties the map.
    save_safetensors(dir.file("none.safetensors"), {{"x", Tensor::full(Shape{2}, 1.5)}});
    load_safetensors(dir.file("none.safetensors"), &loaded);
    EXPECT_TRUE(loaded.empty());
}

TEST(Safetensors, OverwritingReplacesTheFileAndLeavesNothingElse) {
    TempDir dir;
    const std::string path = dir.file("ckpt.safetensors");
    save_safetensors(path, {{"a", Tensor::full(Shape{100}, 1.0)}});
    save_safetensors(path, {{"b", Tensor::full(Shape{2}, 2.0, DType::Int64)}});
    const TensorMap loaded = load_safetensors(path);
    ASSERT_EQ(loaded.size(), 1u);
    EXPECT_EQ(loaded.at("b").to_vector(), (std::vector<double>{2, 2}));
    EXPECT_EQ(dir.entries(), std::vector<std::string>{"ckpt.safetensors"});
}

// ---------------------------------------------------------------------------------------------
// The layout of the reference implementation (huggingface/safetensors, safetensors/src/tensor.rs)

TEST(SafetensorsLayout, MatchesTheReferenceWriterByteForByte) {
    // tensor.rs test_serialization_forced_alignement: {"attn0": F32 [1, 1, 2, 3] = 0..5}.
    const std::string expected = file_bytes(R"({"attn0":{"dtype":"F32","shape":[1,1,2,3],"data_offsets":[0,24]}})",
                                            f32_bytes({0, 1, 2, 3, 4, 5}));
    ASSERT_EQ(expected.substr(0, 8), u64_le(72));
    TempDir dir;
    save_safetensors(dir.file("a.safetensors"),
                     {{"attn0", Tensor::from_values(Shape{1, 1, 2, 3}, {0, 1, 2, 3, 4, 5})}});
    EXPECT_EQ(read_bytes(dir.file("a.safetensors")), expected);

    // tensor.rs test_empty: no tensors, then no tensors with {"framework": "pt"}.
    save_safetensors(dir.file("empty.safetensors"), {});
    EXPECT_EQ(read_bytes(dir.file("empty.safetensors")), u64_le(8) + "{}      ");
    save_safetensors(dir.file("meta.safetensors"), {}, {{"framework", "pt"}});
    EXPECT_EQ(read_bytes(dir.file("meta.safetensors")), u64_le(40) + R"({"__metadata__":{"framework":"pt"}})" + "     ");
}

TEST(SafetensorsLayout, TensorsAreOrderedByAlignmentThenNameAndStartAligned) {
    TempDir dir;
    save_safetensors(dir.file("o.safetensors"), {{"a", Tensor::full(Shape{3}, 1.0, DType::Float32)},
                                                 {"b", Tensor::full(Shape{1}, 2.0, DType::Int64)},
                                                 {"c", Tensor::full(Shape{1}, 3.0, DType::Float64)},
                                                 {"d", Tensor::full(Shape{1}, 4.0, DType::Int64)},
                                                 {"e", Tensor::full(Shape{1}, 1.0, DType::Float16)},
                                                 {"f", Tensor::full(Shape{1}, 1.0, DType::BFloat16)},
                                                 {"g", Tensor::full(Shape{1}, 2.0, DType::BFloat16)}});
    const std::string bytes = read_bytes(dir.file("o.safetensors"));
    // The reference writer sorts by its dtype enum, descending (... F16, BF16, ..., F32, ...,
    // F64, I64), then by name: BF16 before F16 although both are 2 bytes.
    const std::string header = R"({"b":{"dtype":"I64","shape":[1],"data_offsets":[0,8]},)"
                               R"("d":{"dtype":"I64","shape":[1],"data_offsets":[8,16]},)"
                               R"("c":{"dtype":"F64","shape":[1],"data_offsets":[16,24]},)"
                               R"("a":{"dtype":"F32","shape":[3],"data_offsets":[24,36]},)"
                               R"("f":{"dtype":"BF16","shape":[1],"data_offsets":[36,38]},)"
                               R"("g":{"dtype":"BF16","shape":[1],"data_offsets":[38,40]},)"
                               R"("e":{"dtype":"F16","shape":[1],"data_offsets":[40,42]}})";
    const std::uint64_t padded = (header.size() + 7) / 8 * 8;
    ASSERT_EQ(bytes.size(), 8 + padded + 42);
    EXPECT_EQ(bytes.substr(bytes.size() - 6), std::string("\x80\x3F\x00\x40\x00\x3C", 6));
    EXPECT_EQ(bytes.substr(0, 8), u64_le(padded));
    EXPECT_EQ(bytes.substr(8, header.size()), header);
    EXPECT_EQ(bytes.substr(8 + header.size(), padded - header.size()), std::string(padded - header.size(), ' '));
}

TEST(SafetensorsLayout, LoadsAHandMadeFile) {
    // The same bytes written out by hand, and the spec's own example (an I32 tensor, which convkit
    // does not hold: refused after the whole file was found valid).
    TempDir dir;
    write_bytes(dir.file("hand.safetensors"),
                file_bytes(R"({"attn0":{"dtype":"F32","shape":[1,1,2,3],"data_offsets":[0,24]}})",
                           f32_bytes({0, 1, 2, 3, 4, 5})));
    const TensorMap loaded = load_safetensors(dir.file("hand.safetensors"));
    ASSERT_EQ(loaded.size(), 1u);
    EXPECT_EQ(loaded.at("attn0").shape(), (Shape{1, 1, 2, 3}));
    EXPECT_EQ(loaded.at("attn0").dtype(), DType::Float32);
    EXPECT_EQ(loaded.at("attn0").to_vector(), (std::vector<double>{0, 1, 2, 3, 4, 5}));

    // From the doc comment of SafeTensors::deserialize: "<" is 60, the header's unpadded size.
    const std::string spec_example = std::string("<\0\0\0\0\0\0\0", 8) +
                                     R"({"test":{"dtype":"I32","shape":[2,2],"data_offsets":[0,16]}})" +
                                     std::string(16, '\0');
    write_bytes(dir.file("spec.safetensors"), spec_example);
    const std::string message = message_of<NotSupported>([&] { load_safetensors(dir.file("spec.safetensors")); });
    EXPECT_CONTAINS(message, "tensor 'test' has dtype I32, which convkit does not support");
    EXPECT_CONTAINS(message, dir.file("spec.safetensors"));
}

TEST(SafetensorsLayout, SixteenBitTensorsAreLittleEndian) {
    // BF16 1.0 is 0x3F80 and -2.0 is 0xC000; F16 1.0 is 0x3C00 and 65504 (its largest) 0x7BFF.
    TempDir dir;
    write_bytes(dir.file("h.safetensors"),
                file_bytes(R"({"b":{"dtype":"BF16","shape":[2],"data_offsets":[0,4]},)"
                           R"("h":{"dtype":"F16","shape":[2],"data_offsets":[4,8]}})",
                           std::string("\x80\x3F\x00\xC0\x00\x3C\xFF\x7B", 8)));
    const TensorMap loaded = load_safetensors(dir.file("h.safetensors"));
    EXPECT_EQ(loaded.at("b").dtype(), DType::BFloat16);
    EXPECT_EQ(loaded.at("h").dtype(), DType::Float16);
    EXPECT_EQ(loaded.at("b").to_vector(), (std::vector<double>{1.0, -2.0}));
    EXPECT_EQ(loaded.at("h").to_vector(), (std::vector<double>{1.0, 65504.0}));

}

// ---------------------------------------------------------------------------------------------
// Truncated and corrupted files

TEST(SafetensorsCorrupt, EveryTruncationIsAnIoError) {
    TempDir dir;
    const std::string path = dir.file("full.safetensors");
    save_safetensors(path,
                     {{"w", Tensor::from_values(Shape{2, 2}, {1, 2, 3, 4})},
                      {"n", Tensor::full(Shape{}, 3.0, DType::Int64)},
                      {"e", Tensor::empty(Shape{0, 2}, DType::Float64)}},
                     {{"k", "v"}});
    const std::string full = read_bytes(path);
    ASSERT_EQ(load_safetensors(path).size(), 3u);
    const std::string cut = dir.file("cut.safetensors");
    for (std::size_t length = 0; length < full.size(); ++length) {
        SCOPED_TRACE("first " + std::to_string(length) + " of " + std::to_string(full.size()) + " bytes");
        write_bytes(cut, full.substr(0, length));
        const std::string message = message_of<IoError>([&] { load_safetensors(cut); });
        EXPECT_CONTAINS(message, "load_safetensors: " + cut + ": ");
    }
}

TEST(SafetensorsCorrupt, RandomByteChangesGiveAFileOrAnError) {
    // Changed header bytes mostly break the JSON, but also hit digits of shapes and offsets,
    // dtype letters and the size field. The result is a valid file or one of the two errors.
    CONVKIT_SEEDED_RNG(rng);
    TempDir dir;
    const std::string path = dir.file("valid.safetensors");
    save_safetensors(path,
                     {{"a", Tensor::from_values(Shape{2, 3}, {1, 2, 3, 4, 5, 6})},
                      {"b", Tensor::full(Shape{}, 3.0, DType::Int64)},
                      {"c", Tensor::full(Shape{1, 1, 1, 1, 2}, 4.0, DType::Float64)}},
                     {{"k", "v"}});
    const std::string valid = read_bytes(path);
    const std::string digits_and_signs = "0123456789-.e\"[]{},: FIU";
    int loaded = 0;
    for (int round = 0; round < 500; ++round) {
        std::string bytes = valid;
        const auto changes = testing::pick(rng, 1, 3);
        for (std::int64_t c = 0; c < changes; ++c) {
            const auto at = static_cast<std::size_t>(testing::pick(rng, 0, static_cast<std::int64_t>(bytes.size()) - 1));
            bytes[at] = rng() % 2 == 0 ? static_cast<char>(rng())
                                       : digits_and_signs[rng() % digits_and_signs.size()];
        }
        write_bytes(dir.file("changed.safetensors"), bytes);
        try {
            load_safetensors(dir.file("changed.safetensors"));
            ++loaded;
        } catch (const IoError&) {
        } catch (const NotSupported&) {
        }
    }
    EXPECT_GT(loaded, 0);  // changes inside the byte buffer leave a valid file
}

struct Corruption {
    const char* name;
    std::string bytes;
    std::string expected;  // a part of the message
};

// Two F32 tensors, "a" [2] at [0, 8) and "b" [1] at [8, 12), unless a case changes them.
std::string with_header(const std::string& header, const std::string& buffer = std::string(12, '\1')) {
    return file_bytes(header, buffer);
}

std::vector<Corruption> corruptions() {
    const std::string a = R"("a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]})";
    const std::string b = R"("b":{"dtype":"F32","shape":[1],"data_offsets":[8,12]})";
    const std::string valid_header = "{" + a + "," + b + "}";
    return {
        {"empty file", "", "the file is 0 bytes long, too short for the 8-byte header size"},
        {"seven bytes", std::string(7, '\0'), "the file is 7 bytes long"},
        {"header past the end", u64_le(100) + "{}", "the header size 100 is larger than the file (10 bytes"},
        {"absurd header size", u64_le(std::uint64_t{1} << 40) + "{}",
         "the header size 1099511627776 is larger than the limit of 100000000 bytes"},
        {"largest header size", u64_le(std::numeric_limits<std::uint64_t>::max()) + "{}", "larger than the limit"},
        {"empty header", u64_le(0), "the header is not a JSON object (it must start with '{')"},
        {"header not an object", with_header("[1, 2]"), "not a JSON object"},
        {"leading space", with_header(" " + valid_header), "must start with '{'"},
        {"header not JSON", with_header(R"({"a": {"dtype": )"), "the header is not valid JSON"},
        {"trailing garbage", with_header(valid_header + "x"), "the header is not valid JSON"},
        {"invalid UTF-8", with_header("{\"\xff\":1}"), "the header is not valid JSON"},
        {"duplicate tensor", with_header("{" + a + "," + a + "}", std::string(8, '\1')), "the key 'a' twice"},
        {"duplicate field", with_header(R"({"a":{"dtype":"F32","dtype":"F64","shape":[2],"data_offsets":[0,8]}})",
                                        std::string(8, '\1')),
         "the key 'dtype' twice"},
        {"entry not an object", with_header(R"({"a":[0,8]})"), "tensor 'a' is an array, not an object"},
        {"no dtype", with_header(R"({"a":{"shape":[2],"data_offsets":[0,8]}})", std::string(8, '\1')),
         "tensor 'a' has no \"dtype\""},
        {"no shape", with_header(R"({"a":{"dtype":"F32","data_offsets":[0,8]}})", std::string(8, '\1')),
         "tensor 'a' has no \"shape\""},
        {"no offsets", with_header(R"({"a":{"dtype":"F32","shape":[2]}})", std::string(8, '\1')),
         "tensor 'a' has no \"data_offsets\""},
        {"unknown field", with_header(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8],"stride":[1]}})",
                                      std::string(8, '\1')),
         "tensor 'a' has the unknown field \"stride\""},
        {"dtype not a string", with_header(R"({"a":{"dtype":4,"shape":[2],"data_offsets":[0,8]}})", std::string(8, '\1')),
         "tensor 'a' \"dtype\" is an integer, not a string"},
        {"unknown dtype", with_header(R"({"a":{"dtype":"F17","shape":[2],"data_offsets":[0,8]}})", std::string(8, '\1')),
         "tensor 'a' has the unknown dtype \"F17\""},
        {"shape not an array", with_header(R"({"a":{"dtype":"F32","shape":2,"data_offsets":[0,8]}})", std::string(8, '\1')),
         "tensor 'a' \"shape\" is an integer, not an array"},
        {"negative dim", with_header(R"({"a":{"dtype":"F32","shape":[2,-1],"data_offsets":[0,8]}})", std::string(8, '\1')),
         "tensor 'a' \"shape\" [2,-1]: dimension 1 is -1, not a non-negative integer"},
        {"fractional dim", with_header(R"({"a":{"dtype":"F32","shape":[2.5],"data_offsets":[0,8]}})", std::string(8, '\1')),
         "dimension 0 is 2.5, not a non-negative integer"},
        {"string dim", with_header(R"({"a":{"dtype":"F32","shape":["2"],"data_offsets":[0,8]}})", std::string(8, '\1')),
         "dimension 0 is \"2\", not a non-negative integer"},
        {"dim past int64", with_header(R"({"a":{"dtype":"F32","shape":[9223372036854775808],"data_offsets":[0,8]}})",
                                       std::string(8, '\1')),
         "dimension 0 is too large"},
        {"rank 6", with_header(R"({"a":{"dtype":"F32","shape":[1,1,1,1,1,2],"data_offsets":[0,8]}})", std::string(8, '\1')),
         "tensor 'a' \"shape\" [1,1,1,1,1,2] has rank 6, more than convkit's maximum of 5"},
        {"offsets not a pair", with_header(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0]}})", std::string(8, '\1')),
         "tensor 'a' \"data_offsets\" is [0], not [begin, end]"},
        {"offsets an object", with_header(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":{}}})", std::string(8, '\1')),
         "\"data_offsets\" is {}, not [begin, end]"},
        {"negative offset", with_header(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[-8,0]}})", std::string(8, '\1')),
         "\"data_offsets\" [-8,0] are not non-negative integers"},
        {"offset past the buffer", with_header(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[8,16]}})", std::string(8, '\1')),
         "tensor 'a' \"data_offsets\" [8, 16] run past the end of the 8-byte data buffer"},
        {"end before begin", with_header(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[8,0]}})", std::string(8, '\1')),
         "tensor 'a' \"data_offsets\" [8, 0] end before they begin"},
        {"wrong byte count", with_header(R"({"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})", std::string(8, '\1')),
         "tensor 'a' \"data_offsets\" [0, 8] hold 8 bytes but shape [3] of F32 needs 12"},
        {"byte count overflows", with_header(R"({"a":{"dtype":"F64","shape":[4294967296,4294967296],"data_offsets":[0,8]}})",
                                             std::string(8, '\1')),
         "shape [4294967296, 4294967296] of F64 has more bytes than 64 bits can count"},
        {"two bad tensors", with_header(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,9]},"b":{"dtype":"X"}})"),
         "2 tensors are invalid; tensor 'a' \"data_offsets\" [0, 9] hold 9 bytes but shape [2] of F32 needs 8; "
         "tensor 'b' has no \"shape\""},
        {"overlap", with_header(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                                R"("b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})"),
         "tensor 'b' (data_offsets [4, 12]) overlaps tensor 'a' (data_offsets [0, 8])"},
        {"empty tensor inside another", with_header(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                                                    R"("e":{"dtype":"F32","shape":[0],"data_offsets":[4,4]},)" + b + "}"),
         "tensor 'e' (data_offsets [4, 4]) overlaps tensor 'a'"},
        {"hole", with_header(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},)" + b + "}"),
         "the data buffer has a hole: bytes [4, 8) before tensor 'b' belong to no tensor"},
        {"hole at the start", with_header("{" + b + "}"), "bytes [0, 8) before tensor 'b' belong to no tensor"},
        {"bytes after the last tensor", with_header(valid_header, std::string(16, '\1')),
         "the data buffer has a hole: its last 4 bytes (from 12 of 16) belong to no tensor"},
        {"data but no tensors", with_header("{}", std::string(4, '\1')), "its last 4 bytes"},
        {"metadata not an object", with_header(R"({"__metadata__":["a"],)" + a + "," + b + "}"),
         "\"__metadata__\" is an array, not an object of strings"},
        {"metadata value not a string", with_header(R"({"__metadata__":{"epoch":3},)" + a + "," + b + "}"),
         "\"__metadata__\" maps 'epoch' to an integer, but its values must be strings"},
        {"F16 of the wrong size", with_header(R"({"a":{"dtype":"F16","shape":[2],"data_offsets":[0,8]},)" + b + "}"),
         "tensor 'a' \"data_offsets\" [0, 8] hold 8 bytes but shape [2] of F16 needs 4"},
        {"F4 in half a byte", with_header(R"({"a":{"dtype":"F4","shape":[3],"data_offsets":[0,2]}})", std::string(2, '\1')),
         "shape [3] of F4 does not fill a whole number of bytes"},
    };
}

TEST(SafetensorsCorrupt, EachProblemIsNamed) {
    TempDir dir;
    for (const Corruption& c : corruptions()) {
        SCOPED_TRACE(c.name);
        const std::string path = dir.file("bad.safetensors");
        write_bytes(path, c.bytes);
        const std::string message = message_of<IoError>([&] { load_safetensors(path); });
        EXPECT_CONTAINS(message, "load_safetensors: " + path + ": ");
        EXPECT_CONTAINS(message, c.expected);
    }
}

TEST(SafetensorsCorrupt, ValidFilesOfOtherDtypesAreNotSupported) {
    TempDir dir;
    for (const char* dtype : {"I16", "I32", "U8", "BOOL", "F8_E4M3"}) {
        SCOPED_TRACE(dtype);
        const std::size_t size = std::string(dtype) == "I16" ? 2
                                 : std::string(dtype) == "I32"                               ? 4
                                                                                             : 1;
        write_bytes(dir.file("h.safetensors"),
                    with_header(std::string(R"({"w":{"dtype":")") + dtype + R"(","shape":[3],"data_offsets":[0,)" +
                                    std::to_string(3 * size) + "]}}",
                                std::string(3 * size, '\0')));
        const std::string message = message_of<NotSupported>([&] { load_safetensors(dir.file("h.safetensors")); });
        EXPECT_CONTAINS(message, std::string("tensor 'w' has dtype ") + dtype + ", which convkit does not support");
    }
}

TEST(SafetensorsCorrupt, HostileHeadersGiveShortMessages) {
    TempDir dir;
    const std::string path = dir.file("hostile.safetensors");
    // A deeply nested value: parsed and rejected without exhausting the stack.
    constexpr int kDepth = 200000;
    write_bytes(path, with_header(R"({"a":)" + std::string(kDepth, '[') + std::string(kDepth, ']') + "}"));
    EXPECT_CONTAINS(message_of<IoError>([&] { load_safetensors(path); }), "tensor 'a' is an array");
    // A megabyte-long name and shape: the message stays readable.
    const std::string long_name(1 << 20, 'n');
    std::string long_shape = "[";
    for (int i = 0; i < 100000; ++i) long_shape += "1,";
    long_shape += "1]";
    write_bytes(path, with_header(R"({")" + long_name + R"(":{"dtype":"F32","shape":)" + long_shape +
                                  R"(,"data_offsets":[0,4]}})"));
    const std::string message = message_of<IoError>([&] { load_safetensors(path); });
    EXPECT_CONTAINS(message, "has rank 100001, more than convkit's maximum of 5");
    EXPECT_LT(message.size(), 1000u);
}

TEST(SafetensorsCorrupt, UnreadablePathsNameTheReason) {
    TempDir dir;
    EXPECT_CONTAINS(message_of<IoError>([&] { load_safetensors(dir.file("missing.safetensors")); }),
                    "load_safetensors: " + dir.file("missing.safetensors") + ": cannot open: No such file or directory");
    EXPECT_CONTAINS(message_of<IoError>([&] { load_safetensors(dir.path()); }), "not a regular file");
}

// ---------------------------------------------------------------------------------------------
// Failed saves

TEST(SafetensorsSave, MissingDirectoryIsAnIoError) {
    TempDir dir;
    const std::string path = dir.file("no/such/dir/ckpt.safetensors");
    const std::string message =
        message_of<IoError>([&] { save_safetensors(path, {{"w", Tensor::full(Shape{2}, 1.0)}}); });
    EXPECT_CONTAINS(message, "save_safetensors: ");
    EXPECT_CONTAINS(message, path);
    EXPECT_CONTAINS(message, "No such file or directory");
}

TEST(SafetensorsSave, BadArgumentsAreRefusedBeforeAnyFileIsTouched) {
    TempDir dir;
    const std::string path = dir.file("ckpt.safetensors");
    save_safetensors(path, {{"w", Tensor::full(Shape{4}, 1.0)}});
    const std::string before = read_bytes(path);

    EXPECT_CONTAINS(message_of<InvalidArgument>([&] {
                        save_safetensors(path, {{"a", Tensor::full(Shape{4}, 2.0)}, {"b", Tensor()}});
                    }),
                    "save_safetensors: tensor 'b' is undefined");
    EXPECT_CONTAINS(message_of<InvalidArgument>([&] { save_safetensors(path, {{"__metadata__", Tensor::full(Shape{1}, 2.0)}}); }),
                    "cannot be named \"__metadata__\"");
    EXPECT_CONTAINS(message_of<InvalidArgument>([&] { save_safetensors(path, {{"bad\xff", Tensor::full(Shape{1}, 2.0)}}); }),
                    "tensor names and metadata must be valid UTF-8");
    EXPECT_CONTAINS(message_of<InvalidArgument>([&] {
                        save_safetensors(path, {{"x", Tensor::full(Shape{1}, 2.0)}}, {{"k", "\xc3"}});
                    }),
                    "must be valid UTF-8");

    EXPECT_EQ(read_bytes(path), before);
    EXPECT_EQ(dir.entries(), std::vector<std::string>{"ckpt.safetensors"});
}

// Lowers this process's file-size limit, so that writes past it fail with EFBIG as on a full
// disk; restores it (and SIGXFSZ, which would otherwise kill the process) on scope exit.
class FileSizeLimit {
public:
    explicit FileSizeLimit(rlim_t bytes) {
        getrlimit(RLIMIT_FSIZE, &saved_);
        previous_handler_ = signal(SIGXFSZ, SIG_IGN);
        rlimit lowered = saved_;
        lowered.rlim_cur = bytes;
        applied_ = (saved_.rlim_max == RLIM_INFINITY || saved_.rlim_max >= bytes) && setrlimit(RLIMIT_FSIZE, &lowered) == 0;
    }
    ~FileSizeLimit() {
        setrlimit(RLIMIT_FSIZE, &saved_);
        signal(SIGXFSZ, previous_handler_);
    }
    bool applied() const { return applied_; }

private:
    rlimit saved_{};
    sighandler_t previous_handler_ = SIG_DFL;
    bool applied_ = false;
};

TEST(SafetensorsSave, AWriteFailingMidwayLeavesThePreviousFileAndNoTemporary) {
    TempDir dir;
    const std::string path = dir.file("ckpt.safetensors");
    save_safetensors(path, {{"w", Tensor::full(Shape{4}, 1.0)}}, {{"epoch", "1"}});
    const std::string before = read_bytes(path);

    std::string message;
    {
        // The header and part of the first tensor fit under the limit; the rest does not.
        FileSizeLimit limit(64 * 1024);
        if (!limit.applied()) GTEST_SKIP() << "cannot lower RLIMIT_FSIZE here";
        message = message_of<IoError>([&] {
            save_safetensors(path, {{"big", Tensor::full(Shape{1024, 1024}, 2.0)}, {"small", Tensor::full(Shape{2}, 3.0)}},
                             {{"epoch", "2"}});
        });
    }
    EXPECT_CONTAINS(message, "save_safetensors: cannot write '" + path + "': File too large");
    EXPECT_EQ(read_bytes(path), before);
    EXPECT_EQ(dir.entries(), std::vector<std::string>{"ckpt.safetensors"});
    std::map<std::string, std::string> metadata;
    EXPECT_EQ(load_safetensors(path, &metadata).at("w").to_vector(), (std::vector<double>{1, 1, 1, 1}));
    EXPECT_EQ(metadata.at("epoch"), "1");
}

TEST(SafetensorsSave, ADirectoryInTheWayIsAnIoErrorAndLeavesNoTemporary) {
    TempDir dir;
    std::filesystem::create_directory(dir.file("taken"));
    const std::string message =
        message_of<IoError>([&] { save_safetensors(dir.file("taken"), {{"w", Tensor::full(Shape{2}, 1.0)}}); });
    EXPECT_CONTAINS(message, "save_safetensors: cannot move the new file over '" + dir.file("taken") + "'");
    EXPECT_EQ(dir.entries(), std::vector<std::string>{"taken"});
    EXPECT_CONTAINS(message_of<IoError>([&] { save_safetensors(dir.path() + "/", {}); }), "names a directory");
}

}  // namespace
}  // namespace convkit
