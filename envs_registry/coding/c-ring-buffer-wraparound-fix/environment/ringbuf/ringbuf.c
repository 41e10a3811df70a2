#include <stdlib.h>
#include <string.h>
#include "ringbuf.h"

int rb_init(ringbuf *rb, size_t cap)
{
    if (cap == 0)
        return -1;
    rb->buf = malloc(cap);
    if (!rb->buf)
        return -1;
    rb->cap = cap;
    rb->head = rb->tail = rb->len = 0;
    return 0;
}

void rb_free(ringbuf *rb)
{
    free(rb->buf);
    rb->buf = NULL;
    rb->cap = rb->head = rb->tail = rb->len = 0;
}

size_t rb_len(const ringbuf *rb)
{
    return rb->len;
}

size_t rb_space(const ringbuf *rb)
{
    return rb->cap - rb->len;
}

size_t rb_write(ringbuf *rb, const void *data, size_t n)
{
    const unsigned char *src = data;
    size_t first;

    if (n > rb_space(rb))
        n = rb_space(rb);
    first = rb->cap - rb->head;
    if (first > n)
        first = n;
    memcpy(rb->buf + rb->head, src, first);
    memcpy(rb->buf, src, n - first);
    rb->head = (rb->head + n) % rb->cap;
    rb->len += n;
    return n;
}

size_t rb_write_overwrite(ringbuf *rb, const void *data, size_t n)
{
    size_t dropped = 0;

    if (n > rb->cap) {
        dropped = rb->len + (n - rb->cap);
        rb->head = rb->tail = rb->len = 0;
        n = rb->cap;
    } else if (n > rb_space(rb)) {
        dropped = rb_skip(rb, n - rb_space(rb));
    }
    rb_write(rb, data, n);
    return dropped;
}

size_t rb_peek(const ringbuf *rb, void *out, size_t n)
{
    unsigned char *dst = out;
    size_t first;

    if (n > rb->len)
        n = rb->len;
    first = rb->cap - rb->tail;
    if (first > n)
        first = n;
    memcpy(dst, rb->buf + rb->tail, first);
    memcpy(dst + first, rb->buf, n - first);
    return n;
}

size_t rb_skip(ringbuf *rb, size_t n)
{
    if (n > rb->len)
        n = rb->len;
    rb->tail += n;
    rb->len -= n;
    return n;
}

size_t rb_read(ringbuf *rb, void *out, size_t n)
{
    n = rb_peek(rb, out, n);
    return rb_skip(rb, n);
}

ssize_t rb_find(const ringbuf *rb, unsigned char c)
{
    for (size_t i = 0; i <= rb->len; i++)
        if (rb->buf[rb->tail + i] == c)
            return (ssize_t)i;
    return -1;
}
