// Bipartite soft matching and size-weighted merging.
#include "compression/merge.h"

#include <algorithm>
#include <limits>
#include <vector>

#include "compression/similarity_criterion.h"

namespace winnow::compression {
namespace {

// Rows `index` [B, M] of t [B, L, F].
torch::Tensor take_rows(const torch::Tensor& t, const torch::Tensor& index) {
  return t.gather(1, index.unsqueeze(-1).expand({t.size(0), index.size(1), t.size(2)}));
}

// Arranges merged A rows (unmerged, in matching order) and B rows [B, ·, F] in ToMe's output
// order: the protected tokens in original order, then the other A rows, then the other B rows.
torch::Tensor arrange(const torch::Tensor& a_rows, const torch::Tensor& b_rows,
                      int64_t protected_count) {
  const int64_t protected_a = (protected_count + 1) / 2, protected_b = protected_count / 2;
  std::vector<torch::Tensor> parts;
  for (int64_t i = 0; i < protected_count; ++i) {
    parts.push_back(i % 2 == 0 ? a_rows.slice(1, i / 2, i / 2 + 1)
                               : b_rows.slice(1, i / 2, i / 2 + 1));
  }
  parts.push_back(a_rows.slice(1, protected_a));
  parts.push_back(b_rows.slice(1, protected_b));
  return torch::cat(parts, 1);
}

// The permutation [B, N'] that puts merge_tokens' ToMe-ordered output in current-token order: each
// output token is represented by its unmerged A token or its destination B token.
torch::Tensor current_order(const BipartiteMatching& matching, int64_t tokens) {
  const int64_t batch = matching.unmerged.size(0), b_count = tokens / 2;
  const auto a_index = (2 * matching.unmerged).unsqueeze(-1);
  const auto b_index =
      (2 * torch::arange(b_count, matching.unmerged.options()) + 1).expand({batch, b_count});
  const auto representative =
      arrange(a_index, b_index.unsqueeze(-1), matching.protected_count).squeeze(-1);
  return std::get<1>(representative.sort(/*stable=*/true, /*dim=*/1, /*descending=*/false));
}

}  // namespace

int64_t merge_count_limit(int64_t tokens, int64_t protected_count) {
  return std::max<int64_t>((tokens - protected_count) / 2, 0);
}

BipartiteMatching bipartite_soft_matching(const torch::Tensor& metric, int64_t merge_count,
                                          int64_t protected_count) {
  TORCH_CHECK(metric.dim() == 3, "bipartite_soft_matching: expected metric [B, N, D], got ",
              metric.sizes());
  const int64_t batch = metric.size(0), tokens = metric.size(1);
  TORCH_CHECK(protected_count >= 0 && protected_count <= tokens,
              "bipartite_soft_matching: expected 0 <= protected_count <= N = ", tokens, ", got ",
              protected_count);
  const int64_t r = std::min(merge_count, merge_count_limit(tokens, protected_count));
  const int64_t a_count = (tokens + 1) / 2;
  const auto index_options = metric.options().dtype(torch::kInt64);
  BipartiteMatching matching;
  matching.protected_count = protected_count;
  if (r <= 0) {
    matching.unmerged = torch::arange(a_count, index_options).expand({batch, a_count});
    matching.sources = torch::empty({batch, 0}, index_options);
    matching.destinations = torch::empty({batch, 0}, index_options);
    return matching;
  }

  torch::NoGradGuard no_grad;
  const auto unit = unit_rows(metric);
  const auto a = unit.slice(1, 0, tokens, 2), b = unit.slice(1, 1, tokens, 2);
  auto similarity = torch::matmul(a, b.transpose(1, 2));  // [B, ceil(N/2), floor(N/2)]
  const double minus_inf = -std::numeric_limits<double>::infinity();
  const int64_t protected_a = (protected_count + 1) / 2, protected_b = protected_count / 2;
  if (protected_a > 0) similarity.slice(1, 0, protected_a).fill_(minus_inf);
  if (protected_b > 0) similarity.slice(2, 0, protected_b).fill_(minus_inf);

  const auto best = similarity.max(-1);
  const auto& node_max = std::get<0>(best);  // [B, ceil(N/2)]
  const auto& node_idx = std::get<1>(best);  // [B, ceil(N/2)]
  const auto edges = std::get<1>(node_max.sort(/*stable=*/true, /*dim=*/1, /*descending=*/true));
  matching.unmerged = edges.slice(1, r);
  matching.sources = edges.slice(1, 0, r);
  matching.destinations = node_idx.gather(1, matching.sources);
  if (protected_count > 0) matching.unmerged = std::get<0>(matching.unmerged.sort(1));
  return matching;
}

TokenState merge_tokens(const TokenState& state, const BipartiteMatching& matching,
                        bool keep_order) {
  const int64_t batch = state.batch(), tokens = state.tokens();
  const int64_t protect = matching.protected_count;
  TORCH_CHECK(protect == state.protected_count, "merge_tokens: matching protects ", protect,
              " tokens, the state ", state.protected_count);
  TORCH_CHECK(matching.unmerged.size(1) + matching.sources.size(1) == (tokens + 1) / 2,
              "merge_tokens: matching is for ",
              2 * (matching.unmerged.size(1) + matching.sources.size(1)),
              " or one fewer tokens, the state has ", tokens);
  if (matching.sources.size(1) == 0) return state;

  const auto size =
      state.size.defined() ? state.size : torch::ones({batch, tokens, 1}, state.x.options());
  // One scatter-add for x·size and size together, as ToMe's two merge(…, "sum") calls.
  const auto weighted = torch::cat({state.x * size, size}, -1);  // [B, N, C + 1]
  const auto src_all = weighted.slice(1, 0, tokens, 2), dst_all = weighted.slice(1, 1, tokens, 2);
  const auto sources = take_rows(src_all, matching.sources);
  const auto destination_index = matching.destinations.unsqueeze(-1).expand(sources.sizes());
  const auto merged_dst = dst_all.scatter_add(1, destination_index, sources);
  const auto merged = arrange(take_rows(src_all, matching.unmerged), merged_dst, protect);

  TokenState out;
  const int64_t width = state.width();
  out.size = merged.slice(-1, width);
  out.x = merged.slice(-1, 0, width) / out.size;
  const auto pos = state.positions().unsqueeze(-1);
  out.pos = arrange(take_rows(pos.slice(1, 0, tokens, 2), matching.unmerged),
                    pos.slice(1, 1, tokens, 2), protect)
                .squeeze(-1);
  if (state.keep.defined()) {
    // A destination's keep is the maximum over itself and its sources (dense [B, r, N_B] one-hot:
    // r and N_B are at most N/2, and this avoids the beta scatter_reduce).
    const auto keep_src = state.keep.slice(1, 0, tokens, 2);
    const auto keep_dst = state.keep.slice(1, 1, tokens, 2);
    const auto hits = torch::one_hot(matching.destinations, keep_dst.size(1)).to(keep_dst.dtype());
    const auto from_sources = (hits * keep_src.gather(1, matching.sources).unsqueeze(-1)).amax(1);
    const auto kept_dst = torch::maximum(keep_dst, from_sources).unsqueeze(-1);
    out.keep = arrange(take_rows(keep_src.unsqueeze(-1), matching.unmerged), kept_dst, protect)
                   .squeeze(-1);
  }
  out.protected_count = state.protected_count;
  out.policy_attention = state.policy_attention;
  if (keep_order) {
    const auto order = current_order(matching, tokens);
    out.x = take_rows(out.x, order);
    out.size = take_rows(out.size, order);
    out.pos = out.pos.gather(1, order);
    if (out.keep.defined()) out.keep = out.keep.gather(1, order);
  }
  return out;
}

torch::Tensor merge_destinations(const BipartiteMatching& matching, int64_t tokens,
                                 bool keep_order) {
  const int64_t batch = matching.unmerged.size(0), protect = matching.protected_count;
  const int64_t a_count = (tokens + 1) / 2, b_count = tokens / 2;
  const int64_t unmerged_count = matching.unmerged.size(1);
  TORCH_CHECK(unmerged_count + matching.sources.size(1) == a_count,
              "merge_destinations: matching is not for ", tokens, " tokens");
  const int64_t protected_a = (protect + 1) / 2, protected_b = protect / 2;
  const auto options = matching.unmerged.options();
  // Output slots (see arrange): protected tokens keep their index; then the other unmerged A
  // tokens; then the other B tokens.
  const auto u = torch::arange(unmerged_count, options);
  const auto unmerged_slot =
      torch::where(u < protected_a, 2 * u, protect + u - protected_a).expand({batch, -1});
  const auto j = torch::arange(b_count, options);
  const auto b_slot = torch::where(j < protected_b, 2 * j + 1,
                                   protect + unmerged_count - protected_a + j - protected_b)
                          .expand({batch, -1});
  auto a_slot = torch::zeros({batch, a_count}, options);
  a_slot.scatter_(1, matching.unmerged, unmerged_slot);
  a_slot.scatter_(1, matching.sources, b_slot.gather(1, matching.destinations));
  auto destinations = torch::empty({batch, tokens}, options);
  destinations.slice(1, 0, tokens, 2).copy_(a_slot);
  destinations.slice(1, 1, tokens, 2).copy_(b_slot);
  if (!keep_order) return destinations;
  // Slot s of ToMe's order moves to inverse[s] in current order.
  const auto inverse = std::get<1>(current_order(matching, tokens).sort(1));
  return inverse.gather(1, destinations);
}

int64_t MergeStrategy::output_tokens(int64_t tokens, int64_t protected_count,
                                     int64_t keep_count) const {
  const int64_t wanted = std::max<int64_t>(tokens - protected_count - keep_count, 0);
  return tokens - std::min(wanted, merge_count_limit(tokens, protected_count));
}

TokenState MergeStrategy::reduce(const TokenState& state, const torch::Tensor& /*scores*/,
                                 int64_t keep_count, const torch::Tensor& metric) const {
  const auto matching =
      bipartite_soft_matching(metric, state.reducible() - keep_count, state.protected_count);
  return merge_tokens(state, matching, options_.keep_order());
}

}  // namespace winnow::compression
