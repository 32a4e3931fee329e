/* Fault injection for tests (wzp-session-test.h). */
#include "wzp-session-private.h"
#include "wzp-session-test.h"

#include <string.h>
#include <gio/gio.h>
#include <netinet/in.h>

gboolean
wzp_session_set_test_fault (WzpSession *s, const gchar *name, guint value)
{
  g_return_val_if_fail (WZP_IS_SESSION (s), FALSE);

  if (strcmp (name, "test-block-direct") == 0)
    s->test_block_direct = value != 0;
  else if (strcmp (name, "test-report-delay-ms") == 0)
    s->test_report_delay_ms = value;
  else if (strcmp (name, "test-relay-delay-ms") == 0)
    s->test_relay_delay_ms = value;
  else if (strcmp (name, "test-setup-delay-ms") == 0)
    s->test_setup_delay_ms = value;
  else
    return FALSE;
  return TRUE;
}

static guint16
sockaddr_port (const struct sockaddr *sa)
{
  if (sa->sa_family == AF_INET)
    return ntohs (((const struct sockaddr_in *) sa)->sin_port);
  if (sa->sa_family == AF_INET6)
    return ntohs (((const struct sockaddr_in6 *) sa)->sin6_port);
  return 0;
}

/* test-block-direct: only the relay's port gets through (every peer of a
 * test runs on loopback, so the port tells the relay apart) */
gboolean
test_block_all_but_relay (const struct sockaddr *remote, gboolean sending, gpointer data)
{
  WzpSession *s = data;

  return sockaddr_port (remote) !=
         g_inet_socket_address_get_port (G_INET_SOCKET_ADDRESS (s->relay_addr));
}
