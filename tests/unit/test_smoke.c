/* A first round trip through libjp: sign, encode, decode. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "jp.h"

static void test_wire__round_trip_keeps_content(void **state)
{
    (void)state;
    jp_error err = {0};
    jp_session *s = jp_session_new("hmac-sha256", "secret", 6, "tester", &err);
    assert_non_null(s);
    jp_msg *m = jp_msg_new(s, "execute_request", json_pack("{s:s}", "code", "1+1"), NULL, 0);
    assert_non_null(m);
    jp_frame *frames;
    size_t n;
    assert_int_equal(jp_wire_encode(s, &m, &frames, &n, &err), 0);
    assert_null(m);
    jp_msg *back = jp_wire_decode(s, frames, n, &err);
    free(frames);
    assert_non_null(back);
    assert_string_equal(jp_msg_type(back), "execute_request");
    assert_string_equal(json_string_value(json_object_get(back->content, "code")), "1+1");
    jp_msg_destroy(&back);
    jp_session_destroy(&s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_wire__round_trip_keeps_content),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
