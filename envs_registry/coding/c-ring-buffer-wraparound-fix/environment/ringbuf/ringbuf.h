#ifndef RINGBUF_H
#define RINGBUF_H

#include <stddef.h>
#include <sys/types.h>

/* Fixed-capacity FIFO byte buffer. Bytes are read in the order they were written.
 * `tail` is the index of the oldest byte, `head` the index where the next byte is written,
 * `len` the number of stored bytes (0 <= len <= cap). */
typedef struct {
    unsigned char *buf;
    size_t cap;
    size_t head;
    size_t tail;
    size_t len;
} ringbuf;

/* Allocates a buffer of `cap` bytes (cap >= 1). Returns 0 on success, -1 on failure. */
int rb_init(ringbuf *rb, size_t cap);
void rb_free(ringbuf *rb);

size_t rb_len(const ringbuf *rb);
size_t rb_space(const ringbuf *rb);

/* Appends up to n bytes (as many as fit); returns the number of bytes appended. */
size_t rb_write(ringbuf *rb, const void *data, size_t n);

/* Appends all n bytes, discarding the oldest stored bytes when there is not enough space.
 * If n > cap, only the last cap bytes of data are kept. Returns the number of bytes discarded
 * (old stored bytes plus bytes of data that were never stored). */
size_t rb_write_overwrite(ringbuf *rb, const void *data, size_t n);

/* Removes up to n of the oldest bytes and copies them to out; returns how many. */
size_t rb_read(ringbuf *rb, void *out, size_t n);

/* Like rb_read but does not remove anything. */
size_t rb_peek(const ringbuf *rb, void *out, size_t n);

/* Discards up to n of the oldest bytes; returns how many. */
size_t rb_skip(ringbuf *rb, size_t n);

/* Position (0 = oldest byte) of the first occurrence of byte c, or -1 if absent. */
ssize_t rb_find(const ringbuf *rb, unsigned char c);

#endif
