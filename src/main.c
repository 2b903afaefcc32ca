/*
 * main.c — the pcn_dist program: train, test, predict and info over MPI ranks. This file
 * dispatches the command and reports; the commands live in cmd_train.c and cmd_eval.c,
 * the settings in settings.c, the device choice in device.c (see program.h).
 *
 * Every rank runs the same sequence of collective steps; every failure goes through
 * pcn_dist_agree, so all ranks stop together and rank 0 prints the one message. Progress
 * and metrics come from rank 0. SIGTERM and SIGUSR1 set a flag (the program's one mutable
 * global); at the next batch boundary the ranks agree on it, write the checkpoint and exit
 * with status 3 (requeue).
 */
#include <math.h>
#include <signal.h>
#include <string.h>

#include "program.h"

static volatile sig_atomic_t stop_signal;

static void on_signal(int sig) { stop_signal = sig; }

bool program_stop_requested(void) { return stop_signal != 0; }

int program_fail(app *a, int status, const char *what) {
    if (pcn_dist_rank(a->comm) == 0)
        fprintf(stderr, "pcn_dist: %s%s%s\n", what ? what : "", what ? ": " : "", pcn_last_error());
    return status;
}

// ----------------------------------------------------------------------------------------
// info
// ----------------------------------------------------------------------------------------

// Describes one file (io/info.c); rank 0 reads and prints, every rank agrees.
static int cmd_info(app *a) {
    const char *pos[2];
    int npos = 0;
    if (settings_load(a, NULL, pos, 2, &npos) != PCN_OK) return program_fail(a, EXIT_USAGE, NULL);
    pcn_status st = npos == 1 ? PCN_OK : pcn_set_error(PCN_EINVAL, "usage: pcn_dist info FILE.h5");
    if (pcn_dist_agree(a->comm, st) != PCN_OK) return program_fail(a, EXIT_USAGE, NULL);
    st = pcn_dist_rank(a->comm) == 0 ? pcn_io_info_print(pos[0], stdout) : PCN_OK;
    st = pcn_dist_agree(a->comm, st);
    return st == PCN_OK ? EXIT_OK : program_fail(a, EXIT_ERROR, NULL);
}

// ----------------------------------------------------------------------------------------

static int dispatch(app *a, const char *cmd) {
    if (!strcmp(cmd, "--version") || !strcmp(cmd, "version")) {
        if (pcn_dist_rank(a->comm) == 0)
            printf("pcn_dist %s (libpcn %s)\n", PCN_VERSION_STRING, pcn_version());
        return EXIT_OK;
    }
    if (!strcmp(cmd, "--help") || !strcmp(cmd, "help") || pcn_cli_given(a->argc, a->argv, "help")) {
        if (pcn_dist_rank(a->comm) == 0) pcn_cli_usage(stdout);
        return EXIT_OK;
    }
    if (!strcmp(cmd, "train")) return cmd_train(a);
    if (!strcmp(cmd, "test")) return cmd_eval(a, false);
    if (!strcmp(cmd, "predict")) return cmd_eval(a, true);
    if (!strcmp(cmd, "info")) return cmd_info(a);
    if (pcn_dist_rank(a->comm) == 0) {
        fprintf(stderr, "pcn_dist: unknown command '%s'\n", cmd);
        pcn_cli_usage(stderr);
    }
    return EXIT_USAGE;
}

int main(int argc, char **argv) {
    // The stop signals are caught from the first moment: mpirun forwards SIGUSR1 to ranks
    // that may still be starting MPI, whose default action would kill them.
    struct sigaction sa = {0};
    sa.sa_handler = on_signal;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGUSR1, &sa, NULL);
    // FUNNELED: only this thread talks to the other ranks; the stream-mode prefetch thread
    // reads with HDF5.
    pcn_comm *comm = pcn_dist_start(&argc, &argv);
    app a = {.comm = comm, .argc = argc, .argv = argv, .test_seconds = NAN};
    pcn_cli_defaults(&a.cli);
    int rc = dispatch(&a, argc > 1 ? argv[1] : "");
    pcn_dist_finish(comm);
    return rc;
}
