/* Test driver: executes ring-buffer commands read from stdin, one per line. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "ringbuf.h"

static size_t unhex(const char *s, unsigned char *out)
{
    size_t n = 0;
    if (strcmp(s, "-") == 0)
        return 0;
    while (s[0] && s[1]) {
        unsigned v;
        sscanf(s, "%2x", &v);
        out[n++] = (unsigned char)v;
        s += 2;
    }
    return n;
}

static void puthex(const unsigned char *d, size_t n)
{
    if (n == 0)
        fputs("-", stdout);
    for (size_t i = 0; i < n; i++)
        printf("%02x", d[i]);
}

int main(int argc, char **argv)
{
    ringbuf rb;
    static char line[1 << 16];
    static unsigned char data[1 << 15], out[1 << 15];
    size_t cap = (size_t)strtoul(argv[1], NULL, 10);

    (void)argc;
    if (rb_init(&rb, cap) != 0)
        return 3;
    while (fgets(line, sizeof line, stdin)) {
        char op = line[0];
        char *arg = line + 2;
        line[strcspn(line, "\n")] = '\0';
        if (op == 'W' || op == 'O') {
            size_t n = unhex(arg, data);
            size_t r = op == 'W' ? rb_write(&rb, data, n) : rb_write_overwrite(&rb, data, n);
            printf("%c %zu\n", op, r);
        } else if (op == 'R' || op == 'P') {
            size_t n = (size_t)strtoul(arg, NULL, 10);
            size_t r = op == 'R' ? rb_read(&rb, out, n) : rb_peek(&rb, out, n);
            printf("%c %zu ", op, r);
            puthex(out, r);
            putchar('\n');
        } else if (op == 'S') {
            printf("S %zu\n", rb_skip(&rb, (size_t)strtoul(arg, NULL, 10)));
        } else if (op == 'F') {
            printf("F %zd\n", rb_find(&rb, (unsigned char)strtoul(arg, NULL, 10)));
        } else if (op == 'L') {
            printf("L %zu %zu\n", rb_len(&rb), rb_space(&rb));
        }
    }
    rb_free(&rb);
    return 0;
}
