/*
 * h5util.h — the HDF5 checking macro and small attribute helpers shared by io/ (private).
 *
 * PCN_H5_TRY(call) runs an HDF5 call; on a negative result it records "call at file:line
 * in function: HDF5's own message" as a PCN_EIO error and jumps to the function's `fail`
 * label, so the caller can clean up (close handles, remove temporary files) and agree on
 * the error with the other ranks. Bad files are user errors: io/ never aborts on them.
 */
#ifndef PCN_H5UTIL_H
#define PCN_H5UTIL_H

#include <stdbool.h>
#include <stddef.h>

#include <hdf5.h>

#include "pcn_impl.h"

// The HDF5 error stack as "the call's description; the innermost cause", then clears it:
// the one place io/ reads HDF5's errors.
void pcn_h5_describe(char *buf, size_t size);
// Records "call failed at file:line in func: <pcn_h5_describe>" as a PCN_EIO error.
void pcn_h5_fail(const char *call, const char *file, int line, const char *func);

#define PCN_H5_TRY(call)                                                                    \
    do {                                                                                    \
        if ((call) < 0) {                                                                   \
            pcn_h5_fail(#call, __FILE__, __LINE__, __func__);                               \
            goto fail;                                                                      \
        }                                                                                   \
    } while (0)

// The process's HDF5 lock: Debian's parallel HDF5 is not thread-safe, so the stream
// prefetch thread and the main thread's checkpoint I/O take turns. Not recursive.
void pcn_h5_lock(void);
void pcn_h5_unlock(void);

// Whether path is an HDF5 file: > 0 yes, 0 no, < 0 unreadable (any HDF5 version).
htri_t pcn_h5_is_hdf5(const char *path);

// Attribute helpers: 0 on success, negative on failure (HDF5 convention).
herr_t pcn_h5_attr_write(hid_t obj, const char *name, hid_t type, int n, const void *v);
herr_t pcn_h5_attr_write_str(hid_t obj, const char *name, const char *s);
herr_t pcn_h5_attr_read(hid_t obj, const char *name, hid_t type, int n, void *v);
// Reads a string attribute (fixed or variable length) into buf; negative on failure.
herr_t pcn_h5_attr_read_str(hid_t obj, const char *name, char *buf, size_t size);

#endif // PCN_H5UTIL_H
