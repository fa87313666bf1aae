// Tests for the backend registry and the MPI-launcher detection behind "auto".
#include <gtest/gtest.h>

#include <map>

#include "dist/communicator.h"
#include "dist/launch_environment.h"

namespace winnow::dist {
namespace {

EnvLookup fake_env(std::map<std::string, std::string> variables) {
  return [variables](const std::string& name) -> std::optional<std::string> {
    const auto found = variables.find(name);
    if (found == variables.end()) return std::nullopt;
    return found->second;
  };
}

TEST(MakeCommunicator, KnownBackendsAreListed) {
  EXPECT_EQ(known_backends(), (std::vector<std::string>{"local", "mpi", "nccl", "auto"}));
}

TEST(MakeCommunicator, LocalBackend) {
  const auto communicator = make_communicator("local");
  ASSERT_NE(communicator, nullptr);
  EXPECT_EQ(communicator->backend_name(), "local");
  EXPECT_EQ(communicator->world_size(), 1);
}

TEST(MakeCommunicator, UnknownNameListsKnownBackends) {
  try {
    make_communicator("gloo");
    FAIL() << "expected an error";
  } catch (const c10::Error& error) {
    const std::string message = error.what();
    EXPECT_NE(message.find("'gloo'"), std::string::npos) << message;
    EXPECT_NE(message.find("local, mpi, nccl, auto"), std::string::npos) << message;
  }
}

TEST(MakeCommunicator, AutoIsLocalOutsideAnMpiLauncher) {
  if (started_by_mpi_launcher()) GTEST_SKIP() << "this test process runs under an MPI launcher";
  EXPECT_EQ(make_communicator("auto")->backend_name(), "local");
}

TEST(MakeCommunicator, NegativeTimeoutIsRejected) {
  CommunicatorOptions options;
  options.collective_timeout_seconds = -1;
  try {
    make_communicator("local", options);
    FAIL() << "expected an error";
  } catch (const c10::Error& error) {
    EXPECT_NE(std::string(error.what()).find("collective_timeout_seconds >= 0"), std::string::npos)
        << error.what();
  }
}

TEST(LaunchEnvironment, DetectsEachLauncher) {
  EXPECT_FALSE(mpi_launcher_in_environment(fake_env({})));
  EXPECT_FALSE(mpi_launcher_in_environment(fake_env({{"HOME", "/root"}})));
  EXPECT_TRUE(mpi_launcher_in_environment(fake_env({{"OMPI_COMM_WORLD_SIZE", "1"}})));
  EXPECT_TRUE(mpi_launcher_in_environment(fake_env({{"PMIX_RANK", "0"}})));
  EXPECT_TRUE(mpi_launcher_in_environment(fake_env({{"PMI_RANK", "3"}})));
}

TEST(LaunchEnvironment, SlurmStepNeedsMoreThanOneTask) {
  EXPECT_TRUE(
      mpi_launcher_in_environment(fake_env({{"SLURM_STEP_ID", "0"}, {"SLURM_NTASKS", "4"}})));
  EXPECT_FALSE(
      mpi_launcher_in_environment(fake_env({{"SLURM_STEP_ID", "0"}, {"SLURM_NTASKS", "1"}})));
  EXPECT_FALSE(mpi_launcher_in_environment(fake_env({{"SLURM_STEP_ID", "0"}})));
  EXPECT_FALSE(mpi_launcher_in_environment(fake_env({{"SLURM_NTASKS", "4"}})));
  EXPECT_FALSE(
      mpi_launcher_in_environment(fake_env({{"SLURM_STEP_ID", "0"}, {"SLURM_NTASKS", "4x"}})));
}

}  // namespace
}  // namespace winnow::dist
