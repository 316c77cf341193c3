/* Status messages, overflow-checked sizes, threads, RNG, mapped and atomically written files. */
#include "lorac/base.h"

#include <cblas.h>

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <omp.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

int lorac_fail(lorac_err *err, int code, const char *fmt, ...) {
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err->msg, sizeof err->msg, fmt, ap);
        va_end(ap);
        /* a message is one line even when it quotes a name read from a hostile file */
        for (char *p = err->msg; *p; p++)
            if ((unsigned char)*p < 0x20 || *p == 0x7f) *p = '?';
        err->code = code;
    }
    return code;
}

const char *lorac_status_str(int code) {
    switch (code) {
    case LORAC_OK: return "ok";
    case LORAC_EINVAL: return "invalid argument";
    case LORAC_EIO: return "i/o error";
    case LORAC_EFORMAT: return "malformed file";
    case LORAC_ENOMEM: return "out of memory";
    case LORAC_ESHAPE: return "shape mismatch";
    case LORAC_ENOTFOUND: return "not found";
    case LORAC_EUNSUPPORTED: return "unsupported";
    case LORAC_EBUSY: return "busy";
    case LORAC_ECLOSED: return "closed";
    default: return "unknown error";
    }
}

int lorac_size_mul(size_t a, size_t b, size_t *out) {
    if (a != 0 && b > SIZE_MAX / a) return -1;
    *out = a * b;
    return 0;
}

int lorac_size_add(size_t a, size_t b, size_t *out) {
    if (b > SIZE_MAX - a) return -1;
    *out = a + b;
    return 0;
}

/* OpenBLAS's OpenMP build follows omp_set_num_threads, so one setting governs both. */
void lorac_set_threads(int n) {
    if (n <= 0) n = omp_get_num_procs();
    omp_set_num_threads(n);
}

int lorac_get_threads(void) { return omp_get_max_threads(); }

const char *lorac_blas_corename(void) { return openblas_get_corename(); }
const char *lorac_blas_config(void) { return openblas_get_config(); }

static uint64_t rotl64(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

static uint64_t splitmix64(uint64_t *x) {
    uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

void lorac_rng_seed(lorac_rng *rng, uint64_t seed) {
    for (int i = 0; i < 4; i++) rng->s[i] = splitmix64(&seed);
}

/* xoshiro256** */
uint64_t lorac_rng_u64(lorac_rng *rng) {
    uint64_t *s = rng->s;
    uint64_t result = rotl64(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl64(s[3], 45);
    return result;
}

float lorac_rng_uniform(lorac_rng *rng) {
    return (float)(lorac_rng_u64(rng) >> 40) * (1.0f / 16777216.0f);
}

float lorac_rng_normal(lorac_rng *rng) {
    double u1 = ((double)(lorac_rng_u64(rng) >> 11) + 1.0) * (1.0 / 9007199254740992.0);
    double u2 = (double)(lorac_rng_u64(rng) >> 11) * (1.0 / 9007199254740992.0);
    return (float)(sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2));
}

int lorac_map_file(const char *path, lorac_map *m, lorac_err *err) {
    m->data = NULL;
    m->size = 0;
    int fd = open(path, O_RDONLY);
    if (fd < 0) return lorac_fail(err, LORAC_EIO, "%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int e = errno;
        close(fd);
        return lorac_fail(err, LORAC_EIO, "%s: cannot stat: %s", path, strerror(e));
    }
    if (!S_ISREG(st.st_mode)) {
        close(fd);
        return lorac_fail(err, LORAC_EIO, "%s: not a regular file", path);
    }
    if (st.st_size == 0) { /* mmap of length 0 fails; an empty mapping is valid */
        close(fd);
        return LORAC_OK;
    }
    void *p = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (p == MAP_FAILED) return lorac_fail(err, LORAC_EIO, "%s: cannot map: %s", path, strerror(errno));
    m->data = p;
    m->size = (size_t)st.st_size;
    return LORAC_OK;
}

void lorac_unmap(lorac_map *m) {
    if (m->data && m->size) munmap((void *)m->data, m->size);
    m->data = NULL;
    m->size = 0;
}

int lorac_out_open(lorac_out *o, const char *path, lorac_err *err) {
    memset(o, 0, sizeof *o);
    if (strlen(path) + 16 >= sizeof o->tmp) return lorac_fail(err, LORAC_EINVAL, "%s: path too long", path);
    strcpy(o->path, path);
    snprintf(o->tmp, sizeof o->tmp, "%s.tmpXXXXXX", path);
    int fd = mkstemp(o->tmp);
    if (fd < 0) return lorac_fail(err, LORAC_EIO, "%s: cannot create: %s", path, strerror(errno));
    /* mkstemp makes the file 0600; give it the mode an ordinary create would (0666 less umask) */
    mode_t um = umask(0);
    umask(um);
    fchmod(fd, 0666 & ~um);
    o->f = fdopen(fd, "wb");
    if (!o->f) {
        close(fd);
        unlink(o->tmp);
        return lorac_fail(err, LORAC_EIO, "%s: cannot open: %s", path, strerror(errno));
    }
    return LORAC_OK;
}

int lorac_out_commit(lorac_out *o, lorac_err *err) {
    if (!o->f) return lorac_fail(err, LORAC_EIO, "%s: not open", o->path);
    int bad = ferror(o->f) || fflush(o->f) != 0 || fsync(fileno(o->f)) != 0;
    int e = errno;
    if (fclose(o->f) != 0 && !bad) { bad = 1; e = errno; }
    o->f = NULL;
    if (bad) {
        unlink(o->tmp);
        return lorac_fail(err, LORAC_EIO, "%s: write failed: %s", o->path, strerror(e));
    }
    if (rename(o->tmp, o->path) != 0) {
        e = errno;
        unlink(o->tmp);
        return lorac_fail(err, LORAC_EIO, "%s: cannot rename into place: %s", o->path, strerror(e));
    }
    return LORAC_OK;
}

void lorac_out_abort(lorac_out *o) {
    if (o->f) {
        fclose(o->f);
        o->f = NULL;
        unlink(o->tmp);
    }
}

int lorac_write_file(const char *path, const void *data, size_t n, lorac_err *err) {
    lorac_out o;
    int rc = lorac_out_open(&o, path, err);
    if (rc) return rc;
    if (n && fwrite(data, 1, n, o.f) != n) {
        lorac_out_abort(&o);
        return lorac_fail(err, LORAC_EIO, "%s: write failed", path);
    }
    return lorac_out_commit(&o, err);
}

int lorac_read_file(const char *path, char **data, size_t *n, lorac_err *err) {
    *data = NULL;
    if (n) *n = 0;
    FILE *f = fopen(path, "rb");
    if (!f) return lorac_fail(err, LORAC_EIO, "%s: cannot open: %s", path, strerror(errno));
    size_t cap = 1 << 16, len = 0;
    char *buf = malloc(cap);
    if (!buf) {
        fclose(f);
        return lorac_fail(err, LORAC_ENOMEM, "%s: out of memory", path);
    }
    for (;;) {
        if (len + 1 >= cap) {
            char *nb = cap > SIZE_MAX / 2 ? NULL : realloc(buf, cap * 2);
            if (!nb) {
                free(buf);
                fclose(f);
                return lorac_fail(err, LORAC_ENOMEM, "%s: out of memory", path);
            }
            buf = nb;
            cap *= 2;
        }
        size_t got = fread(buf + len, 1, cap - 1 - len, f);
        len += got;
        if (got == 0) break;
    }
    int bad = ferror(f);
    fclose(f);
    if (bad) {
        free(buf);
        return lorac_fail(err, LORAC_EIO, "%s: read failed", path);
    }
    buf[len] = 0;
    *data = buf;
    if (n) *n = len;
    return LORAC_OK;
}

int lorac_remove_flat_dir(const char *path) {
    DIR *d = opendir(path);
    if (!d) return -1;
    struct dirent *e;
    char buf[8192];
    while ((e = readdir(d)) != NULL) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        snprintf(buf, sizeof buf, "%s/%s", path, e->d_name);
        unlink(buf);
    }
    closedir(d);
    return rmdir(path);
}

int lorac_outdir_open(lorac_outdir *o, const char *path, lorac_err *err) {
    memset(o, 0, sizeof *o);
    size_t n = strlen(path);
    while (n > 1 && path[n - 1] == '/') n--; /* "out/" names the same directory as "out" */
    if (n == 0 || n + 16 >= sizeof o->tmp) return lorac_fail(err, LORAC_EINVAL, "%s: bad output path", path);
    memcpy(o->path, path, n);
    o->path[n] = 0;
    struct stat st;
    if (stat(o->path, &st) == 0 && !S_ISDIR(st.st_mode))
        return lorac_fail(err, LORAC_EIO, "%s: exists and is not a directory", o->path);
    snprintf(o->tmp, sizeof o->tmp, "%s.tmpXXXXXX", o->path);
    if (!mkdtemp(o->tmp)) {
        o->tmp[0] = 0;
        return lorac_fail(err, LORAC_EIO, "%s: cannot create directory: %s", o->path, strerror(errno));
    }
    /* mkdtemp makes the directory 0700; give it the mode mkdir would (0777 less umask) */
    mode_t um = umask(0);
    umask(um);
    if (chmod(o->tmp, 0777 & ~um) != 0) {
        int e = errno;
        rmdir(o->tmp);
        o->tmp[0] = 0;
        return lorac_fail(err, LORAC_EIO, "%s: cannot set directory mode: %s", o->path, strerror(e));
    }
    return LORAC_OK;
}

int lorac_outdir_commit(lorac_outdir *o, lorac_err *err) {
    char old[4200] = "";
    struct stat st;
    if (stat(o->path, &st) == 0) { /* move the previous output aside, then drop it */
        snprintf(old, sizeof old, "%s.oldXXXXXX", o->path);
        if (!mkdtemp(old) || rmdir(old) != 0 || rename(o->path, old) != 0) {
            int e = errno;
            lorac_outdir_abort(o);
            return lorac_fail(err, LORAC_EIO, "%s: cannot replace: %s", o->path, strerror(e));
        }
    }
    if (rename(o->tmp, o->path) != 0) {
        int e = errno;
        if (old[0]) rename(old, o->path);
        lorac_outdir_abort(o);
        return lorac_fail(err, LORAC_EIO, "%s: cannot rename into place: %s", o->path, strerror(e));
    }
    o->tmp[0] = 0;
    if (old[0]) lorac_remove_flat_dir(old);
    return LORAC_OK;
}

void lorac_outdir_abort(lorac_outdir *o) {
    if (o->tmp[0]) lorac_remove_flat_dir(o->tmp);
    o->tmp[0] = 0;
}

int lorac_has_suffix(const char *s, const char *suffix) {
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && !strcmp(s + n - k, suffix);
}

void *lorac_blocks_alloc(lorac_blocks *b, size_t bytes) {
    if (b->n == b->cap) {
        size_t cap = b->cap ? 2 * b->cap : 64;
        void **p = realloc(b->p, cap * sizeof *p);
        if (!p) return NULL;
        b->p = p;
        b->cap = cap;
    }
    void *q = malloc(bytes ? bytes : 1);
    if (q) b->p[b->n++] = q;
    return q;
}

void lorac_blocks_free(lorac_blocks *b) {
    for (size_t i = 0; i < b->n; i++) free(b->p[i]);
    free(b->p);
    memset(b, 0, sizeof *b);
}
