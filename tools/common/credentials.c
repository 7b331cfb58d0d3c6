/* tools/common/credentials.c - see credentials.h. */
#include "credentials.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* Largest file read: credentials are short; anything bigger is a mistake
 * (the wrong file given). */
#define MAX_FILE 65536

static int slurp(const char *path, char **out, size_t *len, int *warning, char *err,
                 size_t err_len)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(err, err_len, "cannot read %s: %s", path, strerror(errno));
        return -1;
    }
    struct stat st;
    if (fstat(fileno(f), &st) == 0 && warning)
        *warning = (st.st_mode & 077) != 0;
    char *buf = malloc(MAX_FILE + 1);
    size_t n = buf ? fread(buf, 1, MAX_FILE + 1, f) : 0;
    int failed = buf == NULL || ferror(f);
    fclose(f);
    if (failed || n > MAX_FILE) {
        snprintf(err, err_len, "%s: %s", path,
                 failed ? "read error" : "over 64 KiB: not a credentials file");
        free(buf);
        return -1;
    }
    buf[n] = 0;
    *out = buf;
    *len = n;
    return 0;
}

int kvt_read_secret_file(const char *path, unsigned char **out, size_t *len, int *warning,
                         char *err, size_t err_len)
{
    char *buf;
    size_t n;
    if (slurp(path, &buf, &n, warning, err, err_len) != 0)
        return -1;
    while (n && isspace((unsigned char)buf[n - 1]))
        n--;
    if (n == 0) {
        snprintf(err, err_len, "%s is empty", path);
        free(buf);
        return -1;
    }
    *out = (unsigned char *)buf;
    *len = n;
    return 0;
}

void kvt_free_tokens(char **tokens, size_t n)
{
    for (size_t i = 0; tokens && i < n; i++)
        free(tokens[i]);
    free(tokens);
}

int kvt_read_token_file(const char *path, char ***out, size_t *n_out, int *warning, char *err,
                        size_t err_len)
{
    char *buf;
    size_t n;
    if (slurp(path, &buf, &n, warning, err, err_len) != 0)
        return -1;
    char **tokens = NULL;
    size_t count = 0;
    int rc = 0;
    for (char *line = buf, *next; line && rc == 0; line = next) {
        next = strchr(line, '\n');
        if (next)
            *next++ = 0;
        while (isspace((unsigned char)*line))
            line++;
        size_t len = strlen(line);
        while (len && isspace((unsigned char)line[len - 1]))
            line[--len] = 0;
        if (len == 0 || line[0] == '#')
            continue;
        char **grown = realloc(tokens, (count + 1) * sizeof *tokens);
        char *copy = grown ? strdup(line) : NULL;
        if (grown)
            tokens = grown;
        if (!copy) {
            snprintf(err, err_len, "out of memory reading %s", path);
            rc = -1;
            break;
        }
        tokens[count++] = copy;
    }
    free(buf);
    if (rc == 0 && count == 0) {
        snprintf(err, err_len, "%s holds no token (one a line; '#' starts a comment)", path);
        rc = -1;
    }
    if (rc != 0) {
        kvt_free_tokens(tokens, count);
        return -1;
    }
    *out = tokens;
    *n_out = count;
    return 0;
}
