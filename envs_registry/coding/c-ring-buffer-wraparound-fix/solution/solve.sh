#!/bin/bash
set -euo pipefail
cd /app/ringbuf
cat ISSUE.md
python3 - <<'PY'
def patch(old, new):
    src = open("ringbuf.c").read()
    assert old in src, old
    open("ringbuf.c", "w").write(src.replace(old, new, 1))

# the wrapped part of a write must continue after the first chunk of the source
patch("    memcpy(rb->buf, src, n - first);\n", "    memcpy(rb->buf, src + first, n - first);\n")
# when more than cap bytes are written, keep the LAST cap bytes of the input
patch("""        rb->head = rb->tail = rb->len = 0;
        n = rb->cap;
    } else if (n > rb_space(rb)) {
        dropped = rb_skip(rb, n - rb_space(rb));
    }
    rb_write(rb, data, n);""", """        rb->head = rb->tail = rb->len = 0;
        data = (const unsigned char *)data + (n - rb->cap);
        n = rb->cap;
    } else if (n > rb_space(rb)) {
        dropped = rb_skip(rb, n - rb_space(rb));
    }
    rb_write(rb, data, n);""")
# the read position must wrap around
patch("    rb->tail += n;\n", "    rb->tail = (rb->tail + n) % rb->cap;\n")
# rb_find: only the len stored bytes, with wrap-around indexing
patch("""    for (size_t i = 0; i <= rb->len; i++)
        if (rb->buf[rb->tail + i] == c)""", """    for (size_t i = 0; i < rb->len; i++)
        if (rb->buf[(rb->tail + i) % rb->cap] == c)""")
PY
make clean >/dev/null
make check
