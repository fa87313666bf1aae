// Block timing: measures the wall-clock of one training forward + backward of every block of a
// model, on the per-rank micro-batch, at given token counts — the table the co-scheduler's
// wall-clock cost model budgets (coschedule.cost = time; compression/layer_timing_table.h).
#pragma once

#include <cstdint>
#include <vector>

#include "compression/layer_timing_table.h"
#include "dist/communicator.h"
#include "train/model.h"

namespace winnow::train {

struct BlockTimingOptions {
  int64_t batch = 1;                  // samples per rank and micro-batch
  std::vector<int64_t> token_counts;  // ascending, >= 1
  int64_t warmup = 2;                 // untimed calls before the timed ones (caches, allocator)
  int64_t repeats = 5;                // timed calls; the fastest is kept (interference only adds)
};

// Collective: every rank times every block of `model` (its `blocks` module list, as the ViT and
// the GPT name it) on a [batch, n, C] input for each n of token_counts, as its attention half and
// its MLP half (the split of compression::LayerTimingTable): the forward to and from the block's
// post_attention site, the backward to and from the gradient of the state there. Every rank then
// keeps the largest time over ranks (a step waits for its slowest rank), so every rank returns
// the identical table. The input is a fixed pattern (no random generator is drawn from) and the
// blocks' parameter gradients are left undefined, as before, so training is unaffected.
compression::LayerTimingTable measure_block_times(TransformerModel& model,
                                                  const BlockTimingOptions& options,
                                                  dist::Communicator& comm);

}  // namespace winnow::train
