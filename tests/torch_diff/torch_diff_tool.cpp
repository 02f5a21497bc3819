// torch_diff_tool <case dir>: runs every <name>.case.safetensors in the directory and writes
// <name>.result.safetensors next to it (the format is described in torch_diff.h). Each case is
// independent: an error in one is written into its result and the tool goes on. Exits 0 once
// every case has a result, 1 if a result could not be written or the directory not read.
#include <algorithm>
#include <exception>
#include <filesystem>
#include <iostream>
#include <string_view>
#include <typeinfo>

#include "torch_diff/torch_diff.h"

namespace {

namespace fs = std::filesystem;
using torch_diff::Case;
using torch_diff::Metadata;

constexpr std::string_view kCaseSuffix = ".case.safetensors";
constexpr std::string_view kResultSuffix = ".result.safetensors";

const torch_diff::OpTable& ops() {
    static const torch_diff::OpTable table = [] {
        torch_diff::OpTable t;
        torch_diff::register_conv_pool_ops(t);
        torch_diff::register_module_ops(t);
        torch_diff::register_norm_shape_ops(t);
        torch_diff::register_optim_ops(t);
        torch_diff::register_elementwise_ops(t);
        torch_diff::register_softmax_loss_ops(t);
        return t;
    }();
    return table;
}

// The most specific convkit exception class, as the Python side names it in its report.
std::string error_type(const convkit::Error& e) {
    if (dynamic_cast<const convkit::InvalidArgument*>(&e)) return "InvalidArgument";
    if (dynamic_cast<const convkit::NotSupported*>(&e)) return "NotSupported";
    if (dynamic_cast<const convkit::OutOfMemory*>(&e)) return "OutOfMemory";
    if (dynamic_cast<const convkit::IoError*>(&e)) return "IoError";
    return "Error";
}

// Runs one case: the op, backward(grad_output), then output, gradients and extras. A convkit
// error in backward is kept in `status` with the forward output, which is still compared.
convkit::TensorMap run_case(Case& c, Metadata& status) {
    const std::string& op = c.text("op");
    const auto it = ops().find(op);
    if (it == ops().end()) throw torch_diff::CaseError("unknown op '" + op + "'");
    torch_diff::Run run = it->second(c);
    const auto unused = c.unused_keys();
    if (!unused.empty()) {
        std::string keys;
        for (const auto& key : unused) keys += (keys.empty() ? "" : ", ") + key;
        throw torch_diff::CaseError("the tool does not apply these keys: " + keys);
    }
    convkit::TensorMap result = run.extras;
    if (run.output.defined()) result["output"] = run.output.detach();
    if (!run.backward_done && c.has_tensor("grad_output") && !c.differentiable().empty()) {
        try {
            run.output.backward(c.tensors().at("grad_output"));
        } catch (const convkit::Error& e) {
            status["backward_error"] = error_type(e) + ": " + e.what();
            return result;
        }
    }
    for (const auto& [name, tensor] : c.differentiable()) {
        if (tensor.grad().defined()) result["grad." + name] = tensor.grad();
    }
    return result;
}

// The result of one case file; every failure becomes the result's metadata.
void process(const fs::path& case_path, const fs::path& result_path, const std::string& name) {
    convkit::TensorMap result;
    Metadata status{{"status", "ok"}};
    try {
        Metadata metadata;
        convkit::TensorMap tensors = convkit::load_safetensors(case_path.string(), &metadata);
        Case c(name, std::move(metadata), std::move(tensors));
        result = run_case(c, status);
    } catch (const torch_diff::CaseError& e) {
        result.clear();
        status = {{"status", "harness_error"}, {"error_message", e.what()}};
    } catch (const convkit::Error& e) {
        result.clear();
        status = {{"status", "error"}, {"error_type", error_type(e)}, {"error_message", e.what()}};
    } catch (const std::exception& e) {
        // A standard exception from convkit (std::bad_alloc, std::out_of_range...) is a finding too.
        result.clear();
        status = {{"status", "error"}, {"error_type", typeid(e).name()}, {"error_message", e.what()}};
    }
    convkit::save_safetensors(result_path.string(), result, status);
}

}  // namespace

int main(int argc, char** argv) {
    if (argc != 2) {
        std::cerr << "usage: " << argv[0] << " <case dir>\n";
        return 2;
    }
    try {
        std::vector<fs::path> cases;
        for (const auto& entry : fs::directory_iterator(argv[1])) {
            const std::string file = entry.path().filename().string();
            if (file.size() > kCaseSuffix.size() && file.ends_with(kCaseSuffix)) cases.push_back(entry.path());
        }
        std::sort(cases.begin(), cases.end());
        for (const auto& path : cases) {
            const std::string file = path.filename().string();
            const std::string name = file.substr(0, file.size() - kCaseSuffix.size());
            process(path, path.parent_path() / (name + std::string(kResultSuffix)), name);
        }
        std::cout << "torch_diff_tool: " << cases.size() << " cases run\n";
    } catch (const std::exception& e) {
        std::cerr << "torch_diff_tool: " << e.what() << "\n";
        return 1;
    }
    return 0;
}
