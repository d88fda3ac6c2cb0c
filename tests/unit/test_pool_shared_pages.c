/* test_pool_shared_pages.c -- the template's letting go of file pages
 * (kernel/pool/shared_pages.c): the pages go, and nothing the process
 * wrote or relocated changes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "shared_pages.h"

/* KiB resident in read-only mappings of files (code, constants), summed
 * over the process: what the release should bring down. */
static long resident_read_only_file_kb(void)
{
    FILE *f = fopen("/proc/self/smaps", "re");
    assert_non_null(f);
    char line[1024], perms[8];
    int counted = 0, path_at;
    long total = 0, kb;
    while (fgets(line, sizeof line, f)) {
        path_at = 0;
        if (sscanf(line, "%*x-%*x %7s %*s %*s %*s %n", perms, &path_at) == 1 &&
            path_at > 0) {
            counted = perms[1] != 'w' && line[path_at] == '/';
        } else if (counted && sscanf(line, "Rss: %ld kB", &kb) == 1) {
            total += kb;
        }
    }
    fclose(f);
    return total;
}

static void test_shared_pages__resident_code_and_constants_go(void **state)
{
    (void)state;
    long before = resident_read_only_file_kb();
    assert_true(before > 256); /* libc, cmocka, this program: touched by now */
    assert_true(shared_pages_release() > 0);
    long after = resident_read_only_file_kb();
    /* Reading smaps touched a few pages of libc again: far fewer. */
    assert_true(after * 2 < before);
}

/* Relocated constants (pointers: in RELRO, copied and written by ld.so) and
 * written data must keep their values: releasing them would bring back
 * the file's bytes. */
static const char *const relocated[] = {"first", "second"};
static int (*const relocated_fn)(const char *, const char *) = strcmp;
static int written_data = 1;

static void test_shared_pages__written_and_relocated_data_stay(void **state)
{
    (void)state;
    static char buffer[64];
    written_data = 42;
    strcpy(buffer, "kept");
    assert_true(shared_pages_release() > 0);
    assert_int_equal(written_data, 42);
    assert_string_equal(buffer, "kept");
    assert_string_equal(relocated[1], "second");
    assert_int_equal(relocated_fn(relocated[0], "first"), 0);
    /* The vDSO is not a file's: it must still answer. */
    struct timespec ts = {0};
    assert_int_equal(clock_gettime(CLOCK_MONOTONIC, &ts), 0);
    assert_true(ts.tv_sec > 0 || ts.tv_nsec > 0);
}

static void test_shared_pages__code_runs_after_a_release(void **state)
{
    (void)state;
    for (int i = 0; i < 3; i++) {
        assert_true(shared_pages_release() > 0);
        char *s = malloc(32);
        assert_non_null(s);
        snprintf(s, 32, "round %d", i);
        assert_int_equal((int)strlen(s), 7);
        free(s);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_shared_pages__resident_code_and_constants_go),
        cmocka_unit_test(test_shared_pages__written_and_relocated_data_stay),
        cmocka_unit_test(test_shared_pages__code_runs_after_a_release),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
