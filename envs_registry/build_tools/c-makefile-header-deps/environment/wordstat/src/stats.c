#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "config.h"
#include "stats.h"

struct entry {
    char *word;
    struct entry *next;
};

static struct entry *table[TABLE_SIZE];

static unsigned long hash(const char *s)
{
    unsigned long h = 5381;
    while (*s)
        h = h * 33 + (unsigned char)*s++;
    return h % TABLE_SIZE;
}

void stats_init(wordstats *s)
{
    memset(s, 0, sizeof(*s));
}

void stats_add(wordstats *s, const char *word, int len)
{
    unsigned long h = hash(word);
    struct entry *e;
    s->words++;
    s->sum_len += len;
    s->sum_len_sq += (double)len * len;
    if (len > s->longest_len) {
        s->longest_len = len;
        strcpy(s->longest, word);
    }
    for (e = table[h]; e; e = e->next)
        if (strcmp(e->word, word) == 0)
            return;
    e = malloc(sizeof(*e));
    e->word = strdup(word);
    e->next = table[h];
    table[h] = e;
    s->unique++;
}

double stats_mean(const wordstats *s)
{
    return s->words ? s->sum_len / s->words : 0.0;
}

double stats_stddev(const wordstats *s)
{
    double m = stats_mean(s);
    if (!s->words)
        return 0.0;
    return sqrt(s->sum_len_sq / s->words - m * m);
}

void stats_free(void)
{
    for (int i = 0; i < TABLE_SIZE; i++) {
        struct entry *e = table[i];
        while (e) {
            struct entry *n = e->next;
            free(e->word);
            free(e);
            e = n;
        }
        table[i] = NULL;
    }
}
