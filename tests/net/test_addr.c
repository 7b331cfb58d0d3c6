/* Connecting (net/addr.h): a connection to a port of this host that
 * nothing listens on, made from that same port, meets itself (TCP's
 * simultaneous open); kvi_connect_from refuses it instead of handing back
 * a socket that holds the port and answers every request with itself. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <cmocka.h>

#include "integration/loopback.h"
#include "net/addr.h"
#include "util/error.h"

/* An address of this host that nothing holds right now. */
static kvi_addr unused_addr(void)
{
    char text[32];
    snprintf(text, sizeof text, "127.0.0.1:%d", free_port());
    kvi_addr addr;
    assert_int_equal(kvi_addr_parse(&addr, text), KV_OK);
    return addr;
}

static void a_connection_that_meets_itself_is_refused(void **state)
{
    (void)state;
    kvi_addr addr = unused_addr();
    /* From the very port it connects to: the kernel opens it onto itself. */
    int fd = kvi_connect_from(&addr, &addr, 2000);
    if (fd >= 0)
        close(fd);
    assert_int_equal(fd, KV_EUNAVAILABLE);
    assert_non_null(strstr(kvi_error_last(), "met itself"));
    /* The port is free again: a server can take it. */
    int lfd = kvi_listen(&addr, 8);
    assert_true(lfd >= 0);
    close(lfd);
}

static void a_listening_port_still_connects(void **state)
{
    (void)state;
    kvi_addr addr = unused_addr();
    int lfd = kvi_listen(&addr, 8);
    assert_true(lfd >= 0);
    int fd = kvi_connect(&addr, 2000);
    assert_true(fd >= 0);
    close(fd);
    close(lfd);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(a_connection_that_meets_itself_is_refused),
        cmocka_unit_test(a_listening_port_still_connects),
    };
    return cmocka_run_group_tests_name("net.addr", tests, NULL, NULL);
}
