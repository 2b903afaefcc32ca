/*
 * h5util.h — the one HDF5 check and the one attribute helper set of io/ (private: included
 * by the files of io/ only).
 *
 * PCN_H5_CHECK(call, path, what, on_fail) runs an HDF5 call; on a negative result it
 * records the failure as a PCN_EIO error and runs on_fail (a `goto`). Without a path the
 * message is "call failed at file:line in function: HDF5's own message"; with one it is
 * "PATH: what (call failed at file:line: HDF5's own message)", the data set reader's form.
 * PCN_H5_TRY(call) is the plain form that jumps to the function's `fail` label, so the
 * caller can clean up (close handles, remove temporary files) and agree on the error with
 * the other ranks. Bad files are user errors: io/ never aborts on them.
 */
#ifndef PCN_H5UTIL_H
#define PCN_H5UTIL_H

#include <stdbool.h>
#include <stddef.h>

#include <hdf5.h>

#include "pcn.h"

// The HDF5 error stack as "the call's description; the innermost cause", then clears it:
// the one place io/ reads HDF5's errors.
void pcn_h5_describe(char *buf, size_t size);
// Records "PATH: message" as the error and returns status.
pcn_status pcn_h5_path_error(const char *path, pcn_status status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

// Records the failure of call as a PCN_EIO error (see above; path and what may be NULL) and
// returns PCN_EIO.
pcn_status pcn_h5_fail(const char *call, const char *file, int line, const char *func,
                       const char *path, const char *what);

#define PCN_H5_CHECK(call, path, what, on_fail)                                             \
    do {                                                                                    \
        if ((call) < 0) {                                                                   \
            pcn_h5_fail(#call, __FILE__, __LINE__, __func__, (path), (what));               \
            on_fail;                                                                        \
        }                                                                                   \
    } while (0)

#define PCN_H5_TRY(call) PCN_H5_CHECK(call, NULL, NULL, goto fail)

// A check on a file's contents that failed: records "PATH: message" with status in the
// caller's `st` and jumps to its `done` label.
#define PCN_H5_BAD(path, status, ...)                                                       \
    do {                                                                                    \
        st = pcn_h5_path_error((path), (status), __VA_ARGS__);                              \
        goto done;                                                                          \
    } while (0)

// Closes any HDF5 handle by its kind and sets it to H5I_INVALID_HID; negative ids are left.
void pcn_h5_close(hid_t *id);

// The process's HDF5 lock: Debian's parallel HDF5 is not thread-safe, so the stream
// prefetch thread and the main thread's checkpoint I/O take turns. Not recursive.
void pcn_h5_lock(void);
void pcn_h5_unlock(void);

// Whether path is an HDF5 file: > 0 yes, 0 no, < 0 unreadable (any HDF5 version).
htri_t pcn_h5_is_hdf5(const char *path);

// ----------------------------------------------------------------------------------------
// Attributes
// ----------------------------------------------------------------------------------------
//
// Writers and the plain readers return 0 on success, negative on failure (HDF5
// convention), leaving HDF5's error stack for PCN_H5_TRY to report. n == 1 writes a
// scalar, any other n a 1-D array. Every close is checked (a close writes what HDF5
// cached: a full disk shows there).

// The value(s) v of memory type mtype, stored as file type ftype.
herr_t pcn_h5_attr_write_as(hid_t obj, const char *name, hid_t ftype, hid_t mtype, int n,
                            const void *v);
// As pcn_h5_attr_write_as with ftype = mtype = type.
herr_t pcn_h5_attr_write(hid_t obj, const char *name, hid_t type, int n, const void *v);
// A fixed-length, NUL-terminated string.
herr_t pcn_h5_attr_write_str(hid_t obj, const char *name, const char *s);
// Reads exactly n values (the attribute must hold n) as type.
herr_t pcn_h5_attr_read(hid_t obj, const char *name, hid_t type, int n, void *v);
// Reads a string attribute (fixed or variable length) into buf; negative on failure.
herr_t pcn_h5_attr_read_str(hid_t obj, const char *name, char *buf, size_t size);

// The checked readers of a file being validated: a missing attribute sets *present =
// false and is no error; anything else wrong (an HDF5 failure, more than one value, the
// wrong type class) returns an error "PATH: ... attribute HOLDER@NAME ..." (holder names
// obj in messages, e.g. "/" or "/train/x").
typedef struct {
    const char *path;   // the file, for messages
    hid_t obj;          // the object holding the attribute
    const char *holder; // its name in messages
} pcn_h5_attr_at;

// A string, fixed- or variable-length, into out (truncated to len - 1 chars).
pcn_status pcn_h5_attr_get_str(const pcn_h5_attr_at *at, const char *name, char *out,
                               size_t len, bool *present);
// A number as a double; with want_int it must have an integer type.
pcn_status pcn_h5_attr_get_num(const pcn_h5_attr_at *at, const char *name, bool want_int,
                               double *out, bool *present);
// The file's type t as a name for messages ("uint8", "float32", "string", ...).
void pcn_h5_type_name(hid_t t, char *buf, size_t len);

#endif // PCN_H5UTIL_H
