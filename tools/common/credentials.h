/*
 * tools/common/credentials.h - reading the cluster secret and client tokens
 * from files, shared by kvd, kvctl and kvbench (docs/SECURITY.md).
 *
 * A secret file holds the secret's bytes; trailing whitespace (the newline
 * an editor adds) is not part of it. A token file holds one token a line;
 * blank lines and lines starting with '#' are skipped, and so is
 * surrounding whitespace. Files readable by group or others are accepted
 * with a warning (*warning set), as ssh does for less critical files.
 */
#ifndef KVT_CREDENTIALS_H
#define KVT_CREDENTIALS_H

#include <stddef.h>

/* 0 with the secret in *out (malloc'd; *len bytes), or -1 with err set. */
int kvt_read_secret_file(const char *path, unsigned char **out, size_t *len, int *warning,
                         char *err, size_t err_len);
/* 0 with the tokens in *out (each and the array malloc'd; free with
 * kvt_free_tokens), or -1 with err set (no token at all is an error). */
int kvt_read_token_file(const char *path, char ***out, size_t *n, int *warning, char *err,
                        size_t err_len);
void kvt_free_tokens(char **tokens, size_t n);

#endif
