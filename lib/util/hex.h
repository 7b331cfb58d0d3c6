/* util/hex.h - hexadecimal digits (cursors, percent-encoding). */
#ifndef KVI_HEX_H
#define KVI_HEX_H

/* The value of one hex digit, either case; -1 when c is not one. */
static inline int kvi_hex_digit(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

#endif
