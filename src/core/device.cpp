#include "convkit/device.h"

#include "core/check.h"

namespace convkit {

std::string Device::to_string() const {
    return is_host() ? std::string("host") : detail::concat("cuda:", index);
}

}  // namespace convkit
