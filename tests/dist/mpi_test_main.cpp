// GoogleTest main for multi-rank tests: MPI around RUN_ALL_TESTS, rank-0 output, agreed exit code.
#include <gtest/gtest.h>
#include <mpi.h>

#include <cstdio>
#include <memory>

#include "dist/mpi_communicator.h"
#include "tests/dist/mpi_test_env.h"

namespace winnow::dist::testing {
namespace {

std::shared_ptr<Communicator> g_world;

// On ranks other than 0, print only failed assertions, tagged with the rank; rank 0 keeps the
// default printer, so a passing run shows one report instead of one per rank.
class FailureOnlyPrinter : public ::testing::EmptyTestEventListener {
 public:
  explicit FailureOnlyPrinter(int rank) : rank_(rank) {}

  void OnTestPartResult(const ::testing::TestPartResult& result) override {
    if (!result.failed()) return;
    std::fprintf(stderr, "[rank %d] %s:%d: Failure\n%s\n", rank_,
                 result.file_name() ? result.file_name() : "?", result.line_number(),
                 result.summary());
  }

  void OnTestEnd(const ::testing::TestInfo& info) override {
    if (info.result()->Failed()) {
      std::fprintf(stderr, "[rank %d] FAILED %s.%s\n", rank_, info.test_suite_name(), info.name());
    }
  }

 private:
  int rank_;
};

}  // namespace

Communicator& world() {
  return *g_world;
}

}  // namespace winnow::dist::testing

int main(int argc, char** argv) {
  int provided = 0;
  MPI_Init_thread(&argc, &argv, MPI_THREAD_FUNNELED, &provided);
  ::testing::InitGoogleTest(&argc, argv);

  int rank = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  if (rank != 0) {
    auto& listeners = ::testing::UnitTest::GetInstance()->listeners();
    delete listeners.Release(listeners.default_result_printer());
    listeners.Append(new winnow::dist::testing::FailureOnlyPrinter(rank));
  }

  int failed = 0;
  {
    winnow::dist::testing::g_world = std::make_shared<winnow::dist::MpiCommunicator>();
    failed = RUN_ALL_TESTS() != 0 ? 1 : 0;
    winnow::dist::testing::g_world.reset();
  }
  int any_failed = failed;
  MPI_Allreduce(&failed, &any_failed, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
  if (rank == 0 && any_failed && !failed) {
    std::fprintf(stderr, "a test failed on another rank (see the [rank N] lines above)\n");
  }
  MPI_Finalize();
  return any_failed;
}
