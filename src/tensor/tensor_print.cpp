#include <iomanip>
#include <sstream>

#include "convkit/tensor.h"

namespace convkit {

namespace {
// Prints nested brackets row by row, W fastest, as PyTorch does.
void print_dim(std::ostringstream& out, const Tensor& t, int dim, std::int64_t& flat, std::int64_t& budget,
               int indent) {
    const std::int64_t n = t.shape()[dim];
    out << '[';
    for (std::int64_t i = 0; i < n; ++i) {
        if (budget <= 0) {
            out << "...";
            break;
        }
        if (dim + 1 == t.rank()) {
            if (i > 0) out << ", ";
            out << std::setw(9) << t.item(flat++);
            --budget;
        } else {
            if (i > 0) out << ",\n" << std::string(static_cast<std::size_t>(indent + 1), ' ');
            print_dim(out, t, dim + 1, flat, budget, indent + 1);
        }
    }
    out << ']';
}
}  // namespace

std::string Tensor::to_string(std::int64_t max_elements) const {
    if (!defined()) return "Tensor(undefined)";
    std::ostringstream out;
    out << "Tensor(shape=" << shape_.to_string() << ", dtype=" << dtype_name(dtype_) << ", device="
        << device().to_string() << (is_contiguous() ? "" : ", memory_format=channels_last") << ")\n";
    const Tensor host = to(Device::host());  // item() reads the logical order in either format
    out << std::fixed << std::setprecision(4);
    std::int64_t flat = 0;
    std::int64_t budget = max_elements;
    if (numel() > 0) print_dim(out, host, 0, flat, budget, 0);
    return out.str();
}

}  // namespace convkit
