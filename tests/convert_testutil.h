/*
 * convert_testutil.h — what the converter tests (test_convert, test_convert_arrays) share:
 * a private scratch folder, writing input files, running the program, and the check that a
 * refused conversion left one line, no output and no temporary file.
 */
#ifndef PCN_CONVERT_TESTUTIL_H
#define PCN_CONVERT_TESTUTIL_H

#include <stdbool.h>
#include <stddef.h>

#include "pcn.h"

// The scratch folder (conv_setup makes it).
extern char conv_tmpdir[256];

// Makes $TMPDIR/<prefix>_XXXXXX (or under /tmp); false after printing why not.
bool conv_setup(const char *prefix);
// Removes the folder when every check passed; otherwise says where it was kept. Returns
// tu_finish(name).
int conv_finish(const char *name);
// conv_tmpdir/name, in storage that lives as long as the test (256 slots).
char *conv_path(const char *name);
// Writes n bytes to path, gzipped when gz (a failed write is a check failure).
void conv_write(const char *path, const void *data, size_t n, bool gz);
// No file of the scratch folder holds ".tmp." (no temporary file left behind).
bool conv_no_temp_files(void);
// A converter's status as 0 / -1, with its message (or "") in err.
int conv_rc(pcn_status st, char *err, size_t len);
// rc must be -1, err must hold needle1 (and needle2 unless NULL) and be one line, and
// neither out nor a temporary file may exist.
void conv_expect_refusal(const char *what, int rc, const char *err, const char *out,
                         const char *needle1, const char *needle2);
// Runs a shell command; its exit status, stdout and stderr together in out.
int conv_run(const char *cmd, char *out, size_t size);

#endif // PCN_CONVERT_TESTUTIL_H
