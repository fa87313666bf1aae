// Implements the helpers shared by Dataset implementations.
#include "data/dataset.h"

namespace winnow::data {

void check_sample_ids(const std::vector<int64_t>& sample_ids, int64_t size,
                      const std::string& who) {
  for (size_t i = 0; i < sample_ids.size(); ++i) {
    TORCH_CHECK(sample_ids[i] >= 0 && sample_ids[i] < size, who, ": sample id ", sample_ids[i],
                " at position ", i, " is out of range; expected ids in [0, ", size, ")");
  }
}

}  // namespace winnow::data
