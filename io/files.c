/*
 * files.c — checks on pcn_dist's files before they are read or written (pcn_io.h, "File checks").
 *
 * The one-writer lock: PATH.lock, locked with fcntl(F_SETLK) by rank 0 for the whole run.
 * The kernel drops the lock when the process dies, so a run killed with SIGKILL leaves at
 * most an unlocked file that the next run simply takes. Taking it: open (creating), lock,
 * then check that PATH.lock still names the file we locked (a releasing run unlinks it
 * while holding the lock; a run that opened the old inode just before would otherwise hold
 * a lock nobody else can see) and retry if not. The owner line written into the file is
 * what the refused run prints. Where the file system has no locks (ENOLCK, EOPNOTSUPP),
 * the run goes on without one.
 *
 * A checkpoint's family: PATH and the files a write with --keep-checkpoints K keeps beside
 * it, PATH.1 (the previous) to PATH.{K-1}; the program asks whether any exists before a
 * run that would replace or rotate them, and whether a --resume file is one of them.
 */
#define _DEFAULT_SOURCE // gethostname
#include "pcn_io.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>


// ----------------------------------------------------------------------------------------
// Kinds and identities of files
// ----------------------------------------------------------------------------------------

static const char *kind_of(mode_t m) {
    return S_ISDIR(m) ? "a directory" : S_ISFIFO(m) ? "a FIFO" : S_ISCHR(m) ? "a character device"
         : S_ISBLK(m) ? "a block device" : S_ISSOCK(m) ? "a socket" : "not a regular file";
}

pcn_status pcn_io_file_regular(const char *path, const char *what) {
    struct stat sb;
    if (!path || !path[0] || stat(path, &sb) != 0) return PCN_OK;
    if (S_ISREG(sb.st_mode)) return PCN_OK;
    return pcn_set_error(PCN_EINVAL, "%s %s is %s; it must be a regular file", what, path,
                         kind_of(sb.st_mode));
}

// The file's own device and inode, or its folder's (with *name its last component) when it
// does not exist. Returns false when neither can be found.
static bool identity(const char *path, struct stat *sb, bool *exists, char *name, size_t len) {
    *exists = stat(path, sb) == 0;
    char a[4096], b[4096];
    snprintf(a, sizeof a, "%s", path), snprintf(b, sizeof b, "%s", path);
    snprintf(name, len, "%s", basename(a));
    return *exists || stat(dirname(b), sb) == 0;
}

bool pcn_io_file_same(const char *a, const char *b) {
    if (!a || !b || !a[0] || !b[0]) return false;
    struct stat sa, sb;
    bool ea, eb;
    char na[256], nb[256];
    if (!identity(a, &sa, &ea, na, sizeof na) || !identity(b, &sb, &eb, nb, sizeof nb))
        return false;
    if (ea != eb || sa.st_dev != sb.st_dev || sa.st_ino != sb.st_ino) return false;
    return ea || strcmp(na, nb) == 0;
}

// ----------------------------------------------------------------------------------------
// A checkpoint's family: PATH and the kept files PATH.1, PATH.2, ... (publish() in
// io/checkpoint.c rotates them)
// ----------------------------------------------------------------------------------------

// name = path (k = 0) or path.k; false when it does not fit.
static bool kept_name(char *name, size_t len, const char *path, int k) {
    int n = k == 0 ? snprintf(name, len, "%s", path) : snprintf(name, len, "%s.%d", path, k);
    return n >= 0 && (size_t)n < len;
}

bool pcn_io_ckpt_exists(const char *path, int keep, char *found, size_t len) {
    struct stat sb;
    char name[4096];
    for (int k = 0; path && path[0] && k < (keep > 1 ? keep : 1); k++)
        if (kept_name(name, sizeof name, path, k) && lstat(name, &sb) == 0) {
            snprintf(found, len, "%s", name); // a link counts: the write would replace it
            return true;
        }
    return false;
}

bool pcn_io_ckpt_of(const char *path, const char *file, int max_keep) {
    struct stat sb;
    if (!path || !path[0] || !file || !file[0] || stat(file, &sb) != 0) return false;
    char name[4096];
    for (int k = 0; k <= max_keep; k++)
        if (kept_name(name, sizeof name, path, k) && pcn_io_file_same(name, file)) return true;
    return false;
}

// ----------------------------------------------------------------------------------------
// The one-writer lock
// ----------------------------------------------------------------------------------------

struct pcn_io_lock {
    int fd;          // -1: the file system has no locks; nothing to release but the name
    char path[4104]; // PATH.lock
};

// Who holds the lock, as its owner wrote it (one line), or a plain "another process".
static void owner_of(int fd, char *out, size_t len) {
    ssize_t n = pread(fd, out, len - 1, 0);
    out[n > 0 ? n : 0] = '\0';
    out[strcspn(out, "\n")] = '\0';
    if (!out[0]) snprintf(out, len, "another process");
}

static void write_owner(int fd) {
    char host[256] = "?", when[64] = "", line[400];
    gethostname(host, sizeof host - 1);
    time_t now = time(NULL);
    struct tm tm;
    strftime(when, sizeof when, "%Y-%m-%d %H:%M:%S UTC", gmtime_r(&now, &tm));
    int n = snprintf(line, sizeof line, "pid %ld on host %s since %s\n", (long)getpid(), host,
                     when);
    if (ftruncate(fd, 0) != 0 || pwrite(fd, line, (size_t)n, 0) != n) { /* only a hint */ }
}

// Rank 0: opens and locks lk->path. Returns PCN_OK with lk->fd set (or -1 where the file
// system cannot lock), or an error naming the holder.
static pcn_status lock_file(pcn_io_lock *lk, const char *path, const char *what) {
    for (int attempt = 0; attempt < 10; attempt++) {
        int fd = open(lk->path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
        if (fd < 0)
            return pcn_set_error(PCN_EIO, "%s %s: cannot create the lock file %s: %s", what, path,
                                 lk->path, strerror(errno));
        struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET};
        if (fcntl(fd, F_SETLK, &fl) != 0) {
            int e = errno;
            if (e == ENOLCK || e == EOPNOTSUPP || e == ENOSYS) {
                close(fd);
                lk->fd = -1; // no locks here: go on without one
                return PCN_OK;
            }
            char owner[300];
            owner_of(fd, owner, sizeof owner);
            close(fd);
            return pcn_set_error(PCN_EIO, "%s %s is being written by another run (%s; lock "
                                 "file %s); two runs must not share an output file", what,
                                 path, owner, lk->path);
        }
        struct stat held, named;
        if (fstat(fd, &held) == 0 && stat(lk->path, &named) == 0 && held.st_dev == named.st_dev &&
            held.st_ino == named.st_ino) {
            lk->fd = fd;
            write_owner(fd);
            return PCN_OK;
        }
        close(fd); // the file we locked was just released and unlinked: take the new one
    }
    return pcn_set_error(PCN_EIO, "%s %s: cannot take the lock file %s (it keeps changing)",
                         what, path, lk->path);
}

pcn_status pcn_io_lock_take(pcn_comm *c, const char *path, const char *what, pcn_io_lock **out) {
    *out = NULL;
    pcn_status st = PCN_OK;
    pcn_io_lock *lk = NULL;
    if (pcn_dist_rank(c) == 0) {
        lk = calloc(1, sizeof *lk);
        if (!lk) st = pcn_set_error(PCN_ENOMEM, "out of memory");
        else snprintf(lk->path, sizeof lk->path, "%s.lock", path);
        if (st == PCN_OK) st = lock_file(lk, path, what);
        if (st != PCN_OK) free(lk), lk = NULL;
    }
    st = pcn_dist_agree(c, st);
    if (st != PCN_OK) {
        pcn_io_lock_release(lk); // rank 0 locked, another rank failed to agree
        return st;
    }
    *out = lk;
    return PCN_OK;
}

void pcn_io_lock_release(pcn_io_lock *lock) {
    if (!lock) return;
    if (lock->fd >= 0) {
        unlink(lock->path); // while still holding it: see the file's opening comment
        close(lock->fd);
    }
    free(lock);
}
