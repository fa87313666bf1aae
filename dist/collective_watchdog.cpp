// The collective watchdog: polled waits, the timeout query to peers, the report and the abort.
#include "dist/collective_watchdog.h"

#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <iomanip>
#include <sstream>
#include <thread>

#include "dist/mpi_check.h"

namespace winnow::dist {
namespace {

using Clock = std::chrono::steady_clock;

constexpr int kQueryTag = 1;
constexpr int kAnswerTag = 2;
// Blocking MPI calls spin; so do we at first, so that a collective whose peers are on time costs
// no sleep. Past this, a peer is late and sleeping frees the core.
constexpr double kSpinSeconds = 2e-3;
constexpr auto kFirstPause = std::chrono::microseconds(20);
constexpr auto kLongestPause = std::chrono::microseconds(1000);
// How long the rank that timed out collects answers before it reports.
constexpr double kAnswerWindowSeconds = 0.5;
// A rank that times out after a peer asked it keeps answering this much longer instead of
// reporting, so that the peer's report is printed before anyone's MPI_Abort ends the job.
constexpr double kReporterGraceSeconds = kAnswerWindowSeconds + 2.0;

double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

bool mpi_running() {
  int initialized = 0;
  int finalized = 0;
  MPI_Initialized(&initialized);
  MPI_Finalized(&finalized);
  return initialized && !finalized;
}

std::string rank_list(const std::vector<int>& ranks) {
  std::ostringstream text;
  for (size_t i = 0; i < ranks.size(); ++i) text << (i ? ", " : "") << ranks[i];
  return text.str();
}

}  // namespace

const char* collective_kind_name(CollectiveKind kind) {
  switch (kind) {
    case CollectiveKind::kAllReduce:
      return "all_reduce";
    case CollectiveKind::kBroadcast:
      return "broadcast";
    case CollectiveKind::kAllGather:
      return "all_gather";
    case CollectiveKind::kBarrier:
      return "barrier";
  }
  return "unknown collective";
}

std::string describe(const CollectiveId& id) {
  std::ostringstream text;
  text << "#" << id.sequence << " " << collective_kind_name(id.kind) << " (" << id.bytes
       << " bytes)";
  return text.str();
}

std::vector<int> ranks_missing(int64_t sequence, const std::vector<PeerProgress>& peers) {
  std::vector<int> missing;
  for (const auto& peer : peers) {
    if (!peer.answered || peer.started < sequence) missing.push_back(peer.rank);
  }
  std::sort(missing.begin(), missing.end());
  return missing;
}

std::string timeout_report(int rank, int world_size, const CollectiveId& id, double waited_seconds,
                           double timeout_seconds, const std::vector<PeerProgress>& peers) {
  const std::vector<int> missing = ranks_missing(id.sequence, peers);
  std::ostringstream text;
  text << std::fixed << std::setprecision(1);
  text << "collective timeout on rank " << rank << " of " << world_size << ": collective "
       << describe(id) << " has waited " << waited_seconds << " s (timeout " << timeout_seconds
       << " s)\n";
  if (missing.empty()) {
    text << "  every rank has reached it: the ranks disagree on what collective #" << id.sequence
         << " is, or the transport is stuck\n";
  } else {
    text << "  ranks that have not reached it: " << rank_list(missing) << " (" << missing.size()
         << " of " << world_size << ")\n";
  }
  for (const auto& peer : peers) {
    text << "  rank " << peer.rank << ": ";
    if (!peer.answered) {
      text << "no answer (computing outside any collective, blocked elsewhere, or dead)\n";
      continue;
    }
    if (peer.waiting.sequence == 0) {
      text << "started " << peer.started << " collectives, waiting in none\n";
      continue;
    }
    text << "waiting in " << describe(peer.waiting) << ", started " << peer.started;
    const bool same_call = peer.waiting.kind == id.kind && peer.waiting.bytes == id.bytes;
    if (peer.waiting.sequence == id.sequence && !same_call) {
      text << " -- MISMATCH: this rank is in " << describe(id)
           << "; every rank must issue the same collectives in the same order";
    }
    text << "\n";
  }
  text << "Ending the job (MPI_Abort, exit code " << kCollectiveTimeoutExitCode << ").";
  return text.str();
}

CollectiveWatchdog::CollectiveWatchdog(MPI_Comm comm, double timeout_seconds)
    : timeout_seconds_(timeout_seconds) {
  TORCH_CHECK(timeout_seconds > 0, "collective watchdog: expected a timeout > 0 seconds, got ",
              timeout_seconds, " (0 means no watchdog; do not construct one)");
  WINNOW_MPI_CHECK(MPI_Comm_dup(comm, &side_comm_));
  WINNOW_MPI_CHECK(MPI_Comm_set_errhandler(side_comm_, MPI_ERRORS_RETURN));
  WINNOW_MPI_CHECK(MPI_Comm_rank(side_comm_, &rank_));
  WINNOW_MPI_CHECK(MPI_Comm_size(side_comm_, &world_size_));
}

CollectiveWatchdog::~CollectiveWatchdog() {
  if (!mpi_running()) return;
  for (auto& pending : pending_sends_) {
    if (pending.request != MPI_REQUEST_NULL) MPI_Request_free(&pending.request);
  }
  if (side_comm_ != MPI_COMM_NULL) MPI_Comm_free(&side_comm_);
}

CollectiveId CollectiveWatchdog::begin(CollectiveKind kind, int64_t bytes) {
  return CollectiveId{++started_, kind, bytes};
}

void CollectiveWatchdog::wait(const CollectiveId& id, const std::function<bool()>& is_complete,
                              const std::function<void()>& before_abort) {
  if (is_complete()) return;
  const Clock::time_point start = Clock::now();
  struct Waiting {  // waiting_ names `id` only while inside this call, exceptions included
    CollectiveId& slot;
    ~Waiting() { slot = CollectiveId{}; }
  } waiting{waiting_};
  waiting_ = id;

  while (seconds_since(start) < kSpinSeconds) {
    if (is_complete()) return;
  }
  auto pause = kFirstPause;
  while (!is_complete()) {
    answer_queries();
    const double waited = seconds_since(start);
    if (waited >= timeout_seconds_) report_and_abort(id, waited, before_abort);
    std::this_thread::sleep_for(pause);
    pause = std::min(pause * 2, kLongestPause);
  }
}

CollectiveWatchdog::Message CollectiveWatchdog::progress_message() const {
  return Message{started_, waiting_.sequence, static_cast<int64_t>(waiting_.kind), waiting_.bytes};
}

void CollectiveWatchdog::send(int peer, int tag, const Message& message) {
  pending_sends_.remove_if([](PendingSend& pending) {
    int done = 0;
    MPI_Test(&pending.request, &done, MPI_STATUS_IGNORE);
    return done != 0;
  });
  PendingSend& pending = pending_sends_.emplace_back();
  pending.message = message;
  WINNOW_MPI_CHECK(
      MPI_Isend(pending.message.data(), 4, MPI_INT64_T, peer, tag, side_comm_, &pending.request));
}

void CollectiveWatchdog::answer_queries() {
  while (true) {
    int arrived = 0;
    MPI_Status status;
    WINNOW_MPI_CHECK(MPI_Iprobe(MPI_ANY_SOURCE, kQueryTag, side_comm_, &arrived, &status));
    if (!arrived) return;
    Message query{};
    WINNOW_MPI_CHECK(MPI_Recv(query.data(), 4, MPI_INT64_T, status.MPI_SOURCE, kQueryTag,
                              side_comm_, MPI_STATUS_IGNORE));
    send(status.MPI_SOURCE, kAnswerTag, progress_message());
    asked_by_ = status.MPI_SOURCE;
  }
}

void CollectiveWatchdog::report_and_abort(const CollectiveId& id, double waited_seconds,
                                          const std::function<void()>& before_abort) {
  std::vector<PeerProgress> peers;
  bool yield_to_peer = asked_by_ >= 0;
  if (!yield_to_peer) {
    try {
      for (int peer = 0; peer < world_size_; ++peer) {
        if (peer == rank_) continue;
        peers.push_back(PeerProgress{peer, false, 0, {}});
        send(peer, kQueryTag, progress_message());
      }
      const Clock::time_point asked = Clock::now();
      size_t answers = 0;
      while (answers < peers.size() && seconds_since(asked) < kAnswerWindowSeconds) {
        answer_queries();  // a peer that timed out at the same moment asks us too
        if (asked_by_ >= 0 && asked_by_ < rank_) {  // two reporters: the lower rank goes on
          yield_to_peer = true;
          break;
        }
        int arrived = 0;
        MPI_Status status;
        WINNOW_MPI_CHECK(MPI_Iprobe(MPI_ANY_SOURCE, kAnswerTag, side_comm_, &arrived, &status));
        if (!arrived) {
          std::this_thread::sleep_for(std::chrono::milliseconds(1));
          continue;
        }
        Message answer{};
        WINNOW_MPI_CHECK(MPI_Recv(answer.data(), 4, MPI_INT64_T, status.MPI_SOURCE, kAnswerTag,
                                  side_comm_, MPI_STATUS_IGNORE));
        for (auto& peer : peers) {
          if (peer.rank != status.MPI_SOURCE || peer.answered) continue;
          peer.answered = true;
          peer.started = answer[0];
          peer.waiting = CollectiveId{answer[1], static_cast<CollectiveKind>(answer[2]), answer[3]};
          ++answers;
        }
      }
    } catch (const std::exception& error) {
      const auto* torch_error = dynamic_cast<const c10::Error*>(&error);  // no C++ backtrace
      std::fprintf(stderr, "collective watchdog: asking the peers failed: %s\n",
                   torch_error ? torch_error->what_without_backtrace() : error.what());
    }
  }

  std::string report;
  if (yield_to_peer) {
    // The peer's report is on its way and its MPI_Abort ends this process too; keep answering.
    const Clock::time_point yielded = Clock::now();
    while (seconds_since(yielded) < kReporterGraceSeconds) {
      try {
        answer_queries();
      } catch (const std::exception&) {
        break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    std::ostringstream text;
    text << std::fixed << std::setprecision(1) << "collective timeout on rank " << rank_
         << ": collective " << describe(id) << " has waited " << waited_seconds << " s; rank "
         << asked_by_ << " was reporting which ranks are missing but has not ended the job. "
         << "Ending it (MPI_Abort, exit code " << kCollectiveTimeoutExitCode << ").";
    report = text.str();
  } else {
    report = timeout_report(rank_, world_size_, id, waited_seconds, timeout_seconds_, peers);
  }
  std::fprintf(stderr, "\nwinnow: %s\n", report.c_str());
  std::fflush(nullptr);
  if (before_abort) before_abort();
  MPI_Abort(side_comm_, kCollectiveTimeoutExitCode);
  std::_Exit(kCollectiveTimeoutExitCode);  // MPI_Abort does not return
}

}  // namespace winnow::dist
