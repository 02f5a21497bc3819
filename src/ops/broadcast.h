#pragma once
// Moved to backend_api/broadcast.h (the backend contract). This forwarding header remains only for
// tests/test_cuda_*.cpp and tests/emu/, which are being edited on another branch; delete it once
// they include backend_api/broadcast.h.
#include "backend_api/broadcast.h"
