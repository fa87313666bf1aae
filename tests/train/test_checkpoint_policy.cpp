// CheckpointPolicy: which reason (if any) a checkpoint gets after which step.
#include "train/checkpoint_policy.h"

#include <gtest/gtest.h>

#include <csignal>
#include <string>
#include <vector>

namespace winnow::train {
namespace {

CheckpointOptions every(int64_t steps, double minutes = 0.0, bool at_end = true) {
  CheckpointOptions options;
  options.dir = "checkpoints";
  options.every = steps;
  options.minutes = minutes;
  options.at_end = at_end;
  return options;
}

// The reasons after steps 1..end_step with no signal and no timed save ("" where none).
std::vector<std::string> reasons(const CheckpointPolicy& policy, int64_t end_step) {
  std::vector<std::string> out;
  for (int64_t step = 1; step <= end_step; ++step) out.push_back(policy.reason(step, 0, false));
  return out;
}

TEST(CheckpointPolicy, IntervalAndEnd) {
  const CheckpointPolicy policy(every(3), /*total_steps=*/7, /*end_step=*/7);
  EXPECT_EQ(reasons(policy, 7),
            (std::vector<std::string>{"", "", "interval", "", "", "interval", "end"}));
  EXPECT_FALSE(policy.stops(6, 0));
  EXPECT_TRUE(policy.stops(7, 0));
}

TEST(CheckpointPolicy, EndWinsOverIntervalAndCanBeOff) {
  EXPECT_EQ(CheckpointPolicy(every(3), 6, 6).reason(6, 0, false), "end");
  // checkpoint.at_end=false: the last step saves only when another reason applies.
  const CheckpointPolicy no_end(every(3, 0.0, /*at_end=*/false), 7, 7);
  EXPECT_EQ(no_end.reason(7, 0, false), "");
  EXPECT_EQ(CheckpointPolicy(every(7, 0.0, false), 7, 7).reason(7, 0, false), "interval");
}

TEST(CheckpointPolicy, StopAtBeforeTheLastStep) {
  const CheckpointPolicy policy(every(0), /*total_steps=*/10, /*end_step=*/4);
  EXPECT_EQ(reasons(policy, 4), (std::vector<std::string>{"", "", "", "stop_at"}));
  EXPECT_TRUE(policy.stops(4, 0));
}

TEST(CheckpointPolicy, SignalWinsAndStops) {
  const CheckpointPolicy policy(every(2), 10, 10);
  EXPECT_EQ(policy.reason(2, SIGTERM, true), "signal SIGTERM");
  EXPECT_EQ(policy.reason(3, SIGUSR1, false), "signal SIGUSR1");
  EXPECT_EQ(policy.reason(10, SIGINT, false), "signal " + std::to_string(SIGINT));
  EXPECT_TRUE(policy.stops(3, SIGUSR1));
}

TEST(CheckpointPolicy, TimeIsTheLastReason) {
  const CheckpointPolicy policy(every(4, /*minutes=*/0.5), 10, 10);
  EXPECT_EQ(policy.reason(3, 0, /*time_due=*/true), "time");
  EXPECT_EQ(policy.reason(4, 0, true), "interval");
  EXPECT_FALSE(policy.time_due_after(29.9));
  EXPECT_TRUE(policy.time_due_after(30.0));
  EXPECT_FALSE(policy.time_due());  // just built: the clock starts now
  EXPECT_FALSE(CheckpointPolicy(every(4, /*minutes=*/0.0), 10, 10).time_due_after(1e9));
}

TEST(CheckpointPolicy, NoDirectoryNoCheckpoints) {
  CheckpointOptions options = every(1, 1.0);
  options.dir.clear();
  const CheckpointPolicy policy(options, 5, 5);
  EXPECT_FALSE(policy.enabled());
  EXPECT_EQ(policy.reason(5, SIGTERM, true), "");
  EXPECT_FALSE(policy.time_due_after(1e9));
  EXPECT_TRUE(policy.stops(2, SIGTERM));  // a signal still stops the run
}

}  // namespace
}  // namespace winnow::train
