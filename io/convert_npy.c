/*
 * convert_npy.c — the NumPy converter (see pcn_io.h "Arrays"): four .npy files, or four
 * entries of one .npz archive, read in C and streamed row by row to convert_array.c.
 *
 * .npy: the magic "\x93NUMPY", format version 1.0 (a 2-byte header length), 2.0 or 3.0
 * (4 bytes), then a Python dict literal with 'descr', 'fortran_order' and 'shape', then the
 * raw data. Read: little-endian (or byte-order-free '|') u1 i1 u2 i2 u4 i4 u8 i8 f4 f8 in
 * C order; anything else is refused with one line saying what it is.
 * .npz: a zip archive, each entry NAME.npy stored (np.savez) or deflated
 * (np.savez_compressed). The central directory is read (zip64 end records and zip64 extra
 * fields included, as NumPy writes them for large arrays); an entry is then streamed from
 * its local header through zlib's raw inflate, never loaded whole.
 *
 * Invariants: every failure returns a status with one line in pcn_last_error() naming the
 * file (and for .npz the array) and the problem; the data a header promises is checked
 * against the file or entry size before any output exists (a truncated file is an error,
 * never short data); an entry's CRC-32 is checked when its last byte has been read, which
 * is always so for labels, and for x unless a row limit stops the reading early.
 * Little-endian hosts only (the data is used as it lies in the file).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>

#include <zlib.h>

#include "convert_impl.h"

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "convert_npy.c reads little-endian data in place: a little-endian host is needed"
#endif

#define MAX_HEADER (1 << 20)  // longest .npy header read
#define MAX_CDIR (64 << 20)   // largest zip central directory read
#define IN_BUF (256 << 10)    // compressed bytes read at a time
#define EOCD_LEN 22           // zip end of central directory record, without its comment
#define EOCD_SEARCH (EOCD_LEN + 65535)

// ----------------------------------------------------------------------------------------
// Byte streams: a plain file, or one zip entry (stored or deflated, CRC-32 checked)
// ----------------------------------------------------------------------------------------

typedef struct {
    FILE *fp;
    bool zip;               // an archive entry (its CRC is checked at its end)
    int method;             // 0 stored, 8 deflated
    uint64_t csize, usize;  // compressed and uncompressed bytes
    uint32_t crc, crc_now;  // CRC-32 from the directory, and of the bytes read so far
    uint64_t cpos, upos;    // compressed bytes read, uncompressed bytes handed out
    z_stream z;
    bool z_open;
    unsigned char *in;      // compressed input (deflated entries)
} stream;

// One array: what convert_array.c sees, and its stream.
typedef struct {
    convert_array a;
    stream s;
    uint64_t data_off; // bytes before the data (magic, version, length, header)
} npy;

static void stream_close(stream *s) {
    if (s->z_open) inflateEnd(&s->z);
    if (s->fp) fclose(s->fp);
    free(s->in);
    memset(s, 0, sizeof *s);
}

static pcn_status inflate_into(stream *s, const char *where, unsigned char *buf, size_t n) {
    s->z.next_out = buf, s->z.avail_out = (uInt)n;
    while (s->z.avail_out > 0) {
        if (s->z.avail_in == 0) {
            size_t want = s->csize - s->cpos < IN_BUF ? (size_t)(s->csize - s->cpos) : IN_BUF;
            if (want == 0)
                return pcn_set_error(PCN_EDATA, "%s: compressed data ends early (a damaged "
                                     "archive)", where);
            size_t got = fread(s->in, 1, want, s->fp);
            if (got != want)
                return pcn_set_error(PCN_EIO, "%s: %s", where, ferror(s->fp) ? strerror(errno)
                                     : "the archive ends inside the entry (truncated)");
            s->cpos += got;
            s->z.next_in = s->in, s->z.avail_in = (uInt)got;
        }
        int r = inflate(&s->z, Z_NO_FLUSH);
        if (r == Z_STREAM_END && s->z.avail_out > 0)
            return pcn_set_error(PCN_EDATA, "%s: compressed data ends early (a damaged "
                                 "archive)", where);
        if (r != Z_OK && r != Z_STREAM_END)
            return pcn_set_error(PCN_EDATA, "%s: corrupt compressed data: %s", where,
                                 s->z.msg ? s->z.msg : zError(r));
    }
    return PCN_OK;
}

// Reads exactly n bytes of a piece (n < 1 GiB); checks the CRC after an entry's last byte.
static pcn_status stream_piece(stream *s, const char *where, unsigned char *buf, size_t n) {
    if (n > s->usize - s->upos)
        return pcn_set_error(PCN_EDATA, "%s: ends after %llu bytes (truncated)", where,
                             (unsigned long long)s->usize);
    if (s->method == 8) {
        pcn_status st = inflate_into(s, where, buf, n);
        if (st != PCN_OK) return st;
    } else if (fread(buf, 1, n, s->fp) != n) {
        return pcn_set_error(PCN_EIO, "%s: %s", where, ferror(s->fp) ? strerror(errno)
                             : "the file ends early (truncated, or it shrank)");
    }
    s->upos += n;
    if (!s->zip) return PCN_OK;
    s->crc_now = (uint32_t)crc32(s->crc_now, buf, (uInt)n);
    if (s->upos == s->usize && s->crc_now != s->crc)
        return pcn_set_error(PCN_EDATA, "%s: CRC-32 mismatch (0x%08x stored, 0x%08x read): the "
                             "archive is damaged", where, s->crc, s->crc_now);
    return PCN_OK;
}

static pcn_status stream_read(stream *s, const char *where, void *buf, size_t n) {
    for (size_t done = 0; done < n;) {
        size_t piece = n - done < (1u << 30) ? n - done : (1u << 30);
        pcn_status st = stream_piece(s, where, (unsigned char *)buf + done, piece);
        if (st != PCN_OK) return st;
        done += piece;
    }
    return PCN_OK;
}

// convert_array's read: the next rows of the data.
static pcn_status npy_read(convert_array *a, void *buf, int64_t rows) {
    npy *n = a->ctx;
    int64_t per_row = convert_dtype_size(a->dtype);
    for (int i = 1; i < a->ndim; i++) per_row *= a->dims[i];
    return stream_read(&n->s, a->where, buf, (size_t)(rows * per_row));
}

// ----------------------------------------------------------------------------------------
// The .npy header: magic, version, length, then {'descr': .., 'fortran_order': .., 'shape': ..}
// ----------------------------------------------------------------------------------------

static const struct {
    const char *code;
    convert_dtype type;
} dtypes[] = {{"u1", CONVERT_U1}, {"i1", CONVERT_I1}, {"u2", CONVERT_U2}, {"i2", CONVERT_I2},
              {"u4", CONVERT_U4}, {"i4", CONVERT_I4}, {"u8", CONVERT_U8}, {"i8", CONVERT_I8},
              {"f4", CONVERT_F4}, {"f8", CONVERT_F8}};

// A type string such as '<f4' to the array's dtype, or an error saying why not.
static pcn_status descr_dtype(convert_array *a, const char *descr) {
    char order = descr[0];
    const char *code = strchr("<>|=", order) && order ? descr + 1 : descr;
    for (size_t i = 0; i < sizeof dtypes / sizeof *dtypes; i++) {
        if (strcmp(code, dtypes[i].code) != 0) continue;
        if (order == '>' && code[1] != '1')
            return pcn_set_error(PCN_EDATA, "%s: big-endian dtype '%s' is not supported: save "
                                 "it little-endian (a.astype('<%s'))", a->where, descr, code);
        a->dtype = dtypes[i].type;
        return PCN_OK;
    }
    if (code[0] == 'O')
        return pcn_set_error(PCN_EDATA, "%s: object dtype '%s' holds Python objects, not "
                             "numbers: save a numeric array", a->where, descr);
    if (code[0] == 'c')
        return pcn_set_error(PCN_EDATA, "%s: complex dtype '%s' is not supported", a->where,
                             descr);
    return pcn_set_error(PCN_EDATA, "%s: dtype '%s' is not supported (u1 i1 u2 i2 u4 i4 u8 "
                         "i8 f4 f8 are)", a->where, descr);
}

static void skip_space(const char **p) {
    while (**p == ' ' || **p == '\t' || **p == '\n' || **p == '\r') (*p)++;
}

// A quoted Python string (no escapes in .npy headers) into out; false if malformed.
static bool quoted(const char **p, char *out, size_t cap) {
    char q = **p;
    if (q != '\'' && q != '"') return false;
    const char *end = strchr(*p + 1, q);
    if (!end || (size_t)(end - *p - 1) >= cap) return false;
    memcpy(out, *p + 1, (size_t)(end - *p - 1));
    out[end - *p - 1] = 0;
    *p = end + 1;
    return true;
}

// A tuple of non-negative integers: "()", "(5,)", "(256, 8, 8)".
static bool shape_tuple(const char **p, convert_array *a) {
    if (**p != '(') return false;
    (*p)++;
    for (a->ndim = 0;;) {
        skip_space(p);
        if (**p == ')') break;
        char *end;
        errno = 0;
        long long v = strtoll(*p, &end, 10);
        if (end == *p || errno || v < 0 || a->ndim == CONVERT_MAX_DIMS) return false;
        a->dims[a->ndim++] = v;
        *p = end;
        skip_space(p);
        if (**p == ',') (*p)++;
        else if (**p != ')') return false;
    }
    (*p)++;
    return true;
}

// The value of one key of the header dict.
static pcn_status header_value(convert_array *a, const char *key, const char **p, int *seen) {
    char descr[64];
    if (!strcmp(key, "descr")) {
        if (**p == '[')
            return pcn_set_error(PCN_EDATA, "%s: structured dtype (named fields) is not "
                                 "supported: save each field as an array of its own", a->where);
        *seen |= 1;
        return quoted(p, descr, sizeof descr) ? descr_dtype(a, descr) : PCN_EINVAL;
    }
    if (!strcmp(key, "fortran_order")) {
        *seen |= 2;
        if (!strncmp(*p, "False", 5)) return *p += 5, PCN_OK;
        if (strncmp(*p, "True", 4) != 0) return PCN_EINVAL;
        return pcn_set_error(PCN_EDATA, "%s: fortran_order is True: save the array in C order "
                             "(np.ascontiguousarray(a))", a->where);
    }
    if (!strcmp(key, "shape")) {
        *seen |= 4;
        return shape_tuple(p, a) ? PCN_OK : PCN_EINVAL;
    }
    return PCN_EINVAL;
}

// Parses the header dict; PCN_EINVAL from a helper means "malformed" (no message yet).
static pcn_status header_dict(convert_array *a, const char *text) {
    const char *p = text;
    char key[32];
    int seen = 0;
    skip_space(&p);
    pcn_status st = *p == '{' ? PCN_OK : PCN_EINVAL;
    for (p++; st == PCN_OK;) {
        skip_space(&p);
        if (*p == '}') break;
        if (!quoted(&p, key, sizeof key)) st = PCN_EINVAL;
        skip_space(&p);
        if (st != PCN_OK || *p++ != ':') st = PCN_EINVAL;
        skip_space(&p);
        if (st == PCN_OK) st = header_value(a, key, &p, &seen);
        skip_space(&p);
        if (st == PCN_OK && *p == ',') p++;
        else if (st == PCN_OK && *p != '}') st = PCN_EINVAL;
    }
    if (st == PCN_OK && seen != 7) st = PCN_EINVAL;
    if (st == PCN_EINVAL)
        return pcn_set_error(PCN_EDATA, "%s: malformed .npy header (expected {'descr': ..., "
                             "'fortran_order': ..., 'shape': (...)})", a->where);
    return st;
}

// Reads the magic, version and header from the stream's start.
static pcn_status npy_header(npy *n) {
    convert_array *a = &n->a;
    unsigned char pre[12];
    pcn_status st = n->s.usize < 10 ? pcn_set_error(PCN_EDATA, "%s: too short for a .npy "
                                                    "array (%llu bytes)", a->where,
                                                    (unsigned long long)n->s.usize)
                                    : stream_read(&n->s, a->where, pre, 10);
    if (st != PCN_OK) return st;
    if (memcmp(pre, "\x93NUMPY", 6) != 0)
        return pcn_set_error(PCN_EDATA, "%s: bad magic: not a .npy array (expected "
                             "\\x93NUMPY)", a->where);
    if (pre[6] < 1 || pre[6] > 3)
        return pcn_set_error(PCN_EDATA, "%s: .npy format version %d.%d is not supported (1.0, "
                             "2.0 and 3.0 are)", a->where, pre[6], pre[7]);
    uint32_t len = (uint32_t)pre[8] | (uint32_t)pre[9] << 8;
    if (pre[6] > 1 && (st = stream_read(&n->s, a->where, pre + 10, 2)) != PCN_OK) return st;
    if (pre[6] > 1) len |= (uint32_t)pre[10] << 16 | (uint32_t)pre[11] << 24;
    n->data_off = (pre[6] > 1 ? 12 : 10) + (uint64_t)len;
    if (len > MAX_HEADER || n->data_off > n->s.usize)
        return pcn_set_error(PCN_EDATA, "%s: header length %u is %s", a->where, len,
                             len > MAX_HEADER ? "too long" : "beyond the end (truncated)");
    char *text = malloc((size_t)len + 1);
    if (!text) return pcn_set_error(PCN_ENOMEM, "%s: out of memory", a->where);
    if ((st = stream_read(&n->s, a->where, text, len)) == PCN_OK) {
        text[len] = 0;
        st = header_dict(a, text);
    }
    free(text);
    return st;
}

// The data the header promises against the bytes that follow it.
static pcn_status npy_check_size(npy *n) {
    convert_array *a = &n->a;
    uint64_t bytes = convert_dtype_size(a->dtype), have = n->s.usize - n->data_off;
    for (int i = 0; i < a->ndim; i++)
        if (__builtin_mul_overflow(bytes, (uint64_t)a->dims[i], &bytes))
            return pcn_set_error(PCN_EDATA, "%s: the shape in the header is too large",
                                 a->where);
    if (have < bytes)
        return pcn_set_error(PCN_EDATA, "%s: truncated: the header declares %llu bytes of %s "
                             "data, but %llu follow it", a->where, (unsigned long long)bytes,
                             convert_dtype_name(a->dtype), (unsigned long long)have);
    if (have > bytes)
        return pcn_set_error(PCN_EDATA, "%s: %llu bytes follow the %llu bytes of data its "
                             "header declares", a->where, (unsigned long long)(have - bytes),
                             (unsigned long long)bytes);
    a->read = npy_read, a->ctx = n;
    return PCN_OK;
}

// A plain .npy file: opened, sized, its header read and checked.
static pcn_status npy_open_file(npy *n, const char *path) {
    snprintf(n->a.where, sizeof n->a.where, "%s", path);
    n->s.fp = fopen(path, "rb");
    if (!n->s.fp) return pcn_set_error(PCN_EIO, "%s: cannot open: %s", path, strerror(errno));
    if (fseeko(n->s.fp, 0, SEEK_END) != 0 || ftello(n->s.fp) < 0)
        return pcn_set_error(PCN_EIO, "%s: cannot size: %s", path, strerror(errno));
    n->s.usize = n->s.csize = (uint64_t)ftello(n->s.fp);
    rewind(n->s.fp);
    pcn_status st = npy_header(n);
    return st == PCN_OK ? npy_check_size(n) : st;
}

// ----------------------------------------------------------------------------------------
// .npz: the zip central directory, and an entry's stream
// ----------------------------------------------------------------------------------------

typedef struct {
    const char *path;
    uint64_t size;   // of the archive
    unsigned char *cdir;
    uint64_t cdir_len, entries;
} zip;

static uint32_t le16(const unsigned char *p) { return (uint32_t)p[0] | (uint32_t)p[1] << 8; }
static uint32_t le32(const unsigned char *p) { return le16(p) | le16(p + 2) << 16; }
static uint64_t le64(const unsigned char *p) { return le32(p) | (uint64_t)le32(p + 4) << 32; }

// Reads n bytes at offset off of fp.
static bool read_at(FILE *fp, uint64_t off, void *buf, size_t n) {
    return fseeko(fp, (off_t)off, SEEK_SET) == 0 && fread(buf, 1, n, fp) == n;
}

// The zip64 end of central directory record, found through its locator before the end
// record at eocd: the true entry count, directory size and offset.
static pcn_status zip64_end(zip *z, FILE *fp, uint64_t eocd, uint64_t *off) {
    unsigned char loc[20], rec[56];
    if (eocd < 20 || !read_at(fp, eocd - 20, loc, 20) || le32(loc) != 0x07064b50)
        return PCN_OK; // no zip64 record: the end record's fields hold
    uint64_t at = le64(loc + 8);
    if (at > z->size - 56 || !read_at(fp, at, rec, 56) || le32(rec) != 0x06064b50)
        return pcn_set_error(PCN_EDATA, "%s: bad zip64 end of central directory record",
                             z->path);
    z->entries = le64(rec + 32), z->cdir_len = le64(rec + 40), *off = le64(rec + 48);
    return PCN_OK;
}

// Finds the end records and reads the central directory.
static pcn_status zip_dir(zip *z, FILE *fp) {
    size_t tail = z->size < EOCD_SEARCH ? (size_t)z->size : EOCD_SEARCH;
    unsigned char *t = malloc(tail);
    if (!t) return pcn_set_error(PCN_ENOMEM, "%s: out of memory", z->path);
    int64_t i = (int64_t)tail - EOCD_LEN;
    if (tail >= EOCD_LEN && read_at(fp, z->size - tail, t, tail))
        while (i >= 0 && le32(t + i) != 0x06054b50) i--;
    else i = -1;
    if (i < 0) {
        free(t);
        return pcn_set_error(PCN_EDATA, "%s: not a zip (.npz) archive, or a truncated one (no "
                             "end of central directory record)", z->path);
    }
    const unsigned char *e = t + i;
    uint64_t eocd = z->size - tail + (uint64_t)i, off = le32(e + 16);
    bool multi = le16(e + 4) != 0 || le16(e + 6) != 0;
    z->entries = le16(e + 10), z->cdir_len = le32(e + 12);
    free(t);
    if (multi) return pcn_set_error(PCN_EDATA, "%s: a multi-part zip archive", z->path);
    pcn_status st = zip64_end(z, fp, eocd, &off);
    if (st != PCN_OK) return st;
    if (z->cdir_len > MAX_CDIR || off > z->size || z->cdir_len > z->size - off)
        return pcn_set_error(PCN_EDATA, "%s: bad central directory (%llu bytes at %llu)",
                             z->path, (unsigned long long)z->cdir_len, (unsigned long long)off);
    if (!(z->cdir = malloc(z->cdir_len + 1)))
        return pcn_set_error(PCN_ENOMEM, "%s: out of memory", z->path);
    if (!read_at(fp, off, z->cdir, z->cdir_len))
        return pcn_set_error(PCN_EIO, "%s: cannot read the central directory", z->path);
    return PCN_OK;
}

static pcn_status zip_open(zip *z, const char *path) {
    memset(z, 0, sizeof *z);
    z->path = path;
    FILE *fp = fopen(path, "rb");
    if (!fp) return pcn_set_error(PCN_EIO, "%s: cannot open: %s", path, strerror(errno));
    pcn_status st = PCN_OK;
    off_t size = fseeko(fp, 0, SEEK_END) == 0 ? ftello(fp) : -1;
    if (size < 0) st = pcn_set_error(PCN_EIO, "%s: cannot size: %s", path, strerror(errno));
    z->size = (uint64_t)size;
    if (st == PCN_OK) st = zip_dir(z, fp);
    fclose(fp);
    return st;
}

// One central directory entry, its sizes and offset completed from a zip64 extra field.
typedef struct {
    uint32_t flags, method, crc;
    uint64_t csize, usize, offset;
    const unsigned char *name;
    size_t name_len, len; // the name; the entry's length in the directory
} zip_entry;

static void zip64_extra(zip_entry *e, const unsigned char *x, size_t len) {
    for (size_t k = 0; k + 4 <= len; k += 4 + le16(x + k + 2)) {
        size_t size = le16(x + k + 2), at = k + 4;
        if (le16(x + k) != 1 || k + 4 + size > len) continue;
        uint64_t *f[3] = {&e->usize, &e->csize, &e->offset};
        for (int i = 0; i < 3; i++)
            if (*f[i] == 0xffffffffu && at + 8 <= k + 4 + size) *f[i] = le64(x + at), at += 8;
    }
}

static bool zip_entry_at(const zip *z, uint64_t pos, zip_entry *e) {
    const unsigned char *p = z->cdir + pos;
    if (pos + 46 > z->cdir_len || le32(p) != 0x02014b50) return false;
    e->flags = le16(p + 8), e->method = le16(p + 10), e->crc = le32(p + 16);
    e->csize = le32(p + 20), e->usize = le32(p + 24), e->offset = le32(p + 42);
    e->name_len = le16(p + 28);
    size_t extra = le16(p + 30), comment = le16(p + 32);
    e->len = 46 + e->name_len + extra + comment;
    if (pos + e->len > z->cdir_len) return false;
    e->name = p + 46;
    zip64_extra(e, p + 46 + e->name_len, extra);
    return true;
}

// Whether the entry's name is want or want.npy.
static bool name_matches(const unsigned char *name, size_t len, const char *want) {
    size_t w = strlen(want);
    if (len != w && len != w + 4) return false;
    return !memcmp(name, want, w) && (len == w || !memcmp(name + w, ".npy", 4));
}

// Adds an entry's name (without .npy; control characters shown as '?') to a list.
static void list_name(char *list, size_t cap, const zip_entry *e) {
    size_t k = strlen(list), n = e->name_len;
    if (n >= 4 && !memcmp(e->name + n - 4, ".npy", 4)) n -= 4;
    if (k && k + 2 < cap) strcpy(list + k, ", "), k += 2;
    for (size_t i = 0; i < n && k + 1 < cap; i++)
        list[k++] = e->name[i] < 32 || e->name[i] == 127 ? '?' : (char)e->name[i];
    list[k] = 0;
}

// Finds want in the directory; else an error listing the arrays the archive holds.
static pcn_status zip_find(const zip *z, const char *want, zip_entry *found) {
    char names[256] = "";
    zip_entry e;
    uint64_t pos = 0;
    for (uint64_t i = 0; i < z->entries; i++, pos += e.len) {
        if (!zip_entry_at(z, pos, &e))
            return pcn_set_error(PCN_EDATA, "%s: bad central directory entry %llu", z->path,
                                 (unsigned long long)i);
        if (name_matches(e.name, e.name_len, want)) {
            *found = e;
            return PCN_OK;
        }
        list_name(names, sizeof names, &e);
    }
    return pcn_set_error(PCN_EDATA, "%s: no array '%s' in the archive (it holds: %s)", z->path,
                         want, z->entries ? names : "nothing");
}

// Positions the entry's stream at its data, after the local header.
static pcn_status entry_seek(npy *n, const zip *z, const zip_entry *e) {
    stream *s = &n->s;
    unsigned char h[30];
    if (!(s->fp = fopen(z->path, "rb")))
        return pcn_set_error(PCN_EIO, "%s: cannot open: %s", z->path, strerror(errno));
    if (e->offset > z->size - 30 || !read_at(s->fp, e->offset, h, 30) ||
        le32(h) != 0x04034b50)
        return pcn_set_error(PCN_EDATA, "%s: bad local header at offset %llu", n->a.where,
                             (unsigned long long)e->offset);
    uint64_t data = e->offset + 30 + le16(h + 26) + le16(h + 28);
    if (data > z->size || e->csize > z->size - data)
        return pcn_set_error(PCN_EDATA, "%s: the entry's data runs past the end of the archive "
                             "(truncated)", n->a.where);
    if (fseeko(s->fp, (off_t)data, SEEK_SET) != 0)
        return pcn_set_error(PCN_EIO, "%s: cannot seek: %s", n->a.where, strerror(errno));
    return PCN_OK;
}

// An array of the archive: found, its stream set up, its header read and checked.
static pcn_status entry_open(npy *n, const zip *z, const char *name) {
    snprintf(n->a.where, sizeof n->a.where, "%s: %s", z->path, name);
    zip_entry e = {0};
    pcn_status st = zip_find(z, name, &e);
    if (st != PCN_OK) return st;
    if (e.flags & 1) return pcn_set_error(PCN_EDATA, "%s: an encrypted entry", n->a.where);
    if (e.method != 0 && e.method != 8)
        return pcn_set_error(PCN_EDATA, "%s: zip compression method %u is not supported (0, "
                             "stored, and 8, deflated, are)", n->a.where, e.method);
    if (e.method == 0 && e.csize != e.usize)
        return pcn_set_error(PCN_EDATA, "%s: a stored entry of %llu bytes that takes %llu",
                             n->a.where, (unsigned long long)e.usize,
                             (unsigned long long)e.csize);
    if ((st = entry_seek(n, z, &e)) != PCN_OK) return st;
    stream *s = &n->s;
    s->zip = true, s->method = (int)e.method, s->crc = e.crc;
    s->csize = e.csize, s->usize = e.usize, s->crc_now = (uint32_t)crc32(0, NULL, 0);
    if (e.method == 8) {
        if (!(s->in = malloc(IN_BUF)) || inflateInit2(&s->z, -MAX_WBITS) != Z_OK)
            return pcn_set_error(PCN_ENOMEM, "%s: out of memory", n->a.where);
        s->z_open = true;
    }
    st = npy_header(n);
    return st == PCN_OK ? npy_check_size(n) : st;
}

// ----------------------------------------------------------------------------------------
// Public API
// ----------------------------------------------------------------------------------------

// Opens the four arrays: entries of the archive, or .npy files.
static pcn_status open_all(npy *n[4], const char *archive, const char *const names[4]) {
    static const char *const defaults[4] = {"x_train", "y_train", "x_test", "y_test"};
    zip z;
    pcn_status st = archive ? zip_open(&z, archive) : PCN_OK;
    for (int i = 0; i < 4 && st == PCN_OK; i++) {
        if (!(n[i] = calloc(1, sizeof *n[i])))
            st = pcn_set_error(PCN_ENOMEM, "out of memory");
        else if (archive)
            st = entry_open(n[i], &z, names[i] ? names[i] : defaults[i]);
        else
            st = npy_open_file(n[i], names[i]);
    }
    if (archive) free(z.cdir);
    return st;
}

pcn_status pcn_io_convert_npz(const char *archive, const pcn_io_array_names *names,
                              const char *out, const pcn_io_convert_params *params) {
    pcn_io_convert_params p = params ? *params : pcn_io_convert_default_params();
    pcn_status st = convert_check_params(&p, out);
    if (st != PCN_OK) return st;
    const char *given[4] = {names ? names->train_x : NULL, names ? names->train_y : NULL,
                            names ? names->test_x : NULL, names ? names->test_y : NULL};
    if (!archive && (!given[0] || !given[1] || !given[2] || !given[3]))
        return pcn_set_error(PCN_EINVAL, "a conversion of .npy files needs all four paths "
                             "(train x and y, test x and y)");
    npy *n[4] = {NULL, NULL, NULL, NULL};
    st = open_all(n, archive, given);
    if (st == PCN_OK) {
        convert_array *const a[4] = {&n[0]->a, &n[1]->a, &n[2]->a, &n[3]->a};
        st = convert_arrays_run(a, out, &p, archive ? "npz" : "npy",
                                archive ? archive : given[0]);
    }
    for (int i = 0; i < 4; i++) {
        if (n[i]) stream_close(&n[i]->s);
        free(n[i]);
    }
    return st;
}
