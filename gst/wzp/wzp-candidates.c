/* wzp-candidates: the addresses a call offers the peer (protocol §6.2) and
 * the Acceptor's hole punching (docs/negotiation.md). */
#define G_LOG_DOMAIN "wzp-session"

#include "wzp-session-private.h"

#include <ifaddrs.h>
#include <net/if.h>
#include <netinet/in.h>

void
stop_punching (WzpSession *s)
{
  cancel_timer (&s->punch_timer);
  g_clear_pointer (&s->punch_targets, g_ptr_array_unref);
}

static gboolean
on_punch (gpointer data)
{
  WzpSession *s = data;

  for (guint i = 0; i < s->punch_targets->len; i++)
    wzp_endpoint_send_punch (s->ep, g_ptr_array_index (s->punch_targets, i));
  return G_SOURCE_CONTINUE;
}

/* The Acceptor sends a 1-byte datagram to each of the peer's candidates
 * every 20 ms until the dial arrives or the direct limit passes: its own NAT
 * then lets the Dialer's packets in (upstream's Acceptor sends nothing, and
 * address-restricted NATs drop the dial). */
void
start_punching (WzpSession *s, GPtrArray *candidates)
{
  stop_punching (s);
  s->punch_targets = g_ptr_array_new_with_free_func (g_object_unref);
  for (guint i = 0; i < candidates->len; i++) {
    GSocketAddress *a = wzp_socket_address_parse (g_ptr_array_index (candidates, i), NULL);
    if (a && wzp_endpoint_can_reach (s->ep, a))
      g_ptr_array_add (s->punch_targets, a);
    else
      g_clear_object (&a);
  }
  if (s->punch_targets->len == 0)
    return;
  on_punch (s);
  s->punch_timer = session_timeout (s, PUNCH_INTERVAL_MS, on_punch, s, NULL);
}

/* Host addresses the peer may reach us on (protocol §6.2): IPv4 and IPv6
 * global or unique-local addresses of the interfaces that are up, with our
 * port. Link-local and loopback addresses are left out, and so is
 * everything when the relay itself is on loopback (both ends are on this
 * host, and the reflexive address is enough). */
GPtrArray *
local_candidates (WzpSession *s)
{
  GPtrArray *out = g_ptr_array_new_with_free_func (g_free);
  GInetAddress *relay = g_inet_socket_address_get_address (G_INET_SOCKET_ADDRESS (s->relay_addr));
  g_autoptr (GInetSocketAddress) local = wzp_endpoint_get_local_address (s->ep);
  gboolean v6 = g_socket_address_get_family (G_SOCKET_ADDRESS (local)) == G_SOCKET_FAMILY_IPV6;
  guint16 port = wzp_endpoint_get_port (s->ep);
  struct ifaddrs *ifs = NULL;

  if (!s->direct || g_inet_address_get_is_loopback (relay) || getifaddrs (&ifs) != 0)
    return out;
  for (struct ifaddrs *i = ifs; i && out->len < MAX_LOCAL_CANDIDATES; i = i->ifa_next) {
    g_autoptr (GSocketAddress) sa = NULL;
    GInetAddress *a;

    if (i->ifa_addr == NULL || !(i->ifa_flags & IFF_UP) || (i->ifa_flags & IFF_LOOPBACK))
      continue;
    if (i->ifa_addr->sa_family == AF_INET)
      sa = g_socket_address_new_from_native (i->ifa_addr, sizeof (struct sockaddr_in));
    else if (i->ifa_addr->sa_family == AF_INET6 && v6)
      sa = g_socket_address_new_from_native (i->ifa_addr, sizeof (struct sockaddr_in6));
    if (sa == NULL)
      continue;
    a = g_inet_socket_address_get_address (G_INET_SOCKET_ADDRESS (sa));
    if (g_inet_address_get_is_loopback (a) || g_inet_address_get_is_link_local (a) ||
        g_inet_address_get_is_any (a) || g_inet_address_get_is_multicast (a))
      continue;
    {
      g_autofree gchar *host = g_inet_address_to_string (a);
      gchar *text = g_inet_address_get_family (a) == G_SOCKET_FAMILY_IPV6
                        ? g_strdup_printf ("[%s]:%u", host, port)
                        : g_strdup_printf ("%s:%u", host, port);
      if (g_ptr_array_find_with_equal_func (out, text, g_str_equal, NULL) ||
          g_strcmp0 (text, s->own_reflexive) == 0)
        g_free (text);
      else
        g_ptr_array_add (out, text);
    }
  }
  freeifaddrs (ifs);
  return out;
}
