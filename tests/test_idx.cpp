// The IDX reader on small files written here (every type code, plain and gzip, and every way a
// file can be broken), and load_fashion_mnist on a fake directory and on the real files.
#include <gtest/gtest.h>
#include <zlib.h>

#include <algorithm>
#include <array>
#include <bit>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include "convkit/convkit.h"
#include "convkit/data/idx.h"
#include "temp_dir.h"

namespace convkit {
namespace {

using data::IdxType;
using testing::message_of;
using testing::TempDir;
using testing::write_bytes;

// ---- writing IDX files ------------------------------------------------------------------------

std::string big_endian_u32(std::uint32_t v) {
    return {static_cast<char>(v >> 24), static_cast<char>(v >> 16), static_cast<char>(v >> 8), static_cast<char>(v)};
}

std::string idx_header(IdxType type, const std::vector<std::uint32_t>& dims) {
    std::string bytes{'\0', '\0', static_cast<char>(type), static_cast<char>(dims.size())};
    for (std::uint32_t d : dims) bytes += big_endian_u32(d);
    return bytes;
}

// The values' bytes, big-endian, as IDX stores them.
template <typename T>
std::string big_endian_values(const std::vector<T>& values) {
    std::string bytes;
    for (T v : values) {
        std::array<char, sizeof(T)> raw{};
        std::memcpy(raw.data(), &v, sizeof(T));
        if constexpr (std::endian::native == std::endian::little) std::reverse(raw.begin(), raw.end());
        bytes.append(raw.data(), raw.size());
    }
    return bytes;
}

template <typename T>
std::string idx_file(IdxType type, const std::vector<std::uint32_t>& dims, const std::vector<T>& values) {
    return idx_header(type, dims) + big_endian_values(values);
}

// One gzip member, as the gzip tool writes it (header, deflate data, CRC-32 and length).
std::string gzip(const std::string& plain) {
    z_stream stream{};
    EXPECT_EQ(deflateInit2(&stream, 6, Z_DEFLATED, 16 + MAX_WBITS, 8, Z_DEFAULT_STRATEGY), Z_OK);
    std::string out(deflateBound(&stream, plain.size()) + 64, '\0');
    stream.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(plain.data()));
    stream.avail_in = static_cast<uInt>(plain.size());
    stream.next_out = reinterpret_cast<Bytef*>(out.data());
    stream.avail_out = static_cast<uInt>(out.size());
    EXPECT_EQ(deflate(&stream, Z_FINISH), Z_STREAM_END);
    out.resize(stream.total_out);
    deflateEnd(&stream);
    return out;
}

std::vector<std::uint8_t> pixel_values(std::size_t n) {
    std::vector<std::uint8_t> v(n);
    for (std::size_t i = 0; i < n; ++i) v[i] = static_cast<std::uint8_t>((i * 37 + 11) % 256);
    return v;
}

// Expects read_idx to throw an IoError whose message names `path` and contains `fragment`.
void expect_read_error(const std::string& path, const std::string& fragment) {
    const std::string message = message_of<IoError>([&] { (void)data::read_idx(path); });
    EXPECT_NE(message.find(path), std::string::npos) << message;
    EXPECT_NE(message.find(fragment), std::string::npos) << "expected \"" << fragment << "\" in: " << message;
}

// ---- reading every type -----------------------------------------------------------------------

template <typename Stored>
void expect_round_trip(IdxType type, const std::vector<Stored>& values, DType expected_dtype) {
    TempDir dir;
    const std::vector<std::uint32_t> dims{2, static_cast<std::uint32_t>(values.size() / 2)};
    const std::string contents = idx_file(type, dims, values);
    for (const bool compressed : {false, true}) {
        SCOPED_TRACE(std::string(data::idx_type_name(type)) + (compressed ? " gzip" : " plain"));
        const std::string path = dir.file(compressed ? "values.gz" : "values");
        write_bytes(path, compressed ? gzip(contents) : contents);

        const data::IdxArray array = data::read_idx_array(path);
        EXPECT_EQ(array.type, type);
        EXPECT_EQ(array.dims, (std::vector<std::int64_t>{dims[0], dims[1]}));
        ASSERT_EQ(array.bytes.size(), values.size() * sizeof(Stored));  // packed at its own width
        for (std::size_t i = 0; i < values.size(); ++i) EXPECT_EQ(array.values<Stored>()[i], values[i]) << i;

        const Tensor t = data::read_idx(path);
        EXPECT_EQ(t.dtype(), expected_dtype);
        EXPECT_EQ(t.shape(), Shape({dims[0], dims[1]}));
        for (std::size_t i = 0; i < values.size(); ++i) {
            EXPECT_EQ(t.item(static_cast<std::int64_t>(i)), static_cast<double>(values[i])) << i;
        }
    }
}

TEST(Idx, EveryTypeCodeReadsBackPlainAndGzip) {
    expect_round_trip<std::uint8_t>(IdxType::UInt8, {0, 1, 127, 128, 200, 255}, DType::Int64);
    expect_round_trip<std::int8_t>(IdxType::Int8, {-128, -1, 0, 1, 100, 127}, DType::Int64);
    expect_round_trip<std::int16_t>(IdxType::Int16, {-32768, -300, -1, 0, 258, 32767}, DType::Int64);
    expect_round_trip<std::int32_t>(IdxType::Int32, {-2147483647 - 1, -70000, -1, 0, 16909060, 2147483647},
                                    DType::Int64);
    expect_round_trip<float>(IdxType::Float32, {-1.5f, 0.0f, 3.25f, 1e-30f, -7e20f, 0.1f}, DType::Float32);
    expect_round_trip<double>(IdxType::Float64, {-1.5, 0.0, 3.25, 1e-300, -7e200, 0.1}, DType::Float64);
}

// Found by the IDX fuzzer: an empty float file made read_idx pass a null pointer to memcpy.
TEST(Idx, EmptyFloatFilesReadAsEmptyTensors) {
    TempDir dir;
    write_bytes(dir.file("empty64"), idx_file<double>(IdxType::Float64, {1, 0}, {}));
    write_bytes(dir.file("empty32"), idx_file<float>(IdxType::Float32, {0}, {}));
    EXPECT_EQ(data::read_idx(dir.file("empty64")).shape(), (Shape{1, 0}));
    EXPECT_EQ(data::read_idx(dir.file("empty32")).shape(), (Shape{0}));
}

TEST(Idx, ScalarAndRankFiveFilesAndTheRankLimit) {
    TempDir dir;
    write_bytes(dir.file("scalar"), idx_file<std::int32_t>(IdxType::Int32, {}, {-42}));
    const Tensor scalar = data::read_idx(dir.file("scalar"));
    EXPECT_EQ(scalar.rank(), 0);
    EXPECT_EQ(scalar.item(0), -42.0);

    write_bytes(dir.file("five"), idx_file<std::uint8_t>(IdxType::UInt8, {1, 2, 1, 2, 2}, pixel_values(8)));
    EXPECT_EQ(data::read_idx(dir.file("five")).shape(), Shape({1, 2, 1, 2, 2}));

    // Six dims: a valid IDX file (read_idx_array reads it) that no tensor can hold.
    const std::string six = dir.file("six");
    write_bytes(six, idx_file<std::uint8_t>(IdxType::UInt8, {1, 1, 2, 1, 1, 2}, pixel_values(4)));
    EXPECT_EQ(data::read_idx_array(six).numel(), 4);
    expect_read_error(six, "has 6 dimensions");
}

TEST(Idx, GzipIsRecognisedByItsContentNotItsName) {
    TempDir dir;
    const std::string contents = idx_file(IdxType::UInt8, {3, 4}, pixel_values(12));
    write_bytes(dir.file("compressed-without-suffix"), gzip(contents));
    write_bytes(dir.file("plain-with-suffix.gz"), contents);
    const Tensor a = data::read_idx(dir.file("compressed-without-suffix"));
    const Tensor b = data::read_idx(dir.file("plain-with-suffix.gz"));
    EXPECT_EQ(a.to_vector(), b.to_vector());
    EXPECT_EQ(a.item(5), static_cast<double>(pixel_values(12)[5]));
}

TEST(Idx, ConcatenatedGzipMembersReadAsOneStream) {
    // `cat a.gz b.gz` is a valid gzip file whose content is a then b; gzip -d reads it whole.
    TempDir dir;
    const std::string contents = idx_file(IdxType::UInt8, {2, 50}, pixel_values(100));
    const std::size_t cut = 37;
    write_bytes(dir.file("two-members"), gzip(contents.substr(0, cut)) + gzip(contents.substr(cut)));
    const Tensor t = data::read_idx(dir.file("two-members"));
    EXPECT_EQ(t.shape(), Shape({2, 50}));
    EXPECT_EQ(t.item(99), static_cast<double>(pixel_values(100)[99]));
}

TEST(Idx, LargeGzipFileReadsAcrossManyBuffers) {
    // More than the reader's 64 KiB input buffer and its 16 MiB first output chunk.
    TempDir dir;
    const std::uint32_t rows = 700, cols = 28 * 28;
    std::vector<std::uint8_t> values(std::size_t{rows} * cols);
    std::uint64_t state = 12345;
    for (auto& v : values) v = static_cast<std::uint8_t>((state = state * 6364136223846793005ULL + 1442695040888963407ULL) >> 56);
    std::vector<float> big(std::size_t{1} << 22);  // 16 MiB of f32: the payload grows past its first chunk
    for (std::size_t i = 0; i < big.size(); ++i) big[i] = static_cast<float>(i % 1000) - 500.0f;
    write_bytes(dir.file("u8.gz"), gzip(idx_file(IdxType::UInt8, {rows, 28, 28}, values)));
    write_bytes(dir.file("f32.gz"), gzip(idx_file(IdxType::Float32, {static_cast<std::uint32_t>(big.size())}, big)));
    const data::IdxArray a = data::read_idx_array(dir.file("u8.gz"));
    ASSERT_EQ(a.bytes.size(), values.size());
    EXPECT_TRUE(std::equal(values.begin(), values.end(), a.values<std::uint8_t>()));
    const data::IdxArray b = data::read_idx_array(dir.file("f32.gz"));
    ASSERT_EQ(b.numel(), static_cast<std::int64_t>(big.size()));
    EXPECT_TRUE(std::equal(big.begin(), big.end(), b.values<float>()));
}

TEST(Idx, ValuesOfAnotherTypeAreRefused) {
    TempDir dir;
    write_bytes(dir.file("f"), idx_file<float>(IdxType::Float32, {2}, {1.0f, 2.0f}));
    const data::IdxArray array = data::read_idx_array(dir.file("f"));
    EXPECT_THROW((void)array.values<double>(), InvalidArgument);
    EXPECT_THROW((void)array.values<std::int32_t>(), InvalidArgument);  // the same width, another type
    EXPECT_EQ(array.values<float>()[1], 2.0f);
}

// ---- broken files -------------------------------------------------------------------------------

TEST(IdxErrors, AMissingFileOrADirectoryIsAnIoErrorNamingIt) {
    TempDir dir;
    expect_read_error(dir.file("nowhere"), "cannot open");
    expect_read_error(dir.path(), "is a directory");
}

TEST(IdxErrors, TruncationAnywhereIsAnErrorPlainAndGzip) {
    TempDir dir;
    const std::string contents = idx_file(IdxType::Int16, {3, 5}, std::vector<std::int16_t>(15, -7));
    // Inside the magic, inside the dims, just after the header, inside one value, one byte short.
    const std::vector<std::pair<std::size_t, std::string>> cuts = {
        {0, "magic"}, {1, "magic"}, {3, "magic"}, {4, "inside its header"}, {6, "inside its header"},
        {11, "inside its header"}, {12, "truncated"}, {13, "truncated"}, {30, "truncated"}, {contents.size() - 1, "truncated"}};
    for (const auto& [length, fragment] : cuts) {
        SCOPED_TRACE("cut at " + std::to_string(length));
        const std::string plain = dir.file("plain-" + std::to_string(length));
        write_bytes(plain, contents.substr(0, length));
        expect_read_error(plain, fragment);
        // The same cut content, correctly compressed: the IDX structure is what is short.
        const std::string compressed = dir.file("gzip-" + std::to_string(length));
        write_bytes(compressed, gzip(contents.substr(0, length)));
        expect_read_error(compressed, fragment);
    }
}

TEST(IdxErrors, ATruncatedGzipStreamIsAnError) {
    TempDir dir;
    const std::string compressed = gzip(idx_file(IdxType::UInt8, {40, 40}, pixel_values(1600)));
    // In the gzip header, in the deflate data, in the 8-byte trailer (CRC-32 and length).
    for (std::size_t length : {std::size_t{2}, std::size_t{5}, std::size_t{12}, compressed.size() / 2,
                               compressed.size() - 8, compressed.size() - 1}) {
        SCOPED_TRACE("cut at " + std::to_string(length) + " of " + std::to_string(compressed.size()));
        const std::string path = dir.file("cut-" + std::to_string(length));
        write_bytes(path, compressed.substr(0, length));
        const std::string message = message_of<IoError>([&] { (void)data::read_idx(path); });
        EXPECT_NE(message.find(path), std::string::npos) << message;
        EXPECT_TRUE(message.find("truncated") != std::string::npos || message.find("ends early") != std::string::npos)
            << message;
    }
}

TEST(IdxErrors, TrailingBytesAreAnError) {
    TempDir dir;
    const std::string contents = idx_file(IdxType::UInt8, {2, 3}, pixel_values(6));
    write_bytes(dir.file("plain"), contents + "xyz");
    expect_read_error(dir.file("plain"), "has 3 bytes after");
    write_bytes(dir.file("inside-gzip"), gzip(contents + std::string(1, '\0')));
    expect_read_error(dir.file("inside-gzip"), "has 1 bytes after");
    // Bytes after the gzip stream that are not another member.
    write_bytes(dir.file("after-gzip"), gzip(contents) + "garbage");
    expect_read_error(dir.file("after-gzip"), "corrupt gzip");
}

TEST(IdxErrors, AWrongMagicNumberOrTypeCodeIsAnError) {
    TempDir dir;
    std::string contents = idx_file(IdxType::UInt8, {2, 2}, pixel_values(4));
    std::string first_byte = contents;
    first_byte[0] = 0x01;
    write_bytes(dir.file("first-byte"), first_byte);
    expect_read_error(dir.file("first-byte"), "is not an IDX file");
    for (const int code : {0x00, 0x07, 0x0A, 0x0F, 0xFF}) {
        std::string wrong_type = contents;
        wrong_type[2] = static_cast<char>(code);
        const std::string path = dir.file("type-" + std::to_string(code));
        write_bytes(path, wrong_type);
        expect_read_error(path, "is not an IDX file");
    }
    write_bytes(dir.file("text"), "hello, world\n");
    expect_read_error(dir.file("text"), "is not an IDX file");
    write_bytes(dir.file("empty"), "");
    expect_read_error(dir.file("empty"), "magic");
}

TEST(IdxErrors, ADimensionCountThatDisagreesWithTheDataIsAnError) {
    TempDir dir;
    // Declares 3 dims [2, 3, <first data bytes read as a size>]: the data no longer matches.
    std::string three = idx_file(IdxType::UInt8, {2, 3}, pixel_values(6));
    three[3] = 3;
    write_bytes(dir.file("three"), three);
    expect_read_error(dir.file("three"), "");
    // Declares 1 dim [2]: 3 * 4 bytes more than it says.
    std::string one = idx_file(IdxType::UInt8, {2, 3}, pixel_values(6));
    one[3] = 1;
    write_bytes(dir.file("one"), one);
    expect_read_error(dir.file("one"), "bytes after");
    // A huge declared size is refused without trying to allocate it.
    write_bytes(dir.file("huge"), idx_header(IdxType::Float64, {0xFFFFFFFF, 0xFFFFFFFF, 0xFFFFFFFF}) + "abc");
    expect_read_error(dir.file("huge"), "");
    write_bytes(dir.file("big"), gzip(idx_header(IdxType::Float64, {0xFFFFFF, 0xFFFF}) + "abc"));
    expect_read_error(dir.file("big"), "truncated");
}

TEST(IdxErrors, ACorruptGzipStreamIsAnError) {
    TempDir dir;
    const std::string compressed = gzip(idx_file(IdxType::UInt8, {64, 64}, pixel_values(4096)));
    // A flipped bit in the deflate data and in the stored CRC-32: zlib's checks catch both.
    for (const std::size_t position : {compressed.size() / 2, compressed.size() - 6}) {
        std::string corrupt = compressed;
        corrupt[position] = static_cast<char>(corrupt[position] ^ 0x10);
        const std::string path = dir.file("corrupt-" + std::to_string(position));
        write_bytes(path, corrupt);
        const std::string message = message_of<IoError>([&] { (void)data::read_idx(path); });
        EXPECT_NE(message.find(path), std::string::npos) << message;
        // Data bits may decode to another valid stream of another length; any of these is right.
        EXPECT_TRUE(message.find("corrupt gzip") != std::string::npos || message.find("truncated") != std::string::npos ||
                    message.find("bytes after") != std::string::npos)
            << message;
    }
    std::string bad_header = compressed;
    bad_header[2] = 0x07;  // compression method: only 8 (deflate) exists
    write_bytes(dir.file("method"), bad_header);
    expect_read_error(dir.file("method"), "corrupt gzip");
}

// ---- load_fashion_mnist -------------------------------------------------------------------------

struct FakeMnist {
    std::vector<std::uint8_t> pixels;
    std::vector<std::uint8_t> labels;
};

FakeMnist write_fake_mnist(const TempDir& dir, const std::string& prefix, std::uint32_t n, bool compress) {
    FakeMnist fake{pixel_values(std::size_t{n} * 4 * 5), {}};
    for (std::uint32_t i = 0; i < n; ++i) fake.labels.push_back(static_cast<std::uint8_t>((i * 7) % 10));
    const std::string suffix = compress ? ".gz" : "";
    const std::string images = idx_file(IdxType::UInt8, {n, 4, 5}, fake.pixels);
    const std::string labels = idx_file(IdxType::UInt8, {n}, fake.labels);
    write_bytes(dir.file(prefix + "-images-idx3-ubyte" + suffix), compress ? gzip(images) : images);
    write_bytes(dir.file(prefix + "-labels-idx1-ubyte" + suffix), compress ? gzip(labels) : labels);
    return fake;
}

const char* const kHint = "dataset-fashion-mnist";

TEST(FashionMnist, LoadsBothSplitsPlainOrGzipAsFloatImagesAndInt64Labels) {
    TempDir dir;
    const FakeMnist train = write_fake_mnist(dir, "train", 6, true);
    const FakeMnist test = write_fake_mnist(dir, "t10k", 3, false);
    for (const auto& [split, fake, n] : {std::tuple{data::Split::Train, &train, 6}, std::tuple{data::Split::Test, &test, 3}}) {
        const data::ImageClassificationSet set = data::load_fashion_mnist(dir.path(), split);
        EXPECT_EQ(set.images.shape(), Shape({n, 1, 4, 5}));
        EXPECT_EQ(set.images.dtype(), DType::Float32);
        EXPECT_EQ(set.labels.shape(), Shape({n}));
        EXPECT_EQ(set.labels.dtype(), DType::Int64);
        for (std::int64_t i = 0; i < set.images.numel(); ++i) {
            EXPECT_EQ(set.images.item(i), static_cast<double>(static_cast<float>(fake->pixels[i]) / 255.0f)) << i;
        }
        for (std::int64_t i = 0; i < n; ++i) EXPECT_EQ(set.labels.item(i), fake->labels[i]);
    }
}

TEST(FashionMnist, TheGzipFileIsPreferredWhenBothExist) {
    TempDir dir;
    write_fake_mnist(dir, "train", 4, true);
    write_bytes(dir.file("train-images-idx3-ubyte"), "not even an IDX file");
    EXPECT_EQ(data::load_fashion_mnist(dir.path(), data::Split::Train).images.size(0), 4);
}

TEST(FashionMnist, MissingFilesNameWhereTheyWereLookedForAndHowToGetThem) {
    TempDir dir;
    std::string message = message_of<IoError>([&] { (void)data::load_fashion_mnist(dir.path(), data::Split::Train); });
    EXPECT_NE(message.find(dir.file("train-images-idx3-ubyte.gz")), std::string::npos) << message;
    EXPECT_NE(message.find(kHint), std::string::npos) << message;
    EXPECT_NE(message.find("--data-dir"), std::string::npos) << message;

    message = message_of<IoError>([&] { (void)data::load_fashion_mnist(dir.file("absent"), data::Split::Test); });
    EXPECT_NE(message.find(dir.file("absent")), std::string::npos) << message;
    EXPECT_NE(message.find("does not exist"), std::string::npos) << message;

    write_fake_mnist(dir, "train", 4, true);
    std::filesystem::remove(dir.file("train-labels-idx1-ubyte.gz"));
    message = message_of<IoError>([&] { (void)data::load_fashion_mnist(dir.path(), data::Split::Train); });
    EXPECT_NE(message.find(dir.file("train-labels-idx1-ubyte")), std::string::npos) << message;
    EXPECT_NE(message.find(kHint), std::string::npos) << message;
}

TEST(FashionMnist, BrokenContentsAreErrorsNamingTheFileAndHowToGetIt) {
    TempDir dir;
    write_fake_mnist(dir, "train", 5, true);
    const std::string images = dir.file("train-images-idx3-ubyte.gz");
    const std::string labels = dir.file("train-labels-idx1-ubyte.gz");
    const auto expect_error = [&](const std::string& path, const std::string& fragment) {
        const std::string message =
            message_of<IoError>([&] { (void)data::load_fashion_mnist(dir.path(), data::Split::Train); });
        EXPECT_NE(message.find(path), std::string::npos) << message;
        EXPECT_NE(message.find(fragment), std::string::npos) << "expected \"" << fragment << "\" in: " << message;
        EXPECT_NE(message.find(kHint), std::string::npos) << message;
    };

    // A truncated download.
    const std::string good_images = testing::read_bytes(images);
    write_bytes(images, good_images.substr(0, good_images.size() / 2));
    expect_error(images, images);
    // Images as 2 dims, images of another type.
    write_bytes(images, gzip(idx_file(IdxType::UInt8, {5, 20}, pixel_values(100))));
    expect_error(images, "expected 3 dimensions");
    write_bytes(images, gzip(idx_file(IdxType::Float32, {5, 4, 5}, std::vector<float>(100, 0.5f))));
    expect_error(images, "of f32");
    write_bytes(images, good_images);

    // Counts that disagree, a label outside 0..9.
    write_bytes(labels, gzip(idx_file(IdxType::UInt8, {4}, std::vector<std::uint8_t>{0, 1, 2, 3})));
    expect_error(labels, "holds 4 labels but");
    write_bytes(labels, gzip(idx_file(IdxType::UInt8, {5}, std::vector<std::uint8_t>{0, 1, 10, 3, 4})));
    expect_error(labels, "label 2 is 10");
    write_bytes(labels, gzip(idx_file(IdxType::UInt8, {5, 1}, pixel_values(5))));
    expect_error(labels, "expected 1 dimensions");
}

TEST(FashionMnist, TheInstalledDatasetHasTheKnownShapesClassesAndPixelStatistics) {
    const std::string directory = data::kDefaultFashionMnistDirectory;
    if (!std::filesystem::exists(directory)) {
        GTEST_SKIP() << directory << " does not exist (install the Debian package dataset-fashion-mnist)";
    }
    for (const auto& [split, n] : {std::pair{data::Split::Train, 60000}, std::pair{data::Split::Test, 10000}}) {
        const data::ImageClassificationSet set = data::load_fashion_mnist(directory, split);
        ASSERT_EQ(set.images.shape(), Shape({n, 1, 28, 28}));
        ASSERT_EQ(set.labels.shape(), Shape({n}));
        std::vector<std::int64_t> histogram(10, 0);
        const std::int64_t* labels = set.labels.data<std::int64_t>();
        for (std::int64_t i = 0; i < n; ++i) ++histogram.at(static_cast<std::size_t>(labels[i]));
        EXPECT_EQ(histogram, std::vector<std::int64_t>(10, n / 10));  // balanced: 6000 / 1000 per class

        const float* pixels = set.images.data<float>();
        const auto [low, high] = std::minmax_element(pixels, pixels + set.images.numel());
        EXPECT_EQ(*low, 0.0f);
        EXPECT_EQ(*high, 1.0f);
        if (split == data::Split::Train) {
            double sum = 0.0, square_sum = 0.0;
            for (std::int64_t i = 0; i < set.images.numel(); ++i) {
                sum += pixels[i];
                square_sum += static_cast<double>(pixels[i]) * pixels[i];
            }
            const double mean = sum / static_cast<double>(set.images.numel());
            const double stddev = std::sqrt(square_sum / static_cast<double>(set.images.numel()) - mean * mean);
            EXPECT_NEAR(mean, data::kFashionMnistMean, 1e-4);
            EXPECT_NEAR(stddev, data::kFashionMnistStd, 1e-4);
        }
    }
    EXPECT_EQ(data::fashion_mnist_class_names().size(), 10u);
    EXPECT_EQ(data::fashion_mnist_class_names()[9], "Ankle boot");
}

}  // namespace
}  // namespace convkit
