/*
 * pcn_files.h — what pcn_dist checks about its files before it reads or writes them: an input
 * must be a regular file (a FIFO or a device would block or stream forever), an output must
 * not be the same file as an input (compared by device and inode, not by spelling), and a
 * checkpoint has one writer at a time (a lock file beside it, held for the whole run).
 *
 * Conventions: as in pcn.h; Local unless the comment says Collective.
 */
#ifndef PCN_FILES_H
#define PCN_FILES_H

#include <stdbool.h>

#include "pcn.h"
#include "pcn_dist.h"

#ifdef __cplusplus
extern "C" {
#endif

// PCN_OK when path does not exist (the reader says so in its own words) or is a regular
// file; otherwise an error naming the option (what, e.g. "--data"), the path and its kind.
// Local.
pcn_status pcn_io_file_regular(const char *path, const char *what);

// Whether a and b name the same file: the same device and inode when both exist (links and
// other spellings included), the same folder and name when neither does. Local.
bool pcn_io_file_same(const char *a, const char *b);

// A held lock on an output file (PATH.lock beside it).
typedef struct pcn_io_lock pcn_io_lock;

// Takes the lock of the output path for this run: rank 0 creates PATH.lock, locks it with
// fcntl (released by the kernel if the process dies, so a killed run leaves no stale lock)
// and writes its owner (host, pid, start time) into it. When another live process holds it,
// every rank gets an error that names that writer. *out is the handle on rank 0 and NULL
// elsewhere. Collective; every rank returns the same status.
pcn_status pcn_io_lock_take(pcn_comm *c, const char *path, const char *what, pcn_io_lock **out);

// Removes the lock file and releases the lock. NULL is fine. Local.
void pcn_io_lock_release(pcn_io_lock *lock);

#ifdef __cplusplus
}
#endif

#endif // PCN_FILES_H
