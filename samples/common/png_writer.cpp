#include "common/png_writer.h"

#include <png.h>

#include <csetjmp>
#include <cstring>
#include <vector>

#include "convkit/io/atomic_file.h"
#include "convkit/error.h"

namespace convkit::samples {

namespace {
struct ErrorMessage {
    char text[256] = "";
};

// libpng's error callback must not return. It longjmps back to encode_rows' setjmp (libpng's
// documented way); no C++ exception crosses libpng's C frames.
[[noreturn]] void record_error_and_jump(png_structp png, png_const_charp message) {
    auto* error = static_cast<ErrorMessage*>(png_get_error_ptr(png));
    std::strncpy(error->text, message, sizeof(error->text) - 1);
    png_longjmp(png, 1);
}

void append_bytes(png_structp png, png_bytep data, png_size_t length) {
    static_cast<std::string*>(png_get_io_ptr(png))->append(reinterpret_cast<const char*>(data), length);
}

// Only trivially destructible locals here: a longjmp out of libpng skips destructors.
bool encode_rows(png_structp png, png_infop info, const Image& image, png_bytepp rows, std::string* out) {
    if (setjmp(png_jmpbuf(png))) return false;
    png_set_write_fn(png, out, append_bytes, nullptr);
    png_set_IHDR(png, info, static_cast<png_uint_32>(image.width()), static_cast<png_uint_32>(image.height()), 8,
                 image.channels() == 1 ? PNG_COLOR_TYPE_GRAY : PNG_COLOR_TYPE_RGB, PNG_INTERLACE_NONE,
                 PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    png_set_compression_level(png, 9);  // the docs commit these files: keep them small
    png_set_rows(png, info, rows);
    png_write_png(png, info, PNG_TRANSFORM_IDENTITY, nullptr);
    return true;
}
}  // namespace

std::string encode_png(const Image& image) {
    ErrorMessage error;
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, &error, record_error_and_jump, nullptr);
    png_infop info = png == nullptr ? nullptr : png_create_info_struct(png);
    if (info == nullptr) {
        png_destroy_write_struct(&png, nullptr);
        throw IoError("encode_png: libpng could not allocate its structures");
    }
    std::vector<png_bytep> rows(static_cast<std::size_t>(image.height()));
    const std::size_t stride = static_cast<std::size_t>(image.width()) * static_cast<std::size_t>(image.channels());
    for (std::size_t y = 0; y < rows.size(); ++y)
        rows[y] = const_cast<png_bytep>(image.pixels().data() + y * stride);  // libpng only reads them
    std::string bytes;
    const bool ok = encode_rows(png, info, image, rows.data(), &bytes);
    png_destroy_write_struct(&png, &info);
    if (!ok) throw IoError(std::string("encode_png: libpng: ") + error.text);
    return bytes;
}

void write_png(const std::string& path, const Image& image) {
    write_file_atomically(path, encode_png(image), "write_png");
}

}  // namespace convkit::samples
