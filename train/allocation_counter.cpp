// The counting CPU allocator behind AllocationCounter.
#include "train/allocation_counter.h"

#include <c10/core/Allocator.h>
#include <c10/util/Exception.h>

#include <cstddef>

namespace winnow::train {
namespace {

// Every buffer starts with a header; the data follows at 64 bytes, which keeps c10's 64-byte
// alignment of the data (the wrapped allocator aligns the header).
constexpr size_t kHeaderBytes = 64;
constexpr uint32_t kHeaderMagic = 0x776e6e77;

struct Header {
  int64_t bytes;
  uint32_t magic;
  uint32_t counted;
};
static_assert(sizeof(Header) <= kHeaderBytes, "the header must fit before the data");

thread_local int counting_depth = 0;
AllocationCounter* counter = nullptr;
c10::DeleterFnPtr wrapped_deleter = nullptr;

void release(void* data) {
  if (data == nullptr) return;
  void* base = static_cast<char*>(data) - kHeaderBytes;
  const auto* header = static_cast<const Header*>(base);
  TORCH_INTERNAL_ASSERT(header->magic == kHeaderMagic,
                        "counting allocator: freeing a buffer it did not allocate");
  if (header->counted != 0) counter->remove(header->bytes);
  wrapped_deleter(base);
}

class CountingAllocator final : public c10::Allocator {
 public:
  explicit CountingAllocator(c10::Allocator* wrapped) : wrapped_(wrapped) {}

  c10::DataPtr allocate(size_t bytes) const override {
    void* base = wrapped_->raw_allocate(bytes + kHeaderBytes);
    auto* header = static_cast<Header*>(base);
    header->bytes = static_cast<int64_t>(bytes);
    header->magic = kHeaderMagic;
    header->counted = counting_depth > 0 ? 1 : 0;
    if (header->counted != 0) counter->add(header->bytes);
    void* data = static_cast<char*>(base) + kHeaderBytes;
    return {data, data, &release, c10::Device(c10::DeviceType::CPU)};
  }

  // Data and context are the same pointer, so raw_allocate/raw_deallocate work (oneDNN uses them).
  c10::DeleterFnPtr raw_deleter() const override { return &release; }

 private:
  c10::Allocator* wrapped_;
};

}  // namespace

AllocationCounter& AllocationCounter::instance() {
  // Never destroyed: buffers the allocator handed out may be freed during static destruction.
  static AllocationCounter* const installed = [] {
    c10::Allocator* wrapped = c10::GetAllocator(c10::DeviceType::CPU);
    TORCH_CHECK(wrapped != nullptr && wrapped->raw_deleter() != nullptr,
                "allocation counter: expected a CPU allocator with raw allocation (LibTorch's "
                "default), got one without");
    wrapped_deleter = wrapped->raw_deleter();
    counter = new AllocationCounter();
    auto* allocator = new CountingAllocator(wrapped);
    // The highest priority, so that no allocator registered later by LibTorch replaces it.
    c10::SetAllocator(c10::DeviceType::CPU, allocator, /*priority=*/255);
    TORCH_CHECK(c10::GetAllocator(c10::DeviceType::CPU) == allocator,
                "allocation counter: c10 kept its CPU allocator (registered at a higher "
                "priority); the counting allocator is not installed");
    return counter;
  }();
  return *installed;
}

int64_t AllocationCounter::reset_peak() {
  const int64_t now = current_.load(std::memory_order_relaxed);
  peak_.store(now, std::memory_order_relaxed);
  return now;
}

bool AllocationCounter::installed() {
  return counter != nullptr;
}

void AllocationCounter::add(int64_t bytes) {
  allocations_.fetch_add(1, std::memory_order_relaxed);
  const int64_t now = current_.fetch_add(bytes, std::memory_order_relaxed) + bytes;
  int64_t peak = peak_.load(std::memory_order_relaxed);
  while (now > peak && !peak_.compare_exchange_weak(peak, now, std::memory_order_relaxed)) {
  }
}

CountAllocations::CountAllocations() {
  AllocationCounter::instance();
  ++counting_depth;
}

CountAllocations::~CountAllocations() {
  --counting_depth;
}

PeakAllocation::PeakAllocation() : live_at_start_(AllocationCounter::instance().reset_peak()) {}

int64_t PeakAllocation::bytes() const {
  const int64_t peak = AllocationCounter::instance().peak_bytes() - live_at_start_;
  return peak > 0 ? peak : 0;
}

}  // namespace winnow::train
