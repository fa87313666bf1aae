// Tests for the collective watchdog's report: which ranks are missing and what the message says.
#include <gtest/gtest.h>

#include "dist/collective_watchdog.h"

namespace winnow::dist {
namespace {

PeerProgress waiting_in(int rank, const CollectiveId& id) {
  return PeerProgress{rank, true, id.sequence, id};
}

PeerProgress silent(int rank) {
  return PeerProgress{rank, false, 0, {}};
}

const CollectiveId kSeventh{7, CollectiveKind::kAllReduce, 4};

TEST(CollectiveWatchdog, DescribesACollectiveByNumberOpAndBytes) {
  EXPECT_EQ(describe(kSeventh), "#7 all_reduce (4 bytes)");
  EXPECT_EQ(describe(CollectiveId{2, CollectiveKind::kBroadcast, 0}), "#2 broadcast (0 bytes)");
  EXPECT_STREQ(collective_kind_name(CollectiveKind::kAllGather), "all_gather");
  EXPECT_STREQ(collective_kind_name(CollectiveKind::kBarrier), "barrier");
}

TEST(CollectiveWatchdog, MissingAreTheSilentAndTheBehind) {
  PeerProgress behind = waiting_in(3, CollectiveId{6, CollectiveKind::kAllReduce, 4});
  PeerProgress ahead = waiting_in(4, CollectiveId{8, CollectiveKind::kBarrier, 0});
  // A broadcast root may finish #7 and wait in #8: it has reached #7.
  EXPECT_EQ(ranks_missing(7, {silent(5), waiting_in(1, kSeventh), behind, ahead, silent(2)}),
            (std::vector<int>{2, 3, 5}));
  EXPECT_TRUE(ranks_missing(7, {waiting_in(1, kSeventh), ahead}).empty());
  EXPECT_TRUE(ranks_missing(7, {}).empty());
}

TEST(CollectiveWatchdog, ReportNamesCollectiveWaitAndMissingRanks) {
  const std::string report =
      timeout_report(0, 3, kSeventh, 2.0, 2.0, {waiting_in(1, kSeventh), silent(2)});
  EXPECT_NE(report.find("collective timeout on rank 0 of 3"), std::string::npos) << report;
  EXPECT_NE(report.find("#7 all_reduce (4 bytes) has waited 2.0 s (timeout 2.0 s)"),
            std::string::npos)
      << report;
  EXPECT_NE(report.find("ranks that have not reached it: 2 (1 of 3)"), std::string::npos) << report;
  EXPECT_NE(report.find("rank 1: waiting in #7 all_reduce (4 bytes)"), std::string::npos) << report;
  EXPECT_NE(report.find("rank 2: no answer"), std::string::npos) << report;
  EXPECT_NE(report.find("exit code 62"), std::string::npos) << report;
  EXPECT_EQ(report.find("MISMATCH"), std::string::npos) << report;
}

TEST(CollectiveWatchdog, ReportCallsOutAMismatchedCollective) {
  const CollectiveId other{7, CollectiveKind::kBroadcast, 8};
  const std::string report = timeout_report(1, 2, kSeventh, 3.5, 3.0, {waiting_in(0, other)});
  EXPECT_NE(report.find("every rank has reached it"), std::string::npos) << report;
  EXPECT_NE(report.find("rank 0: waiting in #7 broadcast (8 bytes), started 7 -- MISMATCH"),
            std::string::npos)
      << report;
}

TEST(CollectiveWatchdog, RejectsANonPositiveTimeout) {
  EXPECT_THROW(CollectiveWatchdog(MPI_COMM_NULL, 0.0), c10::Error);
}

}  // namespace
}  // namespace winnow::dist
