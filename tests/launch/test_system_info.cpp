// What the run header reports about the process: the allocator that is really in use.
#include <gtest/gtest.h>

#include <cstdlib>
#include <string>

#include "launch/system_info.h"

namespace winnow::launch {
namespace {

TEST(SystemInfo, ReportsTheAllocatorThisBinaryWasLinkedWith) {
  const std::string allocator = active_allocator();
#if WINNOW_LINKED_TCMALLOC
  // Built with WINNOW_ALLOCATOR=tcmalloc: its malloc must be the one in use, not glibc's.
  EXPECT_EQ(allocator.rfind("tcmalloc (", 0), 0u) << allocator;
#else
  const char* preload = std::getenv("LD_PRELOAD");
  if (!preload || std::string(preload).empty()) EXPECT_EQ(allocator, "glibc malloc");
#endif
}

}  // namespace
}  // namespace winnow::launch
