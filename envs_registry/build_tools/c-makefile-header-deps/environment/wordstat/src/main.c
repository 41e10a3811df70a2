#include <stdio.h>
#include <string.h>
#include "config.h"
#include "stats.h"
#include "tokenize.h"

int main(int argc, char **argv)
{
    char word[MAX_WORD_LEN + 1];
    wordstats s;
    int len;

    if (argc > 1 && strcmp(argv[1], "--version") == 0) {
        printf("wordstat %s\n", WORDSTAT_VERSION);
        return 0;
    }
    stats_init(&s);
    while ((len = next_word(stdin, word)) > 0)
        stats_add(&s, word, len);
    printf("words: %ld\n", s.words);
    printf("unique: %ld\n", s.unique);
    printf("mean_length: %.3f\n", stats_mean(&s));
    printf("stddev_length: %.3f\n", stats_stddev(&s));
    printf("longest: %s\n", s.longest);
    stats_free();
    return 0;
}
