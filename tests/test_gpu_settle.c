/*
 * test_gpu_settle.c — the CUDA backend's timed wait (src/gpu/settle.h, the loop that waits
 * for events while NCCL is up and for every non-blocking NCCL call, the communicator's init
 * included), checked on the host on every machine with a fake clock and fake work:
 *   - work that never settles (a peer that never reaches the init) ends the wait once the
 *     timeout has passed, not before and not much after; before settle.h the init blocked
 *     in ncclCommInitRank with no timeout, which this case would have seen as a hang (the
 *     fake work fails the test after 10 times the expected number of polls);
 *   - work that finishes or fails on the k-th poll is seen on exactly that poll;
 *   - work that finishes just as the time runs out counts as done (the state is polled
 *     once more after the last pause before the clock is read);
 *   - the pause between polls is told how many polls were made.
 */
#include <stdio.h>

#include "gpu/settle.h"
#include "testutil.h"

enum { NEVER = -1 };

static double fake_now; // seconds, advanced only by fake_pause
static const double STEP = 1.0 / 1024; // exact in binary, so the deadline is hit exactly
static int last_pause;

static double fake_clock(void) { return fake_now; }
static void fake_pause(int polls) {
    last_pause = polls;
    fake_now += STEP;
}

typedef struct {
    int polls;
    int done_at, fail_at; // the poll that finishes or fails (NEVER: none)
    double done_from;     // or the fake time from which the work is done (< 0: none)
    int cap;              // more polls than this: the wait does not end (the test fails)
} fake_work;

static pcn_settle_state fake_poll(void *ctx) {
    fake_work *w = ctx;
    w->polls++;
    if (w->polls == w->done_at) return PCN_SETTLE_DONE;
    if (w->polls == w->fail_at) return PCN_SETTLE_FAILED;
    if (w->done_from >= 0 && fake_now >= w->done_from) return PCN_SETTLE_DONE;
    if (w->polls > w->cap) return PCN_SETTLE_FAILED; // a guard, checked below
    return PCN_SETTLE_PENDING;
}

static pcn_settle_state settle(fake_work *w, double timeout) {
    fake_now = 100.0;
    last_pause = 0;
    const pcn_settle_wait wait = {fake_poll, w, fake_clock, fake_pause, timeout};
    return pcn_settle(&wait);
}

int main(void) {
    const double timeout = 300.0;
    const int expected = (int)(timeout / STEP) + 2; // polls until the clock is past timeout

    fake_work stuck = {0, NEVER, NEVER, -1.0, 10 * expected};
    const pcn_settle_state s = settle(&stuck, timeout);
    const double waited = fake_now - 100.0;
    printf("never settles: state %d after %d polls, %.4f s of %.0f\n", s, stuck.polls, waited,
           timeout);
    TU_CHECK(stuck.polls <= stuck.cap, "the wait did not end (%d polls)", stuck.polls);
    TU_CHECK(s == PCN_SETTLE_PENDING, "a wait that timed out returns PENDING, got %d", s);
    TU_CHECK(waited > timeout && waited <= timeout + STEP,
             "waited %.6f s for a timeout of %.0f s", waited, timeout);
    TU_CHECK(stuck.polls == expected, "%d polls, expected %d", stuck.polls, expected);
    TU_CHECK(last_pause == stuck.polls - 1, "the last pause was told %d polls after %d polls",
             last_pause, stuck.polls - 1);

    fake_work done = {0, 7, NEVER, -1.0, 1000};
    TU_CHECK(settle(&done, timeout) == PCN_SETTLE_DONE && done.polls == 7 && last_pause == 6,
             "work done on poll 7: %d polls, last pause %d", done.polls, last_pause);

    fake_work failed = {0, NEVER, 3, -1.0, 1000};
    TU_CHECK(settle(&failed, timeout) == PCN_SETTLE_FAILED && failed.polls == 3,
             "work that fails on poll 3: %d polls", failed.polls);

    fake_work first = {0, 1, NEVER, -1.0, 1000};
    TU_CHECK(settle(&first, 0.0) == PCN_SETTLE_DONE && first.polls == 1 && last_pause == 0,
             "work already done is seen on the first poll, without a pause");

    fake_work at_deadline = {0, NEVER, NEVER, 100.0 + 1.0 + STEP, 10 * 1024};
    const pcn_settle_state d = settle(&at_deadline, 1.0);
    TU_CHECK(d == PCN_SETTLE_DONE && at_deadline.polls == 1026,
             "work done as the time runs out (1 s): state %d after %d polls", d,
             at_deadline.polls);
    return tu_finish("test_gpu_settle");
}
