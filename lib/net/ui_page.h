/* net/ui_page.h - the status page (GET / and /ui): lib/net/ui/status.html,
 * compiled into the library by cmake/embed_file.cmake. */
#ifndef KVI_UI_PAGE_H
#define KVI_UI_PAGE_H

#include <stddef.h>

/* The page's bytes (NUL-terminated) and its length without the NUL. */
extern const unsigned char kvi_ui_status_html[];
extern const size_t kvi_ui_status_html_len;

#endif
