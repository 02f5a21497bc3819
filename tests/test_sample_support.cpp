// The code the sample trainers share (samples/common/): PNG files decoded back by libpng,
// the bitmap font, pictures from tensors and filters, the grid layouts, the progress line,
// metrics.json, the common options and the error line of run_sample.
#include <gtest/gtest.h>
#include <png.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <limits>
#include <set>

#include "common/bitmap_font.h"
#include "common/confusion_plot.h"
#include "common/filter_grid.h"
#include "common/image.h"
#include "common/image_grid.h"
#include "common/metrics_json.h"
#include "common/png_writer.h"
#include "common/progress_bar.h"
#include "common/sample_cli.h"
#include "convkit/convkit.h"
#include "temp_dir.h"

namespace convkit::samples {
namespace {

using testing::TempDir;

struct Decoded {
    int width = 0, height = 0, channels = 0;
    std::vector<std::uint8_t> pixels;
};

// libpng's own reader, independent of the writer under test.
Decoded decode_png(const std::string& bytes) {
    png_image image{};
    image.version = PNG_IMAGE_VERSION;
    if (!png_image_begin_read_from_memory(&image, bytes.data(), bytes.size()))
        throw std::runtime_error(std::string("png_image_begin_read_from_memory: ") + image.message);
    Decoded d;
    d.width = static_cast<int>(image.width);
    d.height = static_cast<int>(image.height);
    d.channels = (image.format & PNG_FORMAT_FLAG_COLOR) ? 3 : 1;
    image.format = d.channels == 3 ? PNG_FORMAT_RGB : PNG_FORMAT_GRAY;
    d.pixels.resize(PNG_IMAGE_SIZE(image));
    if (!png_image_finish_read(&image, nullptr, d.pixels.data(), 0, nullptr))
        throw std::runtime_error(std::string("png_image_finish_read: ") + image.message);
    return d;
}

Image pattern_image(int width, int height, int channels) {
    Image image(width, height, channels);
    for (int y = 0; y < height; ++y)
        for (int x = 0; x < width; ++x)
            image.set(x, y,
                      {static_cast<std::uint8_t>(37 * x + 11 * y), static_cast<std::uint8_t>(5 * x * y + 3),
                       static_cast<std::uint8_t>(250 - 7 * x)});
    return image;
}

std::string read_file(FILE* file) {
    std::rewind(file);
    std::string text;
    for (int c = std::fgetc(file); c != EOF; c = std::fgetc(file)) text.push_back(static_cast<char>(c));
    return text;
}

TEST(SamplePng, RgbAndGrayRoundTripThroughLibpngsReader) {
    for (int channels : {1, 3}) {
        const Image image = pattern_image(7, 5, channels);
        const Decoded decoded = decode_png(encode_png(image));
        EXPECT_EQ(decoded.width, 7);
        EXPECT_EQ(decoded.height, 5);
        EXPECT_EQ(decoded.channels, channels);
        EXPECT_EQ(decoded.pixels, image.pixels()) << channels << " channels";
    }
}

TEST(SamplePng, WritePngLeavesTheFileAndNoTemporary) {
    TempDir dir;
    const Image image = pattern_image(3, 4, 3);
    write_png(dir.file("a.png"), image);
    EXPECT_EQ(testing::read_bytes(dir.file("a.png")), encode_png(image));
    EXPECT_EQ(dir.entries(), std::vector<std::string>{"a.png"});
}

TEST(SamplePng, UnwritablePathIsAnIoErrorNamingIt) {
    TempDir dir;
    const std::string path = dir.file("missing/a.png");
    const std::string message = testing::message_of<IoError>([&] { write_png(path, Image(2, 2, 1)); });
    EXPECT_NE(message.find(path), std::string::npos) << message;
    EXPECT_EQ(dir.entries(), std::vector<std::string>{});
}

TEST(SampleImage, FromTensorMapsTheRangeClipsAndKeepsChannelOrder) {
    const Tensor gray = Tensor::from_values(Shape{1, 1, 5}, {0.0, 0.5, 1.0, -1.0, 2.0});
    const Image g = image_from_tensor(gray);
    EXPECT_EQ(g.channels(), 1);
    EXPECT_EQ(g.pixels(), (std::vector<std::uint8_t>{0, 128, 255, 0, 255}));

    // [3, 1, 2]: channel planes become interleaved RGB.
    const Tensor rgb = Tensor::from_values(Shape{3, 1, 2}, {0.0, 1.0, 1.0, 0.0, 0.2, 0.6});
    const Image c = image_from_tensor(rgb);
    EXPECT_EQ(c.channels(), 3);
    EXPECT_EQ(c.pixels(), (std::vector<std::uint8_t>{0, 255, 51, 255, 0, 153}));

    // A custom range: [-1, 1].
    EXPECT_EQ(image_from_tensor(Tensor::from_values(Shape{1, 2}, {-1.0, 1.0}), -1.0, 1.0).pixels(),
              (std::vector<std::uint8_t>{0, 255}));
    EXPECT_THROW(image_from_tensor(Tensor::zeros(Shape{2, 3, 3})), InvalidArgument);
}

TEST(SampleImage, EnlargedRepeatsEachPixelAndPasteClips) {
    const Image small = pattern_image(2, 3, 3);
    const Image big = small.enlarged(3);
    ASSERT_EQ(big.width(), 6);
    ASSERT_EQ(big.height(), 9);
    for (int y = 0; y < 9; ++y)
        for (int x = 0; x < 6; ++x) {
            const Rgb a = big.get(x, y), b = small.get(x / 3, y / 3);
            EXPECT_TRUE(a.r == b.r && a.g == b.g && a.b == b.b) << x << "," << y;
        }
    Image canvas(4, 4, 3, kWhite);
    canvas.paste(small, 3, 2);  // only its top-left 1x2 lands inside
    EXPECT_EQ(canvas.get(3, 2).r, small.get(0, 0).r);
    EXPECT_EQ(canvas.get(3, 3).g, small.get(0, 1).g);
    EXPECT_EQ(canvas.get(2, 2).r, 255);
}

TEST(SampleFont, EveryPrintableGlyphIsDistinctAndOnlySpaceIsBlank) {
    std::set<std::string> seen;  // the pixels as bytes
    for (int c = 32; c <= 126; ++c) {
        Image image(kGlyphWidth, kGlyphHeight, 1, kBlack);
        draw_text(image, 0, 0, std::string(1, static_cast<char>(c)), kWhite);
        const bool blank = std::all_of(image.pixels().begin(), image.pixels().end(), [](auto p) { return p == 0; });
        EXPECT_EQ(blank, c == ' ') << "glyph '" << static_cast<char>(c) << "'";
        EXPECT_TRUE(seen.insert(std::string(image.pixels().begin(), image.pixels().end())).second)
            << "glyph '" << static_cast<char>(c) << "' repeats another";
    }
}

TEST(SampleFont, WidthScaleAndUnknownCharacters) {
    EXPECT_EQ(text_width(""), 0);
    EXPECT_EQ(text_width("a"), 5);
    EXPECT_EQ(text_width("ab"), 11);
    EXPECT_EQ(text_width("ab", 3), 33);

    Image one(11, kGlyphHeight, 1), three(33, 3 * kGlyphHeight, 1);
    draw_text(one, 0, 0, "Ab", kWhite);
    draw_text(three, 0, 0, "Ab", kWhite, 3);
    EXPECT_EQ(three.pixels(), one.enlarged(3).pixels());

    Image unknown(5, kGlyphHeight, 1), question(5, kGlyphHeight, 1);
    draw_text(unknown, 0, 0, "\x7f", kWhite);
    draw_text(question, 0, 0, "?", kWhite);
    EXPECT_EQ(unknown.pixels(), question.pixels());
}

TEST(SampleFilterGrid, TilesStretchEachFilterToItsOwnRange) {
    // Two 1x2 gray filters: [1, 3] and [-5, -4]; zoom 1; gaps of 2 pixels.
    const Tensor weight = Tensor::from_values(Shape{2, 1, 1, 2}, {1, 3, -5, -4});
    const Image grid = filter_grid_image(weight, 1);
    ASSERT_EQ(grid.channels(), 1);
    ASSERT_EQ(grid.width(), 2 + 2 * (2 + 2));
    ASSERT_EQ(grid.height(), 2 + 1 * (1 + 2));
    EXPECT_EQ(grid.get(2, 2).r, 0);
    EXPECT_EQ(grid.get(3, 2).r, 255);
    EXPECT_EQ(grid.get(6, 2).r, 0);
    EXPECT_EQ(grid.get(7, 2).r, 255);
    EXPECT_EQ(grid.get(4, 2).r, 255);  // the gap

    // Three input channels: one RGB tile per filter, its channels stretched together.
    const Image rgb = filter_grid_image(Tensor::from_values(Shape{1, 3, 1, 1}, {0.0, 1.0, 0.5}), 2);
    ASSERT_EQ(rgb.channels(), 3);
    const Rgb p = rgb.get(3, 3);
    EXPECT_EQ(p.r, 0);
    EXPECT_EQ(p.g, 255);
    EXPECT_EQ(p.b, 128);
    EXPECT_THROW(filter_grid_image(Tensor::zeros(Shape{2, 3, 3})), InvalidArgument);
}

TEST(SampleImageGrid, CellsFitTheLargestImageAndTheLongestCaption) {
    std::vector<CaptionedImage> cells;
    for (int i = 0; i < 3; ++i) cells.push_back({Image(4, 4, 1, kBlack), {Caption{"x"}}});
    cells[1].captions.push_back({"a long caption", kRed});  // 14 chars: 83 pixels
    const Image grid = captioned_image_grid(cells, 2);
    const int cell_width = text_width("a long caption");
    EXPECT_EQ(grid.width(), 4 + 2 * (cell_width + 4));
    EXPECT_EQ(grid.height(), 4 + 2 * (4 + 2 + 2 * (kGlyphHeight + 2) + 4));
    EXPECT_EQ(grid.channels(), 3);  // a coloured caption makes the grid RGB
    // The first image is centred in its cell: black where it is, white beside it.
    EXPECT_EQ(grid.get(4 + (cell_width - 4) / 2, 4).r, 0);
    EXPECT_EQ(grid.get(4 + (cell_width - 4) / 2 - 1, 4).r, 255);
    EXPECT_THROW(captioned_image_grid({}, 2), InvalidArgument);

    const Image titled = with_title(Image(3, 3, 1), "title");
    EXPECT_EQ(titled.width(), text_width("title") + 8);
    EXPECT_GT(titled.height(), 3);
}

TEST(SampleConfusionPlot, ShadesByRowShareAndChecksTheShape) {
    const std::vector<std::string> names{"a", "b"};
    // Row 0: all correct (darkest cell); row 1: split evenly.
    const Image even =
        confusion_matrix_image(Tensor::from_vector(Shape{2, 2}, std::vector<std::int64_t>{9, 0, 5, 5}), names);
    const Image other =
        confusion_matrix_image(Tensor::from_vector(Shape{2, 2}, std::vector<std::int64_t>{0, 9, 5, 5}), names);
    EXPECT_EQ(even.width(), other.width());
    EXPECT_NE(even.pixels(), other.pixels());
    // The darkest colour of the scale appears only where a row's share is 1.
    auto has_darkest = [](const Image& image) {
        for (int y = 0; y < image.height(); ++y)
            for (int x = 0; x < image.width(); ++x) {
                const Rgb p = image.get(x, y);
                if (p.r == 8 && p.g == 48 && p.b == 107) return true;
            }
        return false;
    };
    EXPECT_TRUE(has_darkest(even));
    const Image half =
        confusion_matrix_image(Tensor::from_vector(Shape{2, 2}, std::vector<std::int64_t>{1, 1, 1, 1}), names);
    EXPECT_FALSE(has_darkest(half));
    EXPECT_THROW(confusion_matrix_image(Tensor::zeros(Shape{3, 3}, DType::Int64), names), InvalidArgument);
}

TEST(SampleProgressBar, PlainLinesAtEachFifthAndWeightedMeans) {
    FILE* file = std::tmpfile();  // not a terminal: plain lines
    ASSERT_NE(file, nullptr);
    {
        ProgressBar bar("epoch 1/1", 10, file);
        for (int i = 0; i < 10; ++i) bar.step(i < 5 ? 10 : 30, i < 5 ? 1.0 : 2.0, i < 5 ? 10 : 0);
        EXPECT_DOUBLE_EQ(bar.mean_loss(), (50 * 1.0 + 150 * 2.0) / 200);
        EXPECT_DOUBLE_EQ(bar.accuracy(), 50.0 / 200);
        EXPECT_EQ(bar.images(), 200);
    }  // the destructor finishes the bar
    const std::string text = read_file(file);
    std::fclose(file);
    EXPECT_EQ(std::count(text.begin(), text.end(), '\n'), 5) << text;
    EXPECT_EQ(text.find('\r'), std::string::npos) << text;
    EXPECT_NE(text.find("epoch 1/1 [====>               ]  2/10  loss 1.0000  acc 1.0000"), std::string::npos) << text;
    EXPECT_NE(text.find("epoch 1/1 [====================] 10/10  loss 1.7500  acc 0.2500"), std::string::npos) << text;
    EXPECT_NE(text.find("img/s\n"), std::string::npos) << text;
}

TEST(SampleProgressBar, FinishTwiceDrawsOnce) {
    FILE* file = std::tmpfile();
    ASSERT_NE(file, nullptr);
    {
        ProgressBar bar("test", 1, file);
        bar.step(4, 0.5, 3);
        bar.finish();
        bar.finish();
    }
    const std::string text = read_file(file);
    std::fclose(file);
    EXPECT_EQ(std::count(text.begin(), text.end(), '\n'), 1) << text;
    EXPECT_NE(text.find("1/1  loss 0.5000  acc 0.7500"), std::string::npos) << text;
}

TEST(SampleMetricsJson, WritesParsableJsonAtomicallyWithNullForNan) {
    TempDir dir;
    const std::string path = dir.file("metrics.json");
    write_metrics_json(path, {{"accuracy", 0.875}, {"loss", std::numeric_limits<double>::quiet_NaN()}, {"n", 3}});
    const nlohmann::json back = nlohmann::json::parse(testing::read_bytes(path));
    EXPECT_DOUBLE_EQ(back.at("accuracy").get<double>(), 0.875);
    EXPECT_TRUE(back.at("loss").is_null());
    EXPECT_EQ(back.at("n").get<int>(), 3);
    write_metrics_json(path, {{"n", 4}});  // replaces the file
    EXPECT_EQ(nlohmann::json::parse(testing::read_bytes(path)).at("n").get<int>(), 4);
    EXPECT_EQ(dir.entries(), std::vector<std::string>{"metrics.json"});
}

TEST(SampleCli, CommonOptionsParseAndCheck) {
    {
        CLI::App app;
        SampleOptions options;
        add_sample_options(app, options, "default-out", std::string("/data"));
        EXPECT_EQ(options.device, cuda_device_count() > 0 ? "cuda" : "cpu");
        EXPECT_EQ(options.out_dir, "default-out");
        EXPECT_EQ(options.data_dir, "/data");
        app.parse("--device cpu --seed 7 --out o --data-dir d", false);
        EXPECT_EQ(options.device, "cpu");
        EXPECT_EQ(options.seed, 7u);
        EXPECT_EQ(options.out_dir, "o");
        EXPECT_EQ(options.data_dir, "d");
        EXPECT_TRUE(sample_device(options).is_host());
    }
    {
        CLI::App app;
        SampleOptions options;
        add_sample_options(app, options, "out");
        EXPECT_THROW(app.parse("--device tpu", false), CLI::ValidationError);
    }
    {
        CLI::App app;
        SampleOptions options;
        add_sample_options(app, options, "out");
        EXPECT_THROW(app.parse("--data-dir x", false), CLI::ParseError);  // not offered without a default
    }
    if (cuda_device_count() == 0) {
        SampleOptions options;
        options.device = "cuda";
        const std::string message = testing::message_of<NotSupported>([&] { sample_device(options); });
        EXPECT_NE(message.find("--device cuda"), std::string::npos) << message;
        EXPECT_NE(message.find("--device cpu"), std::string::npos) << message;
    }
}

TEST(SampleCli, CreatesTheOutputFolderWithParents) {
    TempDir dir;
    SampleOptions options;
    options.out_dir = dir.file("a/b/c");
    create_out_dir(options);
    EXPECT_TRUE(std::filesystem::is_directory(options.out_dir));
    create_out_dir(options);  // already there: fine
    testing::write_bytes(dir.file("file"), "x");
    options.out_dir = dir.file("file/sub");
    const std::string message = testing::message_of<IoError>([&] { create_out_dir(options); });
    EXPECT_NE(message.find(options.out_dir), std::string::npos) << message;
}

TEST(SampleCli, RunSampleTurnsAnExceptionIntoOneLineAndExitCodeOne) {
    ::testing::internal::CaptureStderr();
    const int code = run_sample("demo", []() -> int { throw IoError("cannot read '/x': No such file"); });
    const std::string err = ::testing::internal::GetCapturedStderr();
    EXPECT_EQ(code, 1);
    EXPECT_EQ(err, "demo: error: cannot read '/x': No such file\n");
    EXPECT_EQ(run_sample("demo", [] { return 0; }), 0);
}

}  // namespace
}  // namespace convkit::samples
