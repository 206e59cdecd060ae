#include "common/worker_pool.h"

#include <atomic>
#include <thread>

#include <catch2/catch.hpp>

#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"

namespace cascade {
namespace {

TEST_CASE("worker pool runs every scheduled task") {
  WorkerPool pool({.name = "test", .threads = 3, .queue_capacity = 100});
  std::atomic<int> ran{0};
  absl::Notification all_done;
  for (int i = 0; i < 50; ++i) {
    REQUIRE(pool.TrySchedule([&] {
      if (ran.fetch_add(1) + 1 == 50) all_done.Notify();
    }).ok());
  }
  REQUIRE(all_done.WaitForNotificationWithTimeout(absl::Seconds(10)));
  CHECK(ran.load() == 50);
}

TEST_CASE("worker pool refuses work with RESOURCE_EXHAUSTED when its queue is full") {
  WorkerPool pool({.name = "full", .threads = 1, .queue_capacity = 2});
  absl::Notification release;
  absl::Notification started;
  REQUIRE(pool.TrySchedule([&] {
    started.Notify();
    release.WaitForNotification();
  }).ok());
  REQUIRE(started.WaitForNotificationWithTimeout(absl::Seconds(10)));
  CHECK(pool.TrySchedule([] {}).ok());
  CHECK(pool.TrySchedule([] {}).ok());
  absl::Status third = pool.TrySchedule([] {});
  CHECK(third.code() == absl::StatusCode::kResourceExhausted);
  CHECK(pool.queued() == 2);
  release.Notify();
}

TEST_CASE("a worker stuck past its deadline is replaced so the pool keeps serving") {
  WorkerPool pool({.name = "stuck", .threads = 1, .queue_capacity = 10,
                   .overdue_grace = absl::Milliseconds(50), .max_replacements = 2});
  auto release = std::make_shared<absl::Notification>();
  // A task that ignores its deadline entirely.
  REQUIRE(pool.TrySchedule([release] { release->WaitForNotification(); },
                           absl::Milliseconds(10)).ok());
  absl::Notification second_ran;
  REQUIRE(pool.TrySchedule([&] { second_ran.Notify(); }).ok());
  CHECK(second_ran.WaitForNotificationWithTimeout(absl::Seconds(5)));
  CHECK(pool.replaced_total() == 1);
  release->Notify();
}

}  // namespace
}  // namespace cascade
