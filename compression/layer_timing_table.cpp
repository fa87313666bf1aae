// The measured per-layer timing table of the co-scheduler's wall-clock cost model.
#include "compression/layer_timing_table.h"

#include <algorithm>
#include <cmath>
#include <iomanip>
#include <sstream>

namespace winnow::compression {

namespace {

const char* const kTokens = "timing.tokens";
const char* const kAttention = "timing.attention_seconds";
const char* const kMlp = "timing.mlp_seconds";

}  // namespace

LayerTimingTable::LayerTimingTable(std::vector<int64_t> token_counts,
                                   torch::Tensor attention_seconds, torch::Tensor mlp_seconds)
    : token_counts_(std::move(token_counts)) {
  const auto points = static_cast<int64_t>(token_counts_.size());
  TORCH_CHECK(points >= 1, "timing table: expected at least one token count");
  for (int64_t p = 0; p < points; ++p)
    TORCH_CHECK(token_counts_[p] >= 1 && (p == 0 || token_counts_[p] > token_counts_[p - 1]),
                "timing table: expected strictly increasing token counts >= 1, got ",
                token_counts_[p], " at position ", p);
  for (const auto* t : {&attention_seconds, &mlp_seconds}) {
    TORCH_CHECK(t->defined() && t->dim() == 2 && t->size(1) == points && t->size(0) >= 1,
                "timing table: expected seconds [layers, ", points, "], got ",
                t->defined() ? t->sizes() : torch::IntArrayRef{});
    TORCH_CHECK(torch::isfinite(*t).all().item<bool>() && (*t >= 0).all().item<bool>(),
                "timing table: expected finite times >= 0");
  }
  TORCH_CHECK(attention_seconds.sizes() == mlp_seconds.sizes(),
              "timing table: attention and MLP times of different shapes ",
              attention_seconds.sizes(), " and ", mlp_seconds.sizes());
  attention_seconds_ = attention_seconds.to(torch::kFloat64).contiguous();
  mlp_seconds_ = mlp_seconds.to(torch::kFloat64).contiguous();
}

double LayerTimingTable::interpolate(const torch::Tensor& seconds, int64_t layer,
                                     int64_t tokens) const {
  TORCH_CHECK(!empty(), "timing table: no times measured");
  TORCH_CHECK(layer >= 0 && layer < depth(), "timing table: layer ", layer, " outside 0..",
              depth() - 1);
  if (tokens == 0) return 0.0;
  TORCH_CHECK(tokens >= token_counts_.front() && tokens <= token_counts_.back(),
              "timing table: ", tokens, " tokens outside the measured ", token_counts_.front(),
              "..", token_counts_.back());
  const double* row = seconds.data_ptr<double>() + layer * seconds.size(1);
  const auto upper = std::lower_bound(token_counts_.begin(), token_counts_.end(), tokens);
  const auto hi = static_cast<size_t>(upper - token_counts_.begin());
  if (*upper == tokens) return row[hi];
  const size_t lo = hi - 1;
  const double t = static_cast<double>(tokens - token_counts_[lo]) /
                   static_cast<double>(token_counts_[hi] - token_counts_[lo]);
  return row[lo] + t * (row[hi] - row[lo]);
}

double LayerTimingTable::attention(int64_t layer, int64_t tokens) const {
  return interpolate(attention_seconds_, layer, tokens);
}

double LayerTimingTable::mlp(int64_t layer, int64_t tokens) const {
  return interpolate(mlp_seconds_, layer, tokens);
}

std::map<std::string, torch::Tensor> LayerTimingTable::state() const {
  if (empty()) return {};
  return {{kTokens, torch::tensor(token_counts_, torch::kInt64)},
          {kAttention, attention_seconds_.clone()},
          {kMlp, mlp_seconds_.clone()}};
}

LayerTimingTable LayerTimingTable::from_state(const std::map<std::string, torch::Tensor>& state,
                                              const std::string& owner) {
  const int found =
      static_cast<int>(state.count(kTokens) + state.count(kAttention) + state.count(kMlp));
  if (found == 0) return {};
  TORCH_CHECK(found == 3, owner, ": the planner state holds part of a timing table (expected ",
              kTokens, ", ", kAttention, " and ", kMlp, ")");
  const auto tokens = state.at(kTokens).to(torch::kInt64).contiguous();
  std::vector<int64_t> counts(tokens.data_ptr<int64_t>(),
                              tokens.data_ptr<int64_t>() + tokens.numel());
  return LayerTimingTable(std::move(counts), state.at(kAttention), state.at(kMlp));
}

std::string LayerTimingTable::describe() const {
  if (empty()) return "no timing table";
  std::ostringstream out;
  out << "training forward+backward per block, ms, at tokens";
  for (auto n : token_counts_) out << " " << n;
  out << std::fixed << std::setprecision(3);
  for (int64_t l = 0; l < depth(); ++l) {
    out << "\n    layer " << l << ":";
    for (size_t p = 0; p < token_counts_.size(); ++p)
      out << " " << 1e3 * (attention(l, token_counts_[p]) + mlp(l, token_counts_[p]));
  }
  return out.str();
}

}  // namespace winnow::compression
