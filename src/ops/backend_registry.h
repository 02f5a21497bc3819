#pragma once
// Moved to backend_api/backend_registry.h (the backend contract). This forwarding header remains
// only for tests/test_cuda_*.cpp, which are being edited on another branch; delete it once they
// include backend_api/backend_registry.h.
#include "backend_api/backend_registry.h"
