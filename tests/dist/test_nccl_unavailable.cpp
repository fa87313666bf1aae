// Without a GPU (or without NCCL in the build) the nccl backend must refuse with a clear error,
// never crash; "auto" for a CUDA device goes the same way.
#include <gtest/gtest.h>

#include <functional>
#include <string>

#include "dist/communicator.h"
#if WINNOW_HAVE_NCCL
#include "dist/nccl_communicator.h"
#endif

namespace winnow::dist {
namespace {

std::string error_of(const std::function<void()>& call) {
  try {
    call();
  } catch (const c10::Error& error) {
    return error.what();
  }
  return "";
}

// The words the error must contain on this machine: no device, or no NCCL in the build.
std::string expected_words() {
#if WINNOW_HAVE_NCCL
  return "nccl backend: no CUDA device: ";
#else
  return "nccl backend: not in this build";
#endif
}

bool gpu_present() {
#if WINNOW_HAVE_NCCL
  return cuda_device_count() > 0;
#else
  return false;
#endif
}

TEST(NcclBackend, ReportsWhyItCannotStart) {
  if (gpu_present()) GTEST_SKIP() << "a GPU is present; test_dist_nccl_CUDA covers the backend";
  EXPECT_EQ(nccl_backend_built(), WINNOW_HAVE_NCCL != 0);
  const std::string message = error_of([] { make_communicator("nccl"); });
  EXPECT_NE(message.find(expected_words()), std::string::npos) << message;
  EXPECT_NE(message.find("mpi"), std::string::npos)
      << "should point at the CPU backend: " << message;
}

TEST(NcclBackend, AutoForACudaDevicePicksNccl) {
  if (gpu_present()) GTEST_SKIP() << "a GPU is present; test_dist_nccl_CUDA covers the backend";
  CommunicatorOptions options;
  options.device = torch::Device(torch::kCUDA, 0);
  const std::string message = error_of([&] { make_communicator("auto", options); });
  EXPECT_NE(message.find(expected_words()), std::string::npos) << message;
}

#if WINNOW_HAVE_NCCL
TEST(NcclBackend, DeviceCountGivesTheRuntimeReason) {
  std::string why;
  if (cuda_device_count(&why) > 0) GTEST_SKIP() << "a GPU is present";
  EXPECT_FALSE(why.empty());
  EXPECT_NE(why.find("cudaGetDeviceCount"), std::string::npos) << why;
}
#endif

}  // namespace
}  // namespace winnow::dist
