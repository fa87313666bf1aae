// CollectiveWatchdog: ends the job when a collective waits past a timeout, naming the ranks that
// have not reached it.
#pragma once

#include <mpi.h>

#include <array>
#include <cstdint>
#include <functional>
#include <list>
#include <string>
#include <vector>

namespace winnow::dist {

enum class CollectiveKind : int64_t {
  kAllReduce = 0,
  kBroadcast = 1,
  kAllGather = 2,
  kBarrier = 3
};

// "all_reduce", "broadcast", "all_gather", "barrier".
const char* collective_kind_name(CollectiveKind kind);

// One collective as the ranks number it. Every rank counts the collectives it starts on one
// communicator, so while the ranks are in lockstep, #k is the same call on every rank.
struct CollectiveId {
  int64_t sequence = 0;  // 1 for the first collective; 0 = none
  CollectiveKind kind = CollectiveKind::kBarrier;
  int64_t bytes = 0;  // this rank's payload
};

// "#7 all_reduce (4 bytes)".
std::string describe(const CollectiveId& id);

// What a peer told the rank that timed out.
struct PeerProgress {
  int rank = 0;
  bool answered = false;
  int64_t started = 0;   // sequence number of the last collective it started
  CollectiveId waiting;  // the collective it is waiting in (sequence 0: none)
};

// The ranks that have not reached collective #`sequence`: peers that did not answer (busy outside
// any collective, stuck in a call the watchdog does not cover, or dead) and peers that answered
// with a smaller `started`. Sorted.
std::vector<int> ranks_missing(int64_t sequence, const std::vector<PeerProgress>& peers);

// The text printed before the job ends: the collective (op, sequence number, bytes), how long it
// waited, the missing ranks, and what each peer said (mismatched collectives are called out).
std::string timeout_report(int rank, int world_size, const CollectiveId& id, double waited_seconds,
                           double timeout_seconds, const std::vector<PeerProgress>& peers);

// The exit code of a job ended by a collective timeout (ETIME on Linux), distinct from the
// CLI's 1 (error) and 2 (configuration) and from `timeout`'s 124.
constexpr int kCollectiveTimeoutExitCode = 62;

// Used by the mpi and nccl backends around every collective they start:
//
//   const CollectiveId id = watchdog.begin(CollectiveKind::kAllReduce, bytes);
//   ... start a nonblocking collective ...
//   watchdog.wait(id, [&] { return request_is_complete(); });
//
// wait() polls (spinning for the first 2 ms, as blocking MPI calls do, then sleeping with a
// backoff up to 1 ms), so a healthy collective costs one extra test. Nothing is sent while ranks
// are in step. When one rank's wait passes the timeout, it asks every peer over a private
// duplicate of the communicator where it is; peers waiting in a collective answer at once from
// their own poll loop, peers that are not (the late or hung ones) do not. After at most half
// a second it prints timeout_report to stderr, runs `before_abort` (the nccl backend aborts its
// NCCL communicator there), and calls MPI_Abort with kCollectiveTimeoutExitCode. Only one rank
// reports: a rank that was asked (or, when two time out together, the higher rank) keeps
// answering 2.5 s longer so the report is not cut off by a second abort, and only if the job is
// still alive then prints one line and aborts.
//
// This is the one place where library code ends the job: a started MPI collective cannot be
// cancelled, so throwing would leave every rank blocked. All calls must come from the thread that
// uses the communicator.
class CollectiveWatchdog {
 public:
  // Duplicates `comm` (collective over it) for the watchdog's messages. `timeout_seconds` > 0.
  CollectiveWatchdog(MPI_Comm comm, double timeout_seconds);
  ~CollectiveWatchdog();
  CollectiveWatchdog(const CollectiveWatchdog&) = delete;
  CollectiveWatchdog& operator=(const CollectiveWatchdog&) = delete;

  // Numbers the collective this rank is starting.
  CollectiveId begin(CollectiveKind kind, int64_t bytes);
  // Returns once `is_complete` returns true (exceptions from it pass through); past the timeout,
  // reports and ends the job.
  void wait(const CollectiveId& id, const std::function<bool()>& is_complete,
            const std::function<void()>& before_abort = {});

  double timeout_seconds() const { return timeout_seconds_; }

 private:
  using Message = std::array<int64_t, 4>;  // started, waiting sequence, kind, bytes
  struct PendingSend {
    Message message{};
    MPI_Request request = MPI_REQUEST_NULL;
  };

  Message progress_message() const;
  void send(int peer, int tag, const Message& message);
  void answer_queries();
  [[noreturn]] void report_and_abort(const CollectiveId& id, double waited_seconds,
                                     const std::function<void()>& before_abort);

  MPI_Comm side_comm_ = MPI_COMM_NULL;
  int rank_ = 0;
  int world_size_ = 1;
  double timeout_seconds_;
  int64_t started_ = 0;
  CollectiveId waiting_;
  int asked_by_ = -1;                     // the peer whose timeout report asked us, if any
  std::list<PendingSend> pending_sends_;  // stable addresses while MPI owns the buffers
};

}  // namespace winnow::dist
