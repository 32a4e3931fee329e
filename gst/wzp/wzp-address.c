/* wzp-address: socket addresses as WZP writes them ("a.b.c.d:port",
 * "[v6]:port"), parsed, checked and, for addresses users give, resolved
 * (see wzp-quic.h). */
#define G_LOG_DOMAIN "wzp-quic"

#include "wzp-quic-private.h"

#include <string.h>
#include <arpa/inet.h>

gchar *
sockaddr_to_string (const struct sockaddr *sa)
{
  gchar host[INET6_ADDRSTRLEN];

  if (sa->sa_family == AF_INET) {
    const struct sockaddr_in *in = (const struct sockaddr_in *) sa;
    inet_ntop (AF_INET, &in->sin_addr, host, sizeof host);
    return g_strdup_printf ("%s:%u", host, ntohs (in->sin_port));
  }
  if (sa->sa_family == AF_INET6) {
    const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *) sa;
    if (IN6_IS_ADDR_V4MAPPED (&in6->sin6_addr)) {
      inet_ntop (AF_INET, &in6->sin6_addr.s6_addr[12], host, sizeof host);
      return g_strdup_printf ("%s:%u", host, ntohs (in6->sin6_port));
    }
    inet_ntop (AF_INET6, &in6->sin6_addr, host, sizeof host);
    return g_strdup_printf ("[%s]:%u", host, ntohs (in6->sin6_port));
  }
  return g_strdup ("unknown");
}

gchar *
wzp_socket_address_to_string (GSocketAddress *address)
{
  struct sockaddr_storage ss;

  if (!g_socket_address_to_native (address, &ss, sizeof ss, NULL))
    return g_strdup ("unknown");
  return sockaddr_to_string ((struct sockaddr *) &ss);
}

/* Splits "host:port" / "[v6]:port"; the error quotes @text and says why. */
static gboolean
split_host_port (const gchar *text, gchar **host, guint16 *port, GError **error)
{
  const gchar *colon, *why;
  guint64 p;

  if (text == NULL || *text == '\0') {
    why = "it is empty";
    goto bad;
  }
  if (text[0] == '[') {
    const gchar *end = strchr (text, ']');
    if (end == NULL || end[1] != ':') {
      why = "an IPv6 address is written [address]:port";
      goto bad;
    }
    *host = g_strndup (text + 1, (gsize) (end - text - 1));
    colon = end + 1;
  } else {
    colon = strrchr (text, ':');
    if (colon == NULL) {
      why = "it has no :port";
      goto bad;
    }
    if (memchr (text, ':', (gsize) (colon - text))) {
      why = "an IPv6 address is written [address]:port";
      goto bad;
    }
    *host = g_strndup (text, (gsize) (colon - text));
  }
  if (!g_ascii_string_to_unsigned (colon + 1, 10, 0, 65535, &p, NULL)) {
    g_clear_pointer (host, g_free);
    why = "the port is not a number from 0 to 65535";
    goto bad;
  }
  if (**host == '\0') {
    g_clear_pointer (host, g_free);
    why = "it has no host";
    goto bad;
  }
  *port = (guint16) p;
  return TRUE;
bad:
  g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT,
               "\"%s\" is not an address: %s (use host:port, a.b.c.d:port or [v6]:port)",
               text ? text : "", why);
  return FALSE;
}

GSocketAddress *
wzp_socket_address_parse (const gchar *text, GError **error)
{
  g_autofree gchar *host = NULL;
  g_autoptr (GInetAddress) addr = NULL;
  guint16 port;

  if (!split_host_port (text, &host, &port, error))
    return NULL;
  addr = g_inet_address_new_from_string (host);
  if (addr == NULL) {
    g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT,
                 "\"%s\" is not an address: \"%s\" is not a numeric IP address", text, host);
    return NULL;
  }
  return g_inet_socket_address_new (addr, (guint16) port);
}

gboolean
wzp_socket_address_check (const gchar *text, GError **error)
{
  g_autofree gchar *host = NULL;
  guint16 port;

  return split_host_port (text, &host, &port, error);
}

GSocketAddress *
wzp_socket_address_resolve (const gchar *text, GError **error)
{
  g_autofree gchar *host = NULL;
  g_autoptr (GInetAddress) numeric = NULL;
  g_autoptr (GResolver) resolver = NULL;
  g_autoptr (GError) local = NULL;
  GList *addrs;
  GSocketAddress *sa;
  guint16 port;

  if (!split_host_port (text, &host, &port, error))
    return NULL;
  numeric = g_inet_address_new_from_string (host);
  if (numeric)
    return g_inet_socket_address_new (numeric, port);
  resolver = g_resolver_get_default ();
  addrs = g_resolver_lookup_by_name (resolver, host, NULL, &local);
  if (addrs == NULL) {
    g_set_error (error, G_RESOLVER_ERROR, local ? local->code : G_RESOLVER_ERROR_NOT_FOUND,
                 "cannot resolve the host name in \"%s\": %s", text,
                 local ? local->message : "no address");
    return NULL;
  }
  sa = g_inet_socket_address_new (addrs->data, port);
  g_resolver_free_addresses (addrs);
  return sa;
}
