// Implements Prefetcher: one worker thread, a bounded queue and two condition variables.
#include "data/prefetcher.h"

#include <torch/torch.h>

namespace winnow::data {

Prefetcher::Prefetcher(Produce produce, int64_t count, int64_t depth)
    : produce_(std::move(produce)), count_(count), depth_(depth) {
  TORCH_CHECK(produce_, "prefetcher: expected a produce function");
  TORCH_CHECK(count_ >= -1, "prefetcher: expected count >= 0 or -1 (endless), got ", count_);
  TORCH_CHECK(depth_ >= 0, "prefetcher: expected prefetch depth >= 0, got ", depth_);
  if (depth_ > 0) worker_ = std::thread([this] { run(); });
}

Prefetcher::~Prefetcher() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stop_ = true;
  }
  not_full_.notify_all();
  if (worker_.joinable()) worker_.join();
}

void Prefetcher::run() {
  for (int64_t index = 0; count_ < 0 || index < count_; ++index) {
    {
      std::unique_lock<std::mutex> lock(mutex_);
      not_full_.wait(lock, [&] { return stop_ || static_cast<int64_t>(queue_.size()) < depth_; });
      if (stop_) return;
    }
    Batch batch;
    try {
      batch = produce_(index);
    } catch (...) {
      {
        std::lock_guard<std::mutex> lock(mutex_);
        error_ = std::current_exception();
      }
      not_empty_.notify_all();
      return;
    }
    {
      std::lock_guard<std::mutex> lock(mutex_);
      queue_.push_back(std::move(batch));
    }
    not_empty_.notify_one();
  }
  {
    std::lock_guard<std::mutex> lock(mutex_);
    finished_ = true;
  }
  not_empty_.notify_all();
}

std::optional<Batch> Prefetcher::next() {
  if (depth_ == 0) {
    if (error_) std::rethrow_exception(error_);
    if (count_ >= 0 && handed_out_ >= count_) return std::nullopt;
    try {
      Batch batch = produce_(handed_out_);
      ++handed_out_;
      return batch;
    } catch (...) {
      error_ = std::current_exception();
      throw;
    }
  }
  std::unique_lock<std::mutex> lock(mutex_);
  not_empty_.wait(lock, [&] { return !queue_.empty() || error_ || finished_; });
  if (!queue_.empty()) {
    Batch batch = std::move(queue_.front());
    queue_.pop_front();
    ++handed_out_;
    lock.unlock();
    not_full_.notify_one();
    return batch;
  }
  if (error_) std::rethrow_exception(error_);
  return std::nullopt;
}

}  // namespace winnow::data
