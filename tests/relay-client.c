/* The relay test client: see relay-client.h. */
#include <string.h>

#include "relay-client.h"


static void
c_established (WzpConnection *conn, Client *c)
{
  c->established = TRUE;
}

static void
c_closed (WzpConnection *conn, const GError *e, Client *c)
{
  c->closed = TRUE;
  g_clear_error (&c->close_error);
  c->close_error = g_error_copy (e);
}

static void
c_signal (WzpConnection *conn, const WzpSignal *m, Client *c)
{
  g_ptr_array_add (c->msgs, wzp_signal_copy (m));
}

static void
c_datagram (WzpConnection *conn, const guint8 *d, gsize len, gpointer data)
{
  Client *c = data;
  guint key = len > 12 ? d[12] : 0;

  c->datagrams++;
  if (c->keep_datagrams)
    g_ptr_array_add (c->datagram_log, g_bytes_new (d, len));
  g_hash_table_insert (c->datagram_from, GUINT_TO_POINTER (key),
                       GUINT_TO_POINTER (GPOINTER_TO_UINT (g_hash_table_lookup (c->datagram_from,
                                                                                GUINT_TO_POINTER (key))) + 1));
}

gboolean
spin (gboolean (*pred) (gpointer), gpointer data, guint ms)
{
  gint64 end = g_get_monotonic_time () + (gint64) ms * 1000;

  while (!pred (data)) {
    if (g_get_monotonic_time () > end)
      return FALSE;
    g_main_context_iteration (NULL, FALSE);
    g_usleep (200);
  }
  return TRUE;
}

static gboolean
c_ready (gpointer data)
{
  return ((Client *) data)->established || ((Client *) data)->closed;
}

gboolean
c_is_closed (gpointer data)
{
  return ((Client *) data)->closed;
}

Client *
client_new (guint8 seed_byte)
{
  Client *c = g_new0 (Client, 1);
  g_autoptr (GSocketAddress) any = wzp_socket_address_parse ("127.0.0.1:0", NULL);
  guint8 seed[32];

  memset (seed, seed_byte, sizeof seed);
  c->id = wzp_identity_new_from_seed (seed);
  c->ep = wzp_endpoint_new (any, NULL, NULL, NULL);
  c->msgs = g_ptr_array_new_with_free_func ((GDestroyNotify) wzp_signal_free);
  c->datagram_from = g_hash_table_new (NULL, NULL);
  c->datagram_log = g_ptr_array_new_with_free_func ((GDestroyNotify) g_bytes_unref);
  return c;
}

void
client_drop_conn (Client *c)
{
  if (c->conn) {
    g_signal_handlers_disconnect_by_data (c->conn, c);
    wzp_connection_set_datagram_handler (c->conn, NULL, NULL, NULL);
    g_clear_object (&c->conn);
  }
  c->established = c->closed = FALSE;
  g_clear_error (&c->close_error);
  g_ptr_array_set_size (c->msgs, 0);
}

void
client_free (Client *c)
{
  client_drop_conn (c);
  wzp_endpoint_shutdown (c->ep, 0, "done");
  g_object_unref (c->ep);
  wzp_identity_unref (c->id);
  g_ptr_array_unref (c->msgs);
  g_hash_table_destroy (c->datagram_from);
  g_ptr_array_unref (c->datagram_log);
  g_free (c);
}

void
client_connect (Client *c, Relay *r, const gchar *sni)
{
  g_autoptr (GError) error = NULL;

  client_drop_conn (c);
  c->conn = wzp_endpoint_connect (c->ep, r->sockaddr, sni, r->tls_fp, &error);
  g_assert_no_error (error);
  g_signal_connect (c->conn, "established", G_CALLBACK (c_established), c);
  g_signal_connect (c->conn, "closed", G_CALLBACK (c_closed), c);
  g_signal_connect (c->conn, "signal", G_CALLBACK (c_signal), c);
  wzp_connection_set_datagram_handler (c->conn, c_datagram, c, NULL);
  g_assert_true (spin (c_ready, c, 5000));
  g_assert_true (c->established);
}

void
client_send (Client *c, WzpSignal *m)
{
  g_autoptr (GError) error = NULL;

  g_assert_true (wzp_connection_send_signal (c->conn, m, &error));
  g_assert_no_error (error);
  wzp_signal_free (m);
}

typedef struct {
  Client *c;
  WzpSignalType type;
} WaitType;

static gboolean
has_type (gpointer data)
{
  WaitType *w = data;

  for (guint i = 0; i < w->c->msgs->len; i++)
    if (((WzpSignal *) g_ptr_array_index (w->c->msgs, i))->type == w->type)
      return TRUE;
  return w->c->closed;
}

/* The first message of @type, removed from the inbox; NULL on timeout. */
WzpSignal *
client_take (Client *c, WzpSignalType type, guint ms)
{
  WaitType w = { c, type };

  spin (has_type, &w, ms);
  for (guint i = 0; i < c->msgs->len; i++) {
    WzpSignal *m = g_ptr_array_index (c->msgs, i);
    if (m->type == type)
      return g_ptr_array_steal_index (c->msgs, i);
  }
  return NULL;
}

WzpSignal *
client_expect (Client *c, WzpSignalType type)
{
  WzpSignal *m = client_take (c, type, 5000);

  if (m == NULL)
    g_error ("no %s arrived%s%s", wzp_signal_type_name (type), c->closed ? "; closed: " : "",
             c->closed ? c->close_error->message : "");
  return m;
}

static gboolean
never (gpointer data)
{
  return FALSE;
}

void
settle (guint ms)
{
  spin (never, NULL, ms);
}

WzpSignal *
register_msg (Client *c, gboolean sign, gboolean forge)
{
  WzpSignal *m = wzp_signal_new (WZP_SIGNAL_REGISTER_PRESENCE);

  memcpy (m->register_presence.identity_pub, wzp_identity_get_public_key (c->id), 32);
  if (sign) {
    guint8 msg[17 + 32], sig[64];
    memcpy (msg, "register-presence", 17);
    memcpy (msg + 17, m->register_presence.identity_pub, 32);
    wzp_identity_sign (c->id, msg, sizeof msg, sig);
    if (forge)
      sig[0] ^= 1;
    m->register_presence.signature = g_bytes_new (sig, sizeof sig);
  }
  return m;
}

void
client_register (Client *c, Relay *r)
{
  g_autoptr (WzpSignal) ack = NULL;

  client_connect (c, r, "_signal");
  client_send (c, register_msg (c, FALSE, FALSE));
  ack = client_expect (c, WZP_SIGNAL_REGISTER_PRESENCE_ACK);
  g_assert_true (ack->register_presence_ack.success);
  g_assert_nonnull (ack->register_presence_ack.relay_build);
}

WzpSignal *
call_offer_msg (Client *c)
{
  WzpSignal *m = wzp_signal_new (WZP_SIGNAL_CALL_OFFER);
  guint8 secret[32], sig[64];

  memcpy (m->call_offer.identity_pub, wzp_identity_get_public_key (c->id), 32);
  wzp_x25519_keypair_new (secret, m->call_offer.ephemeral_pub);
  wzp_sign_call_offer (c->id, m->call_offer.ephemeral_pub, sig);
  m->call_offer.signature = g_bytes_new (sig, sizeof sig);
  m->call_offer.supported_profiles = g_array_new (FALSE, FALSE, sizeof (WzpQualityProfile));
  g_array_append_val (m->call_offer.supported_profiles, WZP_PROFILE_GOOD);
  m->call_offer.alias = g_strdup_printf ("member-%02x", wzp_identity_get_seed (c->id)[0]);
  return m;
}

/* Joins a room; returns the relay's CallAnswer after checking its signature. */
void
join_room (Client *c, Relay *r, const gchar *room)
{
  g_autoptr (WzpSignal) answer = NULL;

  client_connect (c, r, room);
  client_send (c, call_offer_msg (c));
  answer = client_expect (c, WZP_SIGNAL_CALL_ANSWER);
  g_assert_cmpstr (wzp_identity_get_fingerprint (c->id), !=, r->fingerprint);
  {
    gchar fp[WZP_FINGERPRINT_STRLEN];
    wzp_fingerprint_string (answer->call_answer.identity_pub, fp);
    g_assert_cmpstr (fp, ==, r->fingerprint);
  }
  g_assert_true (wzp_verify_call_answer (answer->call_answer.identity_pub,
                                         answer->call_answer.ephemeral_pub,
                                         g_bytes_get_data (answer->call_answer.signature, NULL),
                                         g_bytes_get_size (answer->call_answer.signature)));
  g_assert_cmpint (answer->call_answer.chosen_profile.codec, ==, WZP_CODEC_OPUS24K);
}


typedef struct {
  Client *c;
  guint want;
} WantDatagrams;

static gboolean
has_datagrams (gpointer data)
{
  WantDatagrams *w = data;

  return w->c->datagram_log->len >= w->want;
}

gboolean
client_wait_datagrams (Client *c, guint n, guint ms)
{
  WantDatagrams w = { c, n };

  return spin (has_datagrams, &w, ms);
}
