#include <ctype.h>
#include "config.h"
#include "tokenize.h"

int next_word(FILE *fp, char *buf)
{
    int c, len = 0;
    while ((c = fgetc(fp)) != EOF && !isalpha(c))
        ;
    if (c == EOF)
        return 0;
    do {
        if (len < MAX_WORD_LEN)
            buf[len++] = (char)tolower(c);
    } while ((c = fgetc(fp)) != EOF && isalpha(c));
    buf[len] = '\0';
    return len;
}
