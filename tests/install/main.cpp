// Uses the installed convkit as an application would: one include, one op, the version.
#include <convkit/convkit.h>

#include <cstdio>

int main() {
    using namespace convkit;
    const Tensor image = Tensor::full(Shape{1, 1, 5, 5}, 1.0);
    const Tensor kernel = Tensor::full(Shape{1, 1, 3, 3}, 1.0);
    const Tensor out = conv_forward(image, kernel, ConvParams(2).set_padding(1));
    // The centre sees all nine ones, a corner four.
    const bool ok = out.shape() == Shape{1, 1, 5, 5} && out.at<float>({0, 0, 2, 2}) == 9.0f &&
                    out.at<float>({0, 0, 0, 0}) == 4.0f;
    std::printf("convkit %s consumer: %s\n", version_string().c_str(), ok ? "ok" : "WRONG RESULT");
    return ok ? 0 : 1;
}
