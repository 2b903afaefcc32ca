/*
 * testutil.c — see testutil.h.
 */
#define _POSIX_C_SOURCE 200809L
#include "testutil.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int tu_failures = 0;

#define CLOSE_BODY                                                                          \
    int bad = 0;                                                                            \
    for (size_t i = 0; i < n; i++) {                                                        \
        double g = got[i], r = ref[i];                                                      \
        bool ok = fabs(g - r) <= atol + rtol * fabs(r);                                     \
        if (!(ok && isfinite(g) == isfinite(r))) {                                          \
            if (bad < 5)                                                                    \
                fprintf(stderr, "  mismatch %s[%zu]: got %.9g want %.9g (|diff| %.3g)\n",   \
                        label, i, g, r, fabs(g - r));                                       \
            bad++;                                                                          \
        }                                                                                   \
    }                                                                                       \
    if (bad) fprintf(stderr, "FAIL %s: %d of %zu values differ\n", label, bad, n);         \
    tu_failures += bad;                                                                     \
    return bad;

int tu_close_f(const char *label, const float *got, const float *ref, size_t n, double atol,
               double rtol) {
    CLOSE_BODY
}

int tu_close_d(const char *label, const double *got, const double *ref, size_t n, double atol,
               double rtol) {
    CLOSE_BODY
}

int tu_finish(const char *name) {
    if (tu_failures) {
        printf("%s: FAILED (%d failures)\n", name, tu_failures);
        return 1;
    }
    printf("%s: all checks passed\n", name);
    return 0;
}

// ---- GPU tests without a usable GPU -------------------------------------------------------

int tu_gpu_absent(const char *name) {
    const char *nodes[] = {"/dev/nvidiactl", "/dev/nvidia0"}, *fake = getenv("PCN_TEST_NVIDIA_NODE");
    const char *found = NULL;
    for (int i = 0; i < 2 && !found; i++) {
        const char *node = fake ? fake : nodes[i];
        if (access(node, F_OK) == 0) found = node;
    }
    const char *why = pcn_cuda_unavailable_reason();
    if (!found) {
        printf("%s: no CUDA device (%s): not run\n", name, why ? why : "?");
        return 77;
    }
    printf("FAIL %s: this machine has an NVIDIA device node (%s) but CUDA cannot use it: %s\n",
           name, found, why ? why : "?");
    return 1;
}

// ---- fixture ------------------------------------------------------------------------------

typedef struct {
    char name[64];
    double *v;
    size_t n;
} entry;

struct tu_fixture {
    entry *e;
    size_t n, cap;
};

tu_fixture *tu_fixture_load(const char *path) {
    FILE *fp = fopen(path, "r");
    if (!fp) {
        fprintf(stderr, "FAIL cannot open fixture %s\n", path);
        tu_failures++;
        return NULL;
    }
    tu_fixture *f = calloc(1, sizeof *f);
    char *line = NULL;
    size_t cap = 0;
    while (getline(&line, &cap, fp) > 0) {
        if (line[0] == '#' || line[0] == '\n') continue;
        char *p = line, *end;
        size_t len = strcspn(p, " ");
        if (f->n == f->cap) {
            f->cap = f->cap ? 2 * f->cap : 64;
            f->e = realloc(f->e, f->cap * sizeof *f->e);
        }
        entry *e = &f->e[f->n++];
        snprintf(e->name, sizeof e->name, "%.*s", (int)len, p);
        p += len;
        e->n = strtoull(p, &end, 10);
        p = end;
        e->v = malloc((e->n ? e->n : 1) * sizeof(double));
        for (size_t i = 0; i < e->n; i++) {
            e->v[i] = strtod(p, &end);
            if (end == p) {
                fprintf(stderr, "FAIL fixture %s: %s has fewer than %zu values\n", path,
                        e->name, e->n);
                tu_failures++;
                break;
            }
            p = end;
        }
    }
    free(line);
    fclose(fp);
    return f;
}

void tu_fixture_free(tu_fixture *f) {
    if (!f) return;
    for (size_t i = 0; i < f->n; i++) free(f->e[i].v);
    free(f->e);
    free(f);
}

const double *tu_fixture_get(tu_fixture *f, const char *name, size_t *n) {
    for (size_t i = 0; f && i < f->n; i++)
        if (strcmp(f->e[i].name, name) == 0) {
            if (n) *n = f->e[i].n;
            return f->e[i].v;
        }
    fprintf(stderr, "FAIL fixture has no array '%s'\n", name);
    tu_failures++;
    if (n) *n = 0;
    return NULL;
}

double tu_fixture_scalar(tu_fixture *f, const char *name) {
    size_t n;
    const double *v = tu_fixture_get(f, name, &n);
    return (v && n == 1) ? v[0] : NAN;
}

uint64_t tu_rng_next(uint64_t *state) {
    uint64_t z = (*state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

void tu_blobs(int n, int d, int k, uint32_t seed, float *x, int32_t *labels, float *targets) {
    uint32_t s = seed;
    for (int i = 0; i < n; i++) {
        labels[i] = i % k;
        for (int j = 0; j < d; j++) {
            s = s * 1664525u + 1013904223u;
            x[i * d + j] = (float)((j % k == labels[i] ? 1.0 : 0.0) + 0.3 * (s >> 8) / 16777216.0);
        }
        for (int c = 0; c < k; c++) targets[i * k + c] = 0.5f * x[i * d + c] - 0.2f;
    }
}
