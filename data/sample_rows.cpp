// Implements read_sample_rows: a stored-chunk count check, then one chunk row per read.
#include "data/sample_rows.h"

#include <algorithm>

#include "data/error_text.h"

namespace winnow::data {

torch::Tensor read_sample_rows(const H5File& file, const std::string& name,
                               const std::string& samples) {
  const H5DatasetInfo info = file.dataset_info(name);
  const std::string where = "data file '" + file.path() + "' dataset '" + name + "'";
  TORCH_CHECK(!info.shape.empty(), where, ": expected samples along dimension 0, got a scalar");
  const int64_t rows = info.shape[0];
  if (rows == 0) return file.read_tensor(name);
  file.check_fully_stored(name);  // once: the reads below each touch one row of chunks
  const int64_t rows_per_read = info.chunk.empty() ? rows : std::max<int64_t>(1, info.chunk[0]);
  torch::Tensor out;  // [rows, ...] the dataset's dtype
  for (int64_t begin = 0; begin < rows; begin += rows_per_read) {
    const int64_t end = std::min(rows, begin + rows_per_read);
    torch::Tensor part;
    try {
      part = file.read_rows(name, begin, end);
    } catch (const std::exception& error) {
      TORCH_CHECK(false, where, ": cannot read ", samples, " [", begin, ", ", end, ") of ", rows,
                  ": ", error_message(error), "; the file is damaged in that range (re-create it ",
                  "with `winnow prepare`, or restore a copy)");
    }
    if (!out.defined()) out = torch::empty(info.shape, part.options());
    out.slice(0, begin, end).copy_(part);
  }
  return out;
}

}  // namespace winnow::data
