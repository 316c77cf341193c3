/* core/base: one-line messages, overflow-checked sizes, half-precision conversions, atomic outputs,
 * kernel levels. */
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "lorac/base.h"

/* Kernel levels: names round trip, LORAC_ISA (as the test runs) caps the detected level, and a
 * cap set in code never raises the level above the CPU's. */
static void check_isa(void) {
    const lorac_isa det = lorac_isa_detected(), act = lorac_isa_active();
    lorac_isa l;
    for (int i = LORAC_ISA_GENERIC; i <= LORAC_ISA_AVX512BF16; i++)
        CHECK(lorac_isa_parse(lorac_isa_name((lorac_isa)i), &l) == 0 && l == (lorac_isa)i, "level %d round trip", i);
    CHECK(lorac_isa_parse("AVX2", &l) == 0 && l == LORAC_ISA_AVX2, "any case");
    CHECK(lorac_isa_parse("avx3", &l) == -1 && lorac_isa_parse("", &l) == -1 && lorac_isa_parse(NULL, &l) == -1,
          "unknown names");
    CHECK(!strcmp(lorac_isa_name((lorac_isa)7), "unknown"), "name of a bad level");
    const char *env = getenv("LORAC_ISA");
    lorac_isa cap = LORAC_ISA_AVX512BF16;
    if (env && lorac_isa_parse(env, &l) == 0) cap = l;
    CHECK(act == (cap < det ? cap : det), "active %s: detected %s capped by LORAC_ISA=%s", lorac_isa_name(act),
          lorac_isa_name(det), env ? env : "(unset)");
    CHECK(lorac_isa_set_cap(LORAC_ISA_GENERIC) == LORAC_ISA_GENERIC && lorac_isa_active() == LORAC_ISA_GENERIC,
          "cap at generic");
    CHECK(lorac_isa_set_cap(LORAC_ISA_AVX512BF16) == det && lorac_isa_active() == det, "a cap above the CPU");
    lorac_isa_set_cap(act);
    printf("kernels: %s (cpu: %s)\n", lorac_isa_name(act), lorac_isa_name(det));
}

int main(void) {
    lorac_err err;
    check_isa();
    /* a name read from a hostile file cannot split a message over two lines */
    lorac_fail(&err, LORAC_EFORMAT, "%s: tensor '%s' is bad", "f.safetensors", "a\nb\r\tc");
    CHECK(!strchr(err.msg, '\n') && !strchr(err.msg, '\r') && !strchr(err.msg, '\t'), "one line: %s", err.msg);
    CHECK(strcmp(err.msg, "f.safetensors: tensor 'a?b??c' is bad") == 0, "%s", err.msg);
    CHECK(err.code == LORAC_EFORMAT, "code");

    size_t out = 0;
    CHECK(lorac_size_mul((size_t)1 << 40, (size_t)1 << 40, &out) == -1, "mul overflow");
    CHECK(lorac_size_mul(3, 5, &out) == 0 && out == 15, "mul");
    CHECK(lorac_size_add(SIZE_MAX, 1, &out) == -1, "add overflow");

    /* f16 / bf16: exact values, subnormals, inf, NaN, and round-to-nearest-even */
    CHECK(lorac_f16_to_f32(0x3c00) == 1.0f && lorac_f16_to_f32(0xc000) == -2.0f, "f16 decode");
    CHECK(lorac_f16_to_f32(0x0001) == 5.9604644775390625e-08f, "f16 smallest subnormal");
    CHECK(isinf(lorac_f16_to_f32(0x7c00)) && isnan(lorac_f16_to_f32(0x7e00)), "f16 inf/nan");
    CHECK(lorac_f32_to_f16(1.0f) == 0x3c00 && lorac_f32_to_f16(65520.0f) == 0x7c00, "f16 encode, overflow to inf");
    CHECK(lorac_f32_to_f16(1.0f + 1.0f / 2048) == 0x3c00, "f16 tie rounds to even (down)");
    CHECK(lorac_f32_to_f16(1.0f + 3.0f / 2048) == 0x3c02, "f16 tie rounds to even (up)");
    for (uint32_t h = 0; h < 0x10000; h++) { /* every finite f16 survives f16 -> f32 -> f16 */
        if ((h & 0x7c00) == 0x7c00) continue;
        if (lorac_f32_to_f16(lorac_f16_to_f32((uint16_t)h)) != h) {
            CHECK(0, "f16 round trip of 0x%04x", h);
            break;
        }
    }
    CHECK(lorac_bf16_to_f32(0x3f80) == 1.0f && lorac_f32_to_bf16(1.0f) == 0x3f80, "bf16");
    CHECK(lorac_f32_to_bf16(1.00390625f) == 0x3f80, "bf16 tie rounds to even");

    /* atomic file and directory outputs */
    char dir[] = "/tmp/lorac_base_XXXXXX";
    CHECK(mkdtemp(dir) != NULL, "mkdtemp");
    char path[256], sub[256];
    snprintf(path, sizeof path, "%s/out.txt", dir);
    CHECK(lorac_write_file(path, "hello", 5, &err) == 0, "write: %s", err.msg);
    char *data = NULL;
    size_t n = 0;
    CHECK(lorac_read_file(path, &data, &n, &err) == 0 && n == 5 && !memcmp(data, "hello", 5), "read back");
    free(data);
    struct stat st;
    CHECK(stat(path, &st) == 0 && (st.st_mode & 0044), "outputs are not owner-only (mode %o)", st.st_mode & 0777);
    lorac_out o;
    CHECK(lorac_out_open(&o, path, &err) == 0, "open");
    fputs("partial", o.f);
    lorac_out_abort(&o);
    CHECK(lorac_read_file(path, &data, &n, &err) == 0 && n == 5, "an aborted output leaves the old file");
    free(data);
    snprintf(sub, sizeof sub, "%s/adir", dir);
    lorac_outdir od;
    CHECK(lorac_outdir_open(&od, sub, &err) == 0, "outdir");
    CHECK(access(sub, F_OK) != 0, "nothing at the target before commit");
    lorac_outdir_abort(&od);
    CHECK(access(sub, F_OK) != 0, "nothing at the target after abort");
    CHECK(lorac_outdir_open(&od, sub, &err) == 0 && lorac_outdir_commit(&od, &err) == 0, "commit: %s", err.msg);
    CHECK(access(sub, F_OK) == 0, "the directory after commit");
    CHECK(lorac_outdir_open(&od, sub, &err) == 0 && lorac_outdir_commit(&od, &err) == 0, "replace: %s", err.msg);
    CHECK(lorac_read_file("/nonexistent/x", &data, &n, &err) == LORAC_EIO && strstr(err.msg, "/nonexistent/x"), "missing file");
    lorac_remove_flat_dir(sub);
    unlink(path);
    rmdir(dir);
    return check_summary();
}
