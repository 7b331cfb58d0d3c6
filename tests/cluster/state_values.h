/* cluster/state_values.h - siblings made from text, for tests of stored
 * key states. */
#ifndef KV_TEST_CLUSTER_STATE_VALUES_H
#define KV_TEST_CLUSTER_STATE_VALUES_H

#include <string.h>

#include "format/state.h"

/* A sibling holding text (borrowed), written at 1 ms. */
static inline kvi_sibling value_of(const char *text)
{
    kvi_sibling v;
    memset(&v, 0, sizeof v);
    v.value = (const unsigned char *)text;
    v.value_len = strlen(text);
    v.write_ms = 1;
    return v;
}

/* Whether one of s's siblings holds text. */
static inline int holds(const kvi_state *s, const char *text)
{
    for (size_t i = 0; i < s->n; i++)
        if (s->sibs[i].value_len == strlen(text) &&
            memcmp(s->sibs[i].value, text, s->sibs[i].value_len) == 0)
            return 1;
    return 0;
}

#endif
