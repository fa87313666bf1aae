// Precompiled header: the LibTorch and standard headers nearly every winnow file includes.
#pragma once
#include <torch/torch.h>

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>
