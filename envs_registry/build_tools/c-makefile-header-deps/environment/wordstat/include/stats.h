#ifndef WORDSTAT_STATS_H
#define WORDSTAT_STATS_H

typedef struct {
    long words;
    long unique;
    double sum_len;
    double sum_len_sq;
    char longest[64];
    int longest_len;
} wordstats;

void stats_init(wordstats *s);
void stats_add(wordstats *s, const char *word, int len);
double stats_mean(const wordstats *s);
double stats_stddev(const wordstats *s);
void stats_free(void);

#endif
