/*
 * convert_testutil.c — the converter tests' shared helpers (convert_testutil.h).
 */
#define _POSIX_C_SOURCE 200809L
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <zlib.h>

#include "convert_testutil.h"
#include "testutil.h"

char conv_tmpdir[256];

bool conv_setup(const char *prefix) {
    const char *base = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
    snprintf(conv_tmpdir, sizeof conv_tmpdir, "%s/%s_XXXXXX", base, prefix);
    if (mkdtemp(conv_tmpdir)) return true;
    perror("mkdtemp");
    return false;
}

int conv_finish(const char *name) {
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", conv_tmpdir);
    if (!tu_failures && system(cmd) != 0) fprintf(stderr, "could not remove %s\n", conv_tmpdir);
    if (tu_failures) fprintf(stderr, "inputs and outputs kept in %s\n", conv_tmpdir);
    return tu_finish(name);
}

char *conv_path(const char *name) {
    static char slots[256][512];
    static int k;
    if (k == 256) {
        fprintf(stderr, "conv_path: out of slots\n");
        exit(1);
    }
    snprintf(slots[k], 512, "%s/%s", conv_tmpdir, name);
    return slots[k++];
}

void conv_write(const char *path, const void *data, size_t n, bool gz) {
    if (gz) {
        gzFile f = gzopen(path, "wb");
        TU_CHECK(f && gzwrite(f, data, (unsigned)n) == (int)n, "gzip write %s", path);
        if (f) gzclose(f);
        return;
    }
    FILE *fp = fopen(path, "wb");
    TU_CHECK(fp && fwrite(data, 1, n, fp) == n, "write %s", path);
    if (fp) fclose(fp);
}

bool conv_no_temp_files(void) {
    DIR *d = opendir(conv_tmpdir);
    struct dirent *de;
    bool clean = true;
    while (d && (de = readdir(d)))
        if (strstr(de->d_name, ".tmp.")) clean = false;
    if (d) closedir(d);
    return clean;
}

int conv_rc(pcn_status st, char *err, size_t len) {
    snprintf(err, len, "%s", st == PCN_OK ? "" : pcn_last_error());
    return st == PCN_OK ? 0 : -1;
}

void conv_expect_refusal(const char *what, int rc, const char *err, const char *out,
                         const char *needle1, const char *needle2) {
    TU_CHECK(rc == -1, "%s: rc %d, want -1", what, rc);
    TU_CHECK(strstr(err, needle1) != NULL, "%s: message '%s' lacks '%s'", what, err, needle1);
    TU_CHECK(!needle2 || strstr(err, needle2) != NULL, "%s: message '%s' lacks '%s'", what, err,
             needle2);
    TU_CHECK(strchr(err, '\n') == NULL, "%s: message is not one line", what);
    TU_CHECK(access(out, F_OK) != 0, "%s: output %s exists", what, out);
    TU_CHECK(conv_no_temp_files(), "%s: temporary file left behind", what);
    printf("  refused %-28s %s\n", what, err);
}

int conv_run(const char *cmd, char *out, size_t size) {
    char full[2048], log[600];
    snprintf(log, sizeof log, "%s/cmd.log", conv_tmpdir);
    snprintf(full, sizeof full, "%s > '%s' 2>&1", cmd, log);
    int st = system(full);
    FILE *fp = fopen(log, "r");
    size_t n = fp ? fread(out, 1, size - 1, fp) : 0;
    out[n] = 0;
    if (fp) fclose(fp);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}
