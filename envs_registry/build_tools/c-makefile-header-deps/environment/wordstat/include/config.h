#ifndef WORDSTAT_CONFIG_H
#define WORDSTAT_CONFIG_H

#define WORDSTAT_VERSION "1.4.0"
/* longer words are truncated to this many characters */
#define MAX_WORD_LEN 32
#define TABLE_SIZE 4096

#endif
