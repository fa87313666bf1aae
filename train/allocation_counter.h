// AllocationCounter: counts the bytes of CPU tensor storage that live at once (current and peak),
// by a counting allocator put in front of c10's CPU allocator, so that the peak activation
// memory of a training step is measured rather than estimated (docs/training.md, "Measurements").
#pragma once

#include <atomic>
#include <cstdint>

namespace winnow::train {

// The process-wide counter. The first call to instance() installs the counting allocator with
// c10::SetAllocator(kCPU) in front of whatever c10::GetAllocator(kCPU) returned (LibTorch's
// default allocator, which takes its memory from malloc: tcmalloc in winnow's executables). It
// stays installed for the rest of the process: buffers it handed out may be freed at any time.
//
// Only storage allocated on a thread inside a CountAllocations scope is counted (the step's own
// thread: LibTorch runs CPU backward on the calling thread). The data loader's prefetch thread and
// communication threads allocate uncounted. Every allocation made through the installed
// allocator carries a 64-byte header (its size, whether it was counted), so that a counted
// buffer is subtracted when freed on any thread, and c10's raw_allocate/raw_deallocate (oneDNN's
// scratch buffers) keep working. Tensors allocated before the installation are never counted.
class AllocationCounter {
 public:
  static AllocationCounter& instance();

  // Bytes of counted storage alive now, and the most alive at once since the last reset_peak().
  int64_t current_bytes() const { return current_.load(std::memory_order_relaxed); }
  int64_t peak_bytes() const { return peak_.load(std::memory_order_relaxed); }
  // Counted allocations since the counter was installed (how many buffers, not bytes).
  int64_t allocations() const { return allocations_.load(std::memory_order_relaxed); }
  // Starts a new peak at the bytes alive now, and returns them.
  int64_t reset_peak();

  // Whether instance() has installed the counting allocator (benchmarks time allocations before).
  static bool installed();
  // Called by the counting allocator; `bytes` is the requested size (the header not included).
  void add(int64_t bytes);
  void remove(int64_t bytes) { current_.fetch_sub(bytes, std::memory_order_relaxed); }

  AllocationCounter(const AllocationCounter&) = delete;
  AllocationCounter& operator=(const AllocationCounter&) = delete;

 private:
  AllocationCounter() = default;
  std::atomic<int64_t> current_{0};
  std::atomic<int64_t> peak_{0};
  std::atomic<int64_t> allocations_{0};
};

// While alive, CPU tensor storage allocated on this thread is counted by AllocationCounter
// (scopes nest). Installs the counting allocator on first use.
class CountAllocations {
 public:
  CountAllocations();
  ~CountAllocations();
  CountAllocations(const CountAllocations&) = delete;
  CountAllocations& operator=(const CountAllocations&) = delete;
};

// Measures the peak of counted bytes above the level at construction, on this thread:
//   PeakAllocation peak;  ...forward, backward...;  peak.bytes()
// Counting is on for the object's lifetime. Nested measurements share one peak: do not nest.
class PeakAllocation {
 public:
  PeakAllocation();
  // The most bytes alive at once since construction, minus those alive at construction (>= 0).
  int64_t bytes() const;

 private:
  CountAllocations counting_;
  int64_t live_at_start_;
};

}  // namespace winnow::train
