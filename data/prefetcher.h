// Prefetcher: produces batches on a background thread, a bounded number ahead of the consumer.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <exception>
#include <functional>
#include <mutex>
#include <optional>
#include <thread>

#include "data/batch.h"

namespace winnow::data {

// Calls produce(0), produce(1), ... in order on one worker thread and hands the results out in
// the same order. The worker stays at most `depth` batches ahead (a bounded queue; depth 0 means
// no thread: next() produces synchronously). If produce throws, the batches made before are
// handed out first, then next() rethrows that exception (and does so on every later call).
// The destructor stops the worker and joins it, also while it waits on a full queue.
class Prefetcher {
 public:
  using Produce = std::function<Batch(int64_t index)>;

  // count: number of batches to produce, or -1 for an endless stream.
  Prefetcher(Produce produce, int64_t count, int64_t depth);
  ~Prefetcher();
  Prefetcher(const Prefetcher&) = delete;
  Prefetcher& operator=(const Prefetcher&) = delete;

  // The next batch in index order; empty once `count` batches have been handed out.
  std::optional<Batch> next();

 private:
  void run();

  Produce produce_;
  const int64_t count_;
  const int64_t depth_;
  int64_t handed_out_ = 0;  // consumer side only

  std::mutex mutex_;
  std::condition_variable not_full_;   // worker waits: queue has room, or stop
  std::condition_variable not_empty_;  // consumer waits: a batch, an error, or the end
  std::deque<Batch> queue_;
  std::exception_ptr error_;
  bool stop_ = false;
  bool finished_ = false;
  std::thread worker_;  // last member: starts after everything above is constructed
};

}  // namespace winnow::data
