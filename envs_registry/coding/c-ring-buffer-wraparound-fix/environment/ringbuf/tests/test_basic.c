#include <assert.h>
#include <stdio.h>
#include <string.h>
#include "ringbuf.h"

int main(void)
{
    ringbuf rb;
    char out[16];

    assert(rb_init(&rb, 8) == 0);
    assert(rb_write(&rb, "hello", 5) == 5);
    assert(rb_len(&rb) == 5 && rb_space(&rb) == 3);
    assert(rb_find(&rb, 'l') == 2);
    assert(rb_read(&rb, out, 3) == 3 && memcmp(out, "hel", 3) == 0);
    assert(rb_write(&rb, "abcdefgh", 8) == 6);
    assert(rb_len(&rb) == 8);
    rb_free(&rb);
    puts("test_basic: OK");
    return 0;
}
