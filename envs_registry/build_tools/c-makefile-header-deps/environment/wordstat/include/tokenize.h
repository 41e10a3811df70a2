#ifndef WORDSTAT_TOKENIZE_H
#define WORDSTAT_TOKENIZE_H

#include <stdio.h>

/* Reads the next word (maximal run of ASCII letters, lower-cased) from fp into buf.
 * buf must hold at least MAX_WORD_LEN + 1 bytes. Returns the word length, or 0 at EOF. */
int next_word(FILE *fp, char *buf);

#endif
