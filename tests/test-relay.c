/* wzp-relay, the real binary on 127.0.0.1 with a free port, driven by
 * clients built on wzp-quic: registration, direct calls, MediaPathReport
 * forwarding, rooms, signatures, limits, bad input, metrics, shutdown. */
#include <signal.h>
#include <string.h>
#include <sys/prctl.h>
#include <gio/gio.h>
#include <glib/gstdio.h>
#include <json-glib/json-glib.h>
#include <libsoup/soup.h>

#include "wzp-identity.h"
#include "wzp-quic.h"
#include "wzp-wire.h"

static const gchar *relay_path;

#include "relay-fixture.h"

#include "relay-client.h"

static WzpSignal *
offer_msg (Client *from, Client *to, const gchar *call_id, gboolean sign)
{
  WzpSignal *m = wzp_signal_new (WZP_SIGNAL_DIRECT_CALL_OFFER);
  WzpDirectCallOffer *o = &m->direct_call_offer;

  o->caller_fingerprint = g_strdup (wzp_identity_get_fingerprint (from->id));
  o->target_fingerprint = g_strdup (wzp_identity_get_fingerprint (to->id));
  o->call_id = g_strdup (call_id);
  memcpy (o->identity_pub, wzp_identity_get_public_key (from->id), 32);
  o->supported_profiles = g_array_new (FALSE, FALSE, sizeof (WzpQualityProfile));
  g_array_append_val (o->supported_profiles, WZP_PROFILE_GOOD);
  o->caller_reflexive_addr = g_strdup ("203.0.113.7:40001");
  o->caller_local_addrs = g_ptr_array_new_with_free_func (g_free);
  g_ptr_array_add (o->caller_local_addrs, g_strdup ("192.168.1.20:40001"));
  if (sign) {
    g_autoptr (GByteArray) b = g_byte_array_new ();
    guint8 sig[64];
    g_byte_array_append (b, o->ephemeral_pub, 32);
    g_byte_array_append (b, (const guint8 *) o->target_fingerprint, strlen (o->target_fingerprint));
    g_byte_array_append (b, (const guint8 *) call_id, strlen (call_id));
    wzp_identity_sign (from->id, b->data, b->len, sig);
    o->signature = g_bytes_new (sig, sizeof sig);
  }
  return m;
}

static WzpSignal *
answer_msg (const gchar *call_id, WzpCallAcceptMode mode)
{
  WzpSignal *m = wzp_signal_new (WZP_SIGNAL_DIRECT_CALL_ANSWER);

  m->direct_call_answer.call_id = g_strdup (call_id);
  m->direct_call_answer.accept_mode = mode;
  m->direct_call_answer.chosen_profile = g_memdup2 (&WZP_PROFILE_GOOD, sizeof WZP_PROFILE_GOOD);
  m->direct_call_answer.callee_reflexive_addr = g_strdup ("198.51.100.9:51820");
  m->direct_call_answer.callee_local_addrs = g_ptr_array_new_with_free_func (g_free);
  g_ptr_array_add (m->direct_call_answer.callee_local_addrs, g_strdup ("10.0.0.5:51820"));
  return m;
}

/* A calls B; both end with CallSetup. */
static void
set_up_call (Relay *r, Client *a, Client *b, const gchar *call_id)
{
  g_autoptr (WzpSignal) offer = NULL, ringing = NULL, answer = NULL, setup_a = NULL, setup_b = NULL;
  g_autofree gchar *room = g_strconcat ("call-", call_id, NULL);

  client_send (a, offer_msg (a, b, call_id, FALSE));
  offer = client_expect (b, WZP_SIGNAL_DIRECT_CALL_OFFER);
  g_assert_cmpstr (offer->direct_call_offer.caller_fingerprint, ==, wzp_identity_get_fingerprint (a->id));
  g_assert_cmpstr (offer->direct_call_offer.caller_reflexive_addr, ==, "203.0.113.7:40001");
  ringing = client_expect (a, WZP_SIGNAL_CALL_RINGING);
  g_assert_cmpstr (ringing->call_ringing.call_id, ==, call_id);
  client_send (b, answer_msg (call_id, WZP_CALL_ACCEPT_TRUSTED));
  answer = client_expect (a, WZP_SIGNAL_DIRECT_CALL_ANSWER);
  g_assert_cmpint (answer->direct_call_answer.accept_mode, ==, WZP_CALL_ACCEPT_TRUSTED);
  setup_a = client_expect (a, WZP_SIGNAL_CALL_SETUP);
  setup_b = client_expect (b, WZP_SIGNAL_CALL_SETUP);
  /* cross-wired: each side gets the other's addresses */
  g_assert_cmpstr (setup_a->call_setup.room, ==, room);
  g_assert_cmpstr (setup_a->call_setup.relay_addr, ==, r->addr);
  g_assert_cmpstr (setup_a->call_setup.peer_direct_addr, ==, "198.51.100.9:51820");
  g_assert_cmpstr (g_ptr_array_index (setup_a->call_setup.peer_local_addrs, 0), ==, "10.0.0.5:51820");
  g_assert_cmpstr (setup_b->call_setup.room, ==, room);
  g_assert_cmpstr (setup_b->call_setup.peer_direct_addr, ==, "203.0.113.7:40001");
  g_assert_cmpstr (g_ptr_array_index (setup_b->call_setup.peer_local_addrs, 0), ==, "192.168.1.20:40001");
}

static gchar *
fetch_metrics (Relay *r)
{
  return relay_fetch_metrics (r);
}

static guint64
metric_value (const gchar *text, const gchar *name)
{
  g_autofree gchar *needle = g_strdup_printf ("\n%s ", name);
  const gchar *at = strstr (text, needle);

  g_assert_nonnull (at);
  return g_ascii_strtoull (at + strlen (needle), NULL, 10);
}

/* ---- tests ------------------------------------------------------------------- */

static void
test_direct_call (void)
{
  Relay *r = relay_start (relay_path, NULL);
  Client *a = client_new (0x2a), *b = client_new (0x11), *x = client_new (0x33);
  g_autoptr (WzpSignal) rep = NULL, h = NULL, stray = NULL;
  g_autofree gchar *metrics = NULL;

  client_register (a, r);
  client_register (b, r);
  client_register (x, r);
  set_up_call (r, a, b, "18a2b3c4d5e6f708");

  /* reports cross between the two parties, unchanged */
  client_send (a, wzp_signal_new_media_path_report ("18a2b3c4d5e6f708", TRUE, "Direct"));
  rep = client_expect (b, WZP_SIGNAL_MEDIA_PATH_REPORT);
  g_assert_true (rep->media_path_report.direct_ok);
  g_assert_cmpstr (rep->media_path_report.race_winner, ==, "Direct");
  g_clear_pointer (&rep, wzp_signal_free);
  client_send (b, wzp_signal_new_media_path_report ("18a2b3c4d5e6f708", FALSE, "Relay"));
  rep = client_expect (a, WZP_SIGNAL_MEDIA_PATH_REPORT);
  g_assert_false (rep->media_path_report.direct_ok);
  /* a third party's report for that call goes nowhere */
  client_send (x, wzp_signal_new_media_path_report ("18a2b3c4d5e6f708", TRUE, "Direct"));
  stray = client_take (b, WZP_SIGNAL_MEDIA_PATH_REPORT, 300);
  g_assert_null (stray);
  g_assert_null (client_take (a, WZP_SIGNAL_MEDIA_PATH_REPORT, 10));
  metrics = fetch_metrics (r);
  g_assert_cmpuint (metric_value (metrics, "wzp_relay_path_reports_forwarded_total"), ==, 2);
  g_assert_nonnull (strstr (metrics, "wzp_relay_drops_total{reason=\"path_report_not_a_party\"} 1"));
  g_assert_nonnull (strstr (metrics, "wzp_relay_calls{state=\"active\"} 1"));

  /* targeted hangup reaches the other party with its call_id */
  client_send (a, wzp_signal_new_hangup (WZP_HANGUP_NORMAL, "18a2b3c4d5e6f708"));
  h = client_expect (b, WZP_SIGNAL_HANGUP);
  g_assert_cmpstr (h->hangup.call_id, ==, "18a2b3c4d5e6f708");
  client_free (a);
  client_free (b);
  client_free (x);
  relay_stop (r);
}

static void
test_disconnect_reject_unreachable (void)
{
  Relay *r = relay_start (relay_path, NULL);
  Client *a = client_new (0x2a), *b = client_new (0x11), *nobody = client_new (0x44);
  g_autoptr (WzpSignal) h1 = NULL, h2 = NULL, h3 = NULL, offer = NULL;

  client_register (a, r);
  client_register (b, r);
  /* disconnect ends that party's calls */
  set_up_call (r, a, b, "c1");
  wzp_connection_close (a->conn, 0, "gone");
  h1 = client_expect (b, WZP_SIGNAL_HANGUP);
  g_assert_cmpstr (h1->hangup.call_id, ==, "c1");

  /* reject */
  client_register (a, r);
  client_send (a, offer_msg (a, b, "c2", FALSE));
  offer = client_expect (b, WZP_SIGNAL_DIRECT_CALL_OFFER);
  wzp_signal_free (client_expect (a, WZP_SIGNAL_CALL_RINGING));
  client_send (b, answer_msg ("c2", WZP_CALL_ACCEPT_REJECT));
  h2 = client_expect (a, WZP_SIGNAL_HANGUP);
  g_assert_cmpstr (h2->hangup.call_id, ==, "c2");
  g_assert_cmpint (h2->hangup.reason, ==, WZP_HANGUP_DECLINED);

  /* a target nobody registered */
  client_send (a, offer_msg (a, nobody, "c3", FALSE));
  h3 = client_expect (a, WZP_SIGNAL_HANGUP);
  g_assert_cmpstr (h3->hangup.call_id, ==, "c3");
  g_assert_null (client_take (a, WZP_SIGNAL_CALL_RINGING, 100));
  client_free (a);
  client_free (b);
  client_free (nobody);
  relay_stop (r);
}

static void
test_ring_timeout (void)
{
  const gchar *args[] = { "--ring-timeout-ms", "400", NULL };
  Relay *r = relay_start (relay_path, args);
  Client *a = client_new (0x2a), *b = client_new (0x11);
  g_autoptr (WzpSignal) offer = NULL, ha = NULL, hb = NULL;
  gint64 t0;

  client_register (a, r);
  client_register (b, r);
  t0 = g_get_monotonic_time ();
  client_send (a, offer_msg (a, b, "ring1", FALSE));
  offer = client_expect (b, WZP_SIGNAL_DIRECT_CALL_OFFER);
  ha = client_expect (a, WZP_SIGNAL_HANGUP);
  hb = client_expect (b, WZP_SIGNAL_HANGUP);
  g_assert_cmpint (ha->hangup.reason, ==, WZP_HANGUP_TIMEOUT);
  g_assert_cmpstr (hb->hangup.call_id, ==, "ring1");
  g_assert_cmpint (g_get_monotonic_time () - t0, >=, 350000);
  /* and a late answer does nothing */
  client_send (b, answer_msg ("ring1", WZP_CALL_ACCEPT_GENERIC));
  g_assert_null (client_take (a, WZP_SIGNAL_CALL_SETUP, 300));
  client_free (a);
  client_free (b);
  relay_stop (r);
}

static void
test_signatures_and_reregistration (void)
{
  Relay *r = relay_start (relay_path, NULL);
  Client *a = client_new (0x2a), *b = client_new (0x11), *a2 = client_new (0x2a);
  g_autoptr (WzpSignal) ack = NULL, ack2 = NULL, offer = NULL, h = NULL, ok = NULL;

  /* a forged registration signature is refused and the connection closed */
  client_connect (a, r, "_signal");
  client_send (a, register_msg (a, TRUE, TRUE));
  ack = client_expect (a, WZP_SIGNAL_REGISTER_PRESENCE_ACK);
  g_assert_false (ack->register_presence_ack.success);
  g_assert_nonnull (ack->register_presence_ack.error);
  g_assert_true (spin (c_is_closed, a, 5000));
  /* a valid signature is accepted */
  client_connect (a, r, "_signal");
  client_send (a, register_msg (a, TRUE, FALSE));
  ack2 = client_expect (a, WZP_SIGNAL_REGISTER_PRESENCE_ACK);
  g_assert_true (ack2->register_presence_ack.success);
  client_register (b, r);

  /* a forged offer signature: refused, never forwarded */
  {
    WzpSignal *bad = offer_msg (a, b, "s1", TRUE);
    guint8 *sig = (guint8 *) g_bytes_get_data (bad->direct_call_offer.signature, NULL);
    sig[5] ^= 1;
    client_send (a, bad);
  }
  h = client_expect (a, WZP_SIGNAL_HANGUP);
  g_assert_cmpint (h->hangup.reason, ==, WZP_HANGUP_ERROR);
  g_assert_null (client_take (b, WZP_SIGNAL_DIRECT_CALL_OFFER, 200));
  /* a properly signed one goes through */
  client_send (a, offer_msg (a, b, "s2", TRUE));
  ok = client_expect (b, WZP_SIGNAL_DIRECT_CALL_OFFER);
  g_assert_cmpstr (ok->direct_call_offer.call_id, ==, "s2");

  /* re-registration race: the old connection's end leaves the new one */
  client_register (a2, r);
  wzp_connection_close (a->conn, 0, "old");
  settle (300);
  client_send (b, offer_msg (b, a2, "s3", FALSE));
  offer = client_expect (a2, WZP_SIGNAL_DIRECT_CALL_OFFER);
  g_assert_cmpstr (offer->direct_call_offer.call_id, ==, "s3");
  client_free (a);
  client_free (a2);
  client_free (b);
  relay_stop (r);
}

static void
test_reflect_ping_and_strays (void)
{
  Relay *r = relay_start (relay_path, NULL);
  Client *a = client_new (0x2a);
  g_autoptr (WzpSignal) refl = NULL, pong = NULL;
  g_autoptr (GInetSocketAddress) local = NULL;
  g_autofree gchar *mine = NULL;
  WzpSignal *ping;

  client_register (a, r);
  client_send (a, wzp_signal_new (WZP_SIGNAL_REFLECT));
  refl = client_expect (a, WZP_SIGNAL_REFLECT_RESPONSE);
  local = wzp_endpoint_get_local_address (a->ep);
  mine = wzp_socket_address_to_string (G_SOCKET_ADDRESS (local));
  g_assert_cmpstr (refl->reflect_response.observed_addr, ==, mine);
  ping = wzp_signal_new (WZP_SIGNAL_PING);
  ping->ping.timestamp_ms = 1700000000000;
  client_send (a, ping);
  pong = client_expect (a, WZP_SIGNAL_PONG);
  g_assert_cmpuint (pong->pong.timestamp_ms, ==, 1700000000000);
  client_free (a);
  relay_stop (r);
}

static void
send_media (Client *c, guint8 tag, guint n)
{
  for (guint i = 0; i < n; i++) {
    guint8 pkt[12 + 80];
    WzpMediaHeader h = { .codec = WZP_CODEC_OPUS24K, .seq = (guint16) i, .timestamp = i * 20 };
    guint8 payload[80];
    memset (payload, tag, sizeof payload);
    wzp_media_packet_write (&h, payload, sizeof payload, NULL, pkt, sizeof pkt);
    g_assert_true (wzp_connection_send_datagram (c->conn, pkt, sizeof pkt, NULL));
  }
}

typedef struct {
  Client **cs;
  guint n, want;
} AllGot;

static gboolean
all_got (gpointer data)
{
  AllGot *w = data;

  for (guint i = 0; i < w->n; i++)
    if (w->cs[i]->datagrams < w->want)
      return FALSE;
  return TRUE;
}

static void
test_room_three_members (void)
{
  Relay *r = relay_start (relay_path, NULL);
  Client *m[3] = { client_new (1), client_new (2), client_new (3) };
  g_autoptr (WzpSignal) last = NULL;
  AllGot w = { m, 3, 40 };

  for (guint i = 0; i < 3; i++)
    join_room (m[i], r, "StandUp");         /* room names are lowercased */
  /* the last update everyone got lists all three, with aliases */
  for (guint i = 0; i < 3; i++) {
    WzpSignal *u, *newest = NULL;
    while ((u = client_take (m[i], WZP_SIGNAL_ROOM_UPDATE, i == 0 ? 1000 : 200)) != NULL) {
      wzp_signal_free (newest);
      newest = u;
    }
    g_assert_nonnull (newest);
    g_assert_cmpuint (newest->room_update.count, ==, 3);
    g_assert_cmpuint (newest->room_update.participants->len, ==, 3);
    g_assert_cmpstr (((WzpRoomParticipant *) g_ptr_array_index (newest->room_update.participants, 2))->alias,
                     ==, "member-03");
    g_assert_null (((WzpRoomParticipant *) g_ptr_array_index (newest->room_update.participants, 0))->relay_label);
    wzp_signal_free (newest);
  }
  for (guint i = 0; i < 3; i++)
    send_media (m[i], (guint8) (i + 1), 20);
  g_assert_true (spin (all_got, &w, 5000));
  settle (200);
  for (guint i = 0; i < 3; i++) {
    g_assert_cmpuint (m[i]->datagrams, ==, 40);
    g_assert_cmpuint (GPOINTER_TO_UINT (g_hash_table_lookup (m[i]->datagram_from, GUINT_TO_POINTER (i + 1))), ==, 0);
    for (guint j = 0; j < 3; j++)
      if (j != i)
        g_assert_cmpuint (GPOINTER_TO_UINT (g_hash_table_lookup (m[i]->datagram_from, GUINT_TO_POINTER (j + 1))), ==, 20);
  }
  /* a member leaves: the others get an update with two */
  wzp_connection_close (m[2]->conn, 0, "bye");
  last = client_expect (m[0], WZP_SIGNAL_ROOM_UPDATE);
  g_assert_cmpuint (last->room_update.count, ==, 2);
  for (guint i = 0; i < 3; i++)
    client_free (m[i]);
  relay_stop (r);
}

static void
test_call_room_acl (void)
{
  Relay *r = relay_start (relay_path, NULL);
  Client *a = client_new (0x2a), *b = client_new (0x11), *x = client_new (0x33);
  Client *ma = client_new (0x2a), *mb = client_new (0x11), *again = client_new (0x2a);
  AllGot w;
  Client *pair[2] = { ma, mb };

  client_register (a, r);
  client_register (b, r);
  set_up_call (r, a, b, "aclcall");
  /* an outsider cannot join the call's room */
  client_connect (x, r, "call-aclcall");
  client_send (x, call_offer_msg (x));
  g_assert_true (spin (c_is_closed, x, 5000));
  g_assert_nonnull (strstr (x->close_error->message, "not-a-party"));
  /* the two parties can, and media flows between them */
  join_room (ma, r, "call-aclcall");
  join_room (mb, r, "call-aclcall");
  send_media (ma, 1, 10);
  send_media (mb, 2, 10);
  w.cs = pair;
  w.n = 2;
  w.want = 10;
  g_assert_true (spin (all_got, &w, 5000));
  /* a third connection, even of a party, finds the room full */
  client_connect (again, r, "call-aclcall");
  client_send (again, call_offer_msg (again));
  g_assert_true (spin (c_is_closed, again, 5000));
  g_assert_nonnull (strstr (again->close_error->message, "room-full"));
  /* an unknown call's room is refused too */
  client_connect (x, r, "call-nosuchcall");
  client_send (x, call_offer_msg (x));
  g_assert_true (spin (c_is_closed, x, 5000));
  client_free (a);
  client_free (b);
  client_free (x);
  client_free (ma);
  client_free (mb);
  client_free (again);
  relay_stop (r);
}

static void
test_bad_names_and_timeouts (void)
{
  const gchar *args[] = { "--register-timeout-ms", "300", "--handshake-timeout-ms", "300", NULL };
  Relay *r = relay_start (relay_path, args);
  Client *c = client_new (5);
  const gchar *bad[] = { "123", "-room", "room-", "a..b" };

  for (guint i = 0; i < G_N_ELEMENTS (bad); i++) {
    client_connect (c, r, bad[i]);
    g_assert_true (spin (c_is_closed, c, 5000));
    g_assert_nonnull (strstr (c->close_error->message, "bad-room-name"));
  }
  /* a _signal connection that never registers, a room that never offers */
  client_connect (c, r, "_signal");
  g_assert_true (spin (c_is_closed, c, 3000));
  g_assert_nonnull (strstr (c->close_error->message, "register-timeout"));
  client_connect (c, r, "quiet_room");
  g_assert_true (spin (c_is_closed, c, 3000));
  g_assert_nonnull (strstr (c->close_error->message, "handshake-timeout"));
  /* a bad CallOffer signature */
  client_connect (c, r, "room1");
  {
    WzpSignal *m = call_offer_msg (c);
    guint8 *sig = (guint8 *) g_bytes_get_data (m->call_offer.signature, NULL);
    sig[0] ^= 0x80;
    client_send (c, m);
  }
  g_assert_true (spin (c_is_closed, c, 3000));
  g_assert_nonnull (strstr (c->close_error->message, "bad-signature"));
  client_free (c);
  relay_stop (r);
}

/* Garbage at the relay socket and bad signals on a _signal connection while a
 * room call runs: the call loses nothing, the relay stays up. */
static void
test_bad_input_during_call (void)
{
  Relay *r = relay_start (relay_path, NULL);
  Client *ma = client_new (1), *mb = client_new (2), *evil = client_new (9);
  Client *pair[2] = { ma, mb };
  g_autoptr (GSocket) raw = g_socket_new (G_SOCKET_FAMILY_IPV4, G_SOCKET_TYPE_DATAGRAM,
                                          G_SOCKET_PROTOCOL_UDP, NULL);
  g_autoptr (GRand) rnd = g_rand_new_with_seed (5);
  g_autofree gchar *metrics = NULL;
  AllGot w = { pair, 2, 1000 };
  guint8 junk[1300];

  join_room (ma, r, "call_under_fire");
  join_room (mb, r, "call_under_fire");
  client_register (evil, r);
  for (guint i = 0; i < 10000; i++) {
    gsize len = (gsize) g_rand_int_range (rnd, 0, sizeof junk);
    for (gsize j = 0; j < len; j++)
      junk[j] = (guint8) g_rand_int (rnd);
    g_socket_send_to (raw, r->sockaddr, (const gchar *) junk, len, NULL, NULL);
    if (i % 10 == 0) {
      send_media (ma, 1, 1);
      send_media (mb, 2, 1);
    }
    if (i % 10 == 5) {
      g_autoptr (GBytes) f = g_bytes_new_static ("\0\0\0\x05{\"Pi", 9);
      static const gchar *const bad[] = { "{\"Nope\":{}}", "{\"Ping\":{\"timestamp_ms\":-4}}", "[[[[" };
      const gchar *j = bad[(i / 10) % 3];
      gsize l = strlen (j);
      guint8 *fr = g_malloc (l + 4);
      fr[0] = 0; fr[1] = 0; fr[2] = (guint8) (l >> 8); fr[3] = (guint8) l;
      memcpy (fr + 4, j, l);
      {
        g_autoptr (GBytes) fb = g_bytes_new_take (fr, l + 4);
        wzp_connection_send_frame (evil->conn, (i / 10) % 2 ? fb : f, NULL);
      }
    }
    if (i % 50 == 0)
      g_main_context_iteration (NULL, FALSE);
  }
  g_assert_true (spin (all_got, &w, 10000));
  settle (200);
  g_assert_cmpuint (ma->datagrams, ==, 1000);
  g_assert_cmpuint (mb->datagrams, ==, 1000);
  g_assert_false (ma->closed);
  metrics = fetch_metrics (r);
  g_assert_cmpuint (metric_value (metrics, "wzp_relay_packets_forwarded_total"), ==, 2000);
  client_free (ma);
  client_free (mb);
  client_free (evil);
  relay_stop (r);
}

/* A real Prometheus parser reads @metrics. */
static void
check_prometheus (const gchar *metrics)
{
  g_autoptr (GSubprocess) check = g_subprocess_new (G_SUBPROCESS_FLAGS_STDIN_PIPE | G_SUBPROCESS_FLAGS_STDOUT_PIPE,
      NULL, "/usr/bin/python3", "-c",
      "import sys\n"
      "from prometheus_client.parser import text_string_to_metric_families\n"
      "fams = list(text_string_to_metric_families(sys.stdin.read()))\n"
      "print('parsed', len(fams), sum(len(f.samples) for f in fams))\n", NULL);
  g_autofree gchar *verdict = NULL;

  g_subprocess_communicate_utf8 (check, metrics, NULL, &verdict, NULL, NULL);
  g_assert_true (g_subprocess_get_successful (check));
  g_assert_true (g_str_has_prefix (verdict, "parsed "));
  g_test_message ("metrics: %s", verdict);
}

/* Scrapes and health checks on connections of their own leave nothing
 * behind: libsoup 3.2's own listener kept every socket it accepted (2.3 KB
 * of heap per scrape here, 2.8 MB over this test's 1,200). The gauge still
 * moves with the allocator's caches, by less and less per scrape: over 1,200
 * scrapes +23 to +49 KB in ten runs, over 4,800 +37 to +64 KB; valgrind
 * finds the same bytes reachable after 50 and after 500 requests. Hence a
 * bound of 200 bytes a scrape, five times the most seen. */
#if defined(__GLIBC__) && !defined(__SANITIZE_ADDRESS__)
#define SCRAPES 1200
static void
test_metrics_scrapes_leave_nothing (void)
{
  Relay *r = relay_start (relay_path, NULL);
  g_autofree gchar *first = NULL, *last = NULL;
  gint64 growth;

  for (guint i = 0; i < 100; i++)
    g_free (fetch_metrics (r));
  first = fetch_metrics (r);
  for (guint i = 0; i < SCRAPES; i++)
    g_free (fetch_metrics (r));
  last = fetch_metrics (r);
  growth = (gint64) metric_value (last, "wzp_relay_heap_bytes") -
      (gint64) metric_value (first, "wzp_relay_heap_bytes");
  g_test_message ("heap after %u scrapes: %+" G_GINT64_FORMAT " bytes", SCRAPES, growth);
  g_assert_cmpint (growth, <, SCRAPES * 200);
  relay_stop (r);
}
#endif

static void
test_metrics_format_and_shutdown (void)
{
  Relay *r = relay_start (relay_path, NULL);
  Client *a = client_new (0x2a), *b = client_new (0x11);
  g_autofree gchar *metrics = NULL, *before = fetch_metrics (r);
  g_autoptr (WzpSignal) h = NULL;
  gint64 t0;

  client_register (a, r);
  client_register (b, r);
  set_up_call (r, a, b, "shutdowncall");
  metrics = fetch_metrics (r);
  g_assert_cmpuint (metric_value (metrics, "wzp_relay_registered_identities"), ==, 2);
  /* reads: at least one per handshake flight; at most one per datagram */
  g_assert_cmpuint (metric_value (metrics, "wzp_relay_udp_reads_total"), >, 0);
  g_assert_cmpuint (metric_value (metrics, "wzp_relay_udp_reads_total"), <=,
                    metric_value (metrics, "wzp_relay_udp_packets_received_total"));
#if defined(__GLIBC__) && !defined(__SANITIZE_ADDRESS__)
  /* the heap gauge (not exported under AddressSanitizer) moves with what the relay holds: two more connections
   * (with their QUIC state), two registrations, a call */
  g_assert_cmpuint (metric_value (before, "wzp_relay_heap_bytes"), >, 0);
  g_assert_cmpuint (metric_value (metrics, "wzp_relay_heap_bytes"), >,
                    metric_value (before, "wzp_relay_heap_bytes"));
#endif
  check_prometheus (metrics);

  /* SIGTERM: parties hear Hangup, the relay exits 0 within 2 s */
  t0 = g_get_monotonic_time ();
  g_subprocess_send_signal (r->proc, SIGTERM);
  h = client_expect (a, WZP_SIGNAL_HANGUP);
  g_assert_cmpstr (h->hangup.call_id, ==, "shutdowncall");
  g_assert_true (spin (c_is_closed, b, 3000));
  g_assert_nonnull (strstr (b->close_error->message, "shutdown"));
  relay_stop (r);
  g_assert_cmpint (g_get_monotonic_time () - t0, <, 2 * G_USEC_PER_SEC);
  client_free (a);
  client_free (b);
}


static void
test_ipv6 (void)
{
  const gchar *args[] = { "--listen", "[::1]:0", NULL };
  g_autoptr (GSocket) probe = g_socket_new (G_SOCKET_FAMILY_IPV6, G_SOCKET_TYPE_DATAGRAM,
                                            G_SOCKET_PROTOCOL_UDP, NULL);
  g_autoptr (GSocketAddress) v6 = wzp_socket_address_parse ("[::1]:0", NULL);
  g_autoptr (WzpSignal) refl = NULL, setup = NULL;
  Relay *r;
  Client *a, *b;

  if (probe == NULL || !g_socket_bind (probe, v6, FALSE, NULL)) {
    g_test_skip ("no IPv6 loopback on this machine");
    return;
  }
  r = relay_start (relay_path, args);
  g_assert_true (g_str_has_prefix (r->addr, "[::1]:"));
  a = client_new (0x2a);
  b = client_new (0x11);
  g_clear_object (&a->ep);
  g_clear_object (&b->ep);
  a->ep = wzp_endpoint_new (v6, NULL, NULL, NULL);
  b->ep = wzp_endpoint_new (v6, NULL, NULL, NULL);
  client_register (a, r);
  client_register (b, r);
  client_send (a, wzp_signal_new (WZP_SIGNAL_REFLECT));
  refl = client_expect (a, WZP_SIGNAL_REFLECT_RESPONSE);
  g_assert_true (g_str_has_prefix (refl->reflect_response.observed_addr, "[::1]:"));
  set_up_call (r, a, b, "v6call");
  client_free (a);
  client_free (b);
  relay_stop (r);
}

/* ---- auth against a stub auth server in this process ----------------- */

static GPtrArray *paused;

static void
auth_handler (SoupServer *server, SoupServerMessage *msg, const char *path, GHashTable *query,
              gpointer data)
{
  SoupMessageBody *body = soup_server_message_get_request_body (msg);
  g_autoptr (GBytes) bytes = soup_message_body_flatten (body);
  g_autoptr (JsonParser) parser = json_parser_new ();
  const gchar *token = "";
  const gchar *reply;

  if (json_parser_load_from_data (parser, g_bytes_get_data (bytes, NULL), (gssize) g_bytes_get_size (bytes), NULL))
    token = json_object_get_string_member (json_node_get_object (json_parser_get_root (parser)), "token");
  if (g_str_has_prefix (token, "good-")) {
    g_autofree gchar *r = g_strdup_printf ("{\"valid\":true,\"fingerprint\":\"auth-%s\","
                                           "\"alias\":\"Auth User\",\"eth_address\":\"0x1\"}", token + 5);
    soup_server_message_set_status (msg, 200, NULL);
    soup_server_message_set_response (msg, "application/json", SOUP_MEMORY_COPY, r, strlen (r));
    return;
  }
  if (strcmp (token, "slow") == 0) {
    soup_server_message_pause (msg);
    g_ptr_array_add (paused, g_object_ref (msg));
    return;
  }
  reply = strcmp (token, "error") == 0 ? "{}" : "{\"valid\":false}";
  soup_server_message_set_status (msg, strcmp (token, "error") == 0 ? 500 : 200, NULL);
  soup_server_message_set_response (msg, "application/json", SOUP_MEMORY_COPY, reply, strlen (reply));
}

static WzpSignal *
token_msg (const gchar *token)
{
  WzpSignal *m = wzp_signal_new (WZP_SIGNAL_AUTH_TOKEN);
  m->auth_token.token = g_strdup (token);
  return m;
}

static void
test_auth (void)
{
  g_autoptr (SoupServer) stub = soup_server_new (NULL, NULL);
  g_autoptr (GSocketAddress) any = wzp_socket_address_parse ("127.0.0.1:0", NULL);
  g_autofree gchar *url = NULL, *metrics = NULL;
  GSList *uris;
  Relay *r;
  Client *a = client_new (0x2a), *b = client_new (0x11), *bad = client_new (0x55), *m = client_new (0x66);
  g_autoptr (WzpSignal) ack = NULL, offer = NULL, answer = NULL, update = NULL;
  const gchar *args[3] = { "--auth-url", NULL, NULL };
  gint64 t0;

  paused = g_ptr_array_new_with_free_func (g_object_unref);
  soup_server_add_handler (stub, "/v1/auth/validate", auth_handler, NULL, NULL);
  g_assert_true (soup_server_listen (stub, any, 0, NULL));
  uris = soup_server_get_uris (stub);
  {
    g_autofree gchar *base = g_uri_to_string (uris->data);
    url = g_strdup_printf ("%sv1/auth/validate", base);
  }
  g_slist_free_full (uris, (GDestroyNotify) g_uri_unref);
  args[1] = url;
  r = relay_start (relay_path, args);

  /* a valid token: the auth server's fingerprint is the identity, and the
   * client need not wait for the verdict before registering */
  client_connect (a, r, "_signal");
  client_send (a, token_msg ("good-alice"));
  client_send (a, register_msg (a, FALSE, FALSE));
  ack = client_expect (a, WZP_SIGNAL_REGISTER_PRESENCE_ACK);
  g_assert_true (ack->register_presence_ack.success);
  client_connect (b, r, "_signal");
  client_send (b, token_msg ("good-bob"));
  client_send (b, register_msg (b, FALSE, FALSE));
  wzp_signal_free (client_expect (b, WZP_SIGNAL_REGISTER_PRESENCE_ACK));
  {
    WzpSignal *o = offer_msg (b, a, "authcall", FALSE);
    g_free (o->direct_call_offer.caller_fingerprint);
    o->direct_call_offer.caller_fingerprint = g_strdup ("auth-bob");
    g_free (o->direct_call_offer.target_fingerprint);
    o->direct_call_offer.target_fingerprint = g_strdup ("auth-alice");
    client_send (b, o);
  }
  offer = client_expect (a, WZP_SIGNAL_DIRECT_CALL_OFFER);
  g_assert_cmpstr (offer->direct_call_offer.caller_fingerprint, ==, "auth-bob");

  /* rooms too: the participant list shows the auth identity */
  client_connect (m, r, "authroom");
  client_send (m, token_msg ("good-carol"));
  client_send (m, call_offer_msg (m));
  answer = client_expect (m, WZP_SIGNAL_CALL_ANSWER);
  update = client_expect (m, WZP_SIGNAL_ROOM_UPDATE);
  g_assert_cmpstr (((WzpRoomParticipant *) g_ptr_array_index (update->room_update.participants, 0))->fingerprint,
                   ==, "auth-carol");

  /* refused, server error, missing token: closed */
  client_connect (bad, r, "_signal");
  client_send (bad, token_msg ("wrong"));
  g_assert_true (spin (c_is_closed, bad, 5000));
  g_assert_nonnull (strstr (bad->close_error->message, "auth-failed"));
  client_connect (bad, r, "_signal");
  client_send (bad, token_msg ("error"));
  g_assert_true (spin (c_is_closed, bad, 5000));
  client_connect (bad, r, "_signal");
  client_send (bad, register_msg (bad, FALSE, FALSE));
  g_assert_true (spin (c_is_closed, bad, 5000));
  g_assert_nonnull (strstr (bad->close_error->message, "expected AuthToken"));

  /* an auth server that does not answer: refused after its 5 s timeout */
  t0 = g_get_monotonic_time ();
  client_connect (bad, r, "_signal");
  client_send (bad, token_msg ("slow"));
  g_assert_true (spin (c_is_closed, bad, 9000));
  g_assert_nonnull (strstr (bad->close_error->message, "auth-failed"));
  g_assert_cmpint (g_get_monotonic_time () - t0, >=, 4500000);
  g_assert_cmpint (g_get_monotonic_time () - t0, <, 8000000);

  metrics = fetch_metrics (r);
  g_assert_nonnull (strstr (metrics, "wzp_relay_auth_attempts_total{result=\"ok\"} 3"));
  g_assert_nonnull (strstr (metrics, "wzp_relay_auth_attempts_total{result=\"fail\"} 4"));
  for (guint i = 0; i < paused->len; i++) {
    SoupServerMessage *msg = g_ptr_array_index (paused, i);
    soup_server_message_set_status (msg, 504, NULL);
    soup_server_message_unpause (msg);
  }
  settle (100);
  g_ptr_array_unref (paused);
  client_free (a);
  client_free (b);
  client_free (bad);
  client_free (m);
  relay_stop (r);
  soup_server_disconnect (stub);
}

/* A federated relay floods a global room with 5,000 datagrams/s: the relay
 * passes at most 500/s into the room, and a call in another room on the
 * same relay loses nothing meanwhile. The flooding "relay" is this test: an
 * endpoint with its own TLS identity, trusted by the relay's config. */
static void
test_federation_flood (void)
{
  Client *fed = client_new (0x61), *listener = client_new (0x62), *x = client_new (0x63),
         *y = client_new (0x64);
  guint8 tls_seed[32];
  g_autofree gchar *dir = g_dir_make_tmp ("wzp-flood-XXXXXX", NULL);
  g_autofree gchar *conf = g_build_filename (dir, "relay.conf", NULL);
  g_autofree gchar *text = NULL, *metrics = NULL;
  const gchar *extra[] = { "--config", conf, NULL };
  g_autoptr (WzpSignal) hello = wzp_signal_new (WZP_SIGNAL_FEDERATION_HELLO);
  guint8 tag[WZP_ROOM_HASH_SIZE];
  guint sent = 0, lobby;
  Relay *r;
  gint64 t0;

  memset (tls_seed, 0x65, sizeof tls_seed);
  g_assert_true (wzp_endpoint_listen (fed->ep, tls_seed, NULL));
  text = g_strdup_printf ("[trusted]\nfingerprints = %s\n[federation]\nglobal-rooms = lobby\n",
                          wzp_endpoint_get_fingerprint (fed->ep));
  g_assert_true (g_file_set_contents (conf, text, -1, NULL));
  r = relay_start (relay_path, extra);
  join_room (listener, r, "lobby");
  join_room (x, r, "quiet");
  join_room (y, r, "quiet");
  client_connect (fed, r, "_federation");
  hello->federation_hello.tls_fingerprint = g_strdup (wzp_endpoint_get_fingerprint (fed->ep));
  client_send (fed, g_steal_pointer (&hello));
  settle (300);
  g_assert_false (fed->closed);

  wzp_room_hash ("lobby", tag);
  t0 = g_get_monotonic_time ();
  for (guint step = 0; step < 200; step++) {         /* 2 s in 10 ms steps */
    for (guint k = 0; k < 50; k++) {                 /* 5,000/s */
      guint8 pkt[WZP_ROOM_HASH_SIZE + 12 + 40], payload[40];
      WzpMediaHeader h = { .codec = WZP_CODEC_OPUS24K, .seq = (guint16) sent, .timestamp = sent * 20 };
      memset (payload, 0x77, sizeof payload);
      payload[1] = (guint8) (sent >> 8);
      payload[2] = (guint8) sent;
      memcpy (pkt, tag, sizeof tag);
      wzp_media_packet_write (&h, payload, sizeof payload, NULL, pkt + sizeof tag, sizeof pkt - sizeof tag);
      if (wzp_connection_send_datagram (fed->conn, pkt, sizeof pkt, NULL))
        sent++;
    }
    /* the local call: one frame each way every 20 ms */
    if (step % 2 == 0) {
      send_media (x, 0x0a, 1);
      send_media (y, 0x0b, 1);
    }
    while (g_get_monotonic_time () < t0 + (gint64) (step + 1) * 10000)
      g_main_context_iteration (NULL, FALSE);
  }
  settle (500);
  lobby = listener->datagrams;
  metrics = relay_fetch_metrics (r);
  g_test_message ("flood: %u datagrams sent in %.1f s, %u reached the room; the call got %u and %u of 100",
                  sent, (g_get_monotonic_time () - t0) / 1e6, lobby, x->datagrams, y->datagrams);
  g_assert_cmpuint (sent, >=, 8000);
  /* 500 per second window: a 2.5 s run spans at most 3 windows */
  g_assert_cmpuint (lobby, >=, 500);
  g_assert_cmpuint (lobby, <=, 1500);
  g_assert_cmpuint (metric_value (metrics, "wzp_federation_datagrams_dropped_total"), >=, sent - 1500 - 100);
  g_assert_cmpuint (x->datagrams, ==, 100);
  g_assert_cmpuint (y->datagrams, ==, 100);
  client_free (fed);
  client_free (listener);
  client_free (x);
  client_free (y);
  relay_stop (r);
  g_unlink (conf);
  g_rmdir (dir);
}

/* A member whose trailers report 10 % loss drags the room to Degraded:
 * every member hears QualityDirective{DEGRADED, "weakest link: Degraded"};
 * five clean reports bring it back to Good (§5.3.4). */
static void
test_quality_directive (void)
{
  Relay *r = relay_start (relay_path, NULL);
  Client *m[2] = { client_new (0x81), client_new (0x82) };
  g_autoptr (WzpSignal) d0 = NULL, d1 = NULL, up = NULL;

  for (guint i = 0; i < 2; i++)
    join_room (m[i], r, "quality");
  for (guint n = 0; n < 5; n++) {
    guint8 pkt[12 + 40 + 4], payload[40] = { 0xf8 };
    WzpMediaHeader h = { .codec = WZP_CODEC_OPUS24K, .seq = (guint16) n, .timestamp = n * 20 };
    WzpQualityReport qr = wzp_quality_report_from_stats (n < 3 ? 10.0 : 0.0, 20, 5);
    gsize len = wzp_media_packet_write (&h, payload, sizeof payload, &qr, pkt, sizeof pkt);
    g_assert_cmpuint (len, ==, sizeof pkt);
    g_assert_true (wzp_connection_send_datagram (m[0]->conn, pkt, len, NULL));
    settle (20);
  }
  d0 = client_expect (m[0], WZP_SIGNAL_QUALITY_DIRECTIVE);
  d1 = client_expect (m[1], WZP_SIGNAL_QUALITY_DIRECTIVE);
  g_assert_cmpstr (d1->quality_directive.reason, ==, "weakest link: Degraded");
  g_assert_cmpint (d1->quality_directive.recommended_profile.codec, ==, WZP_CODEC_OPUS6K);
  g_assert_cmpint (d0->quality_directive.recommended_profile.frame_duration_ms, ==, 40);
  /* two clean reports so far; three more make five */
  for (guint n = 5; n < 8; n++) {
    guint8 pkt[12 + 40 + 4], payload[40] = { 0xf8 };
    WzpMediaHeader h = { .codec = WZP_CODEC_OPUS6K, .seq = (guint16) n, .timestamp = n * 40 };
    WzpQualityReport qr = wzp_quality_report_from_stats (0.0, 20, 5);
    gsize len = wzp_media_packet_write (&h, payload, sizeof payload, &qr, pkt, sizeof pkt);
    g_assert_true (wzp_connection_send_datagram (m[0]->conn, pkt, len, NULL));
    settle (20);
  }
  up = client_expect (m[1], WZP_SIGNAL_QUALITY_DIRECTIVE);
  g_assert_cmpstr (up->quality_directive.reason, ==, "weakest link: Good");
  g_assert_cmpint (up->quality_directive.recommended_profile.codec, ==, WZP_CODEC_OPUS24K);
  /* the member's last trailer as gauges; the silent member has none */
  {
    g_autofree gchar *metrics = relay_fetch_metrics (r);
    g_autofree gchar *rtt = g_strdup_printf ("wzp_relay_session_rtt_ms{room=\"quality\",fingerprint=\"%s\"}",
                                             wzp_identity_get_fingerprint (m[0]->id));
    g_autofree gchar *other = g_strdup_printf ("fingerprint=\"%s\"", wzp_identity_get_fingerprint (m[1]->id));
    g_assert_cmpuint (metric_value (metrics, rtt), ==, 20);
    g_assert_null (strstr (metrics, other));
    g_assert_cmpuint (metric_value (metrics, "wzp_relay_quality_directives_total"), ==, 2);
    check_prometheus (metrics);
  }
  for (guint i = 0; i < 2; i++)
    client_free (m[i]);
  relay_stop (r);
}

/* A relay that presents no TLS certificate (as upstream's do) is trusted by
 * upstream's rule — its hello names a trusted fingerprint — and counted as
 * unverified; with require-certificates it is refused. */
static void
test_federation_certificates (void)
{
  const gchar *fp = "3a:9f:00:11:22:33:44:55:66:77:88:99:aa:bb:cc:dd:ee:ff:00:11:22:33:44:55:66:77:88:99:aa:bb:cc:c1";
  g_autofree gchar *dir = g_dir_make_tmp ("wzp-certs-XXXXXX", NULL);
  g_autofree gchar *conf = g_build_filename (dir, "relay.conf", NULL);
  const gchar *extra[] = { "--config", conf, NULL };

  for (guint strict = 0; strict < 2; strict++) {
    g_autofree gchar *text = g_strdup_printf ("[trusted]\nfingerprints = %s\n[federation]\n"
                                              "require-certificates = %s\n", fp, strict ? "true" : "false");
    g_autoptr (WzpSignal) hello = wzp_signal_new (WZP_SIGNAL_FEDERATION_HELLO);
    g_autofree gchar *metrics = NULL;
    Client *c = client_new (0x91);
    Relay *r;

    g_assert_true (g_file_set_contents (conf, text, -1, NULL));
    r = relay_start (relay_path, extra);
    client_connect (c, r, "_federation");
    hello->federation_hello.tls_fingerprint = g_strdup (fp);
    client_send (c, g_steal_pointer (&hello));
    if (strict) {
      g_assert_true (spin (c_is_closed, c, 3000));
      g_assert_nonnull (strstr (c->close_error->message, "untrusted"));
    } else {
      settle (300);
      g_assert_false (c->closed);
    }
    metrics = relay_fetch_metrics (r);
    g_assert_cmpuint (metric_value (metrics, "wzp_federation_links_total{outcome=\"refused\"}"), ==, strict);
    g_assert_cmpuint (metric_value (metrics, "wzp_federation_links_total{outcome=\"unverified\"}"), ==, !strict);
    g_assert_cmpuint (metric_value (metrics, "wzp_federation_links_up"), ==, !strict);
    client_free (c);
    relay_stop (r);
  }
  g_unlink (conf);
  g_rmdir (dir);
}

static gchar *
http_get (Relay *r, const gchar *path)
{
  g_autofree gchar *base = g_strndup (r->metrics_url, strlen (r->metrics_url) - strlen ("/metrics"));
  g_autofree gchar *url = g_strconcat (base, path, NULL);
  g_autoptr (SoupSession) session = soup_session_new ();
  g_autoptr (SoupMessage) msg = soup_message_new ("GET", url);
  g_autoptr (GBytes) body = soup_session_send_and_read (session, msg, NULL, NULL);

  g_assert_nonnull (body);
  g_assert_cmpuint (soup_message_get_status (msg), ==, 200);
  return g_strndup (g_bytes_get_data (body, NULL), g_bytes_get_size (body));
}

typedef struct {
  Relay *r;
  const gchar *path, *needle;
} HttpWait;

static gboolean
http_has (gpointer data)
{
  HttpWait *w = data;
  g_autofree gchar *body = http_get (w->r, w->path);

  return strstr (body, w->needle) != NULL;
}

/* Probes (§5.10): relay 1 probes relay 2 (100 ms interval, so gossip every
 * second): the gauges come up, relay 2's registered identity shows in relay
 * 1's /presence as remote with relay 2's address, /route finds it through
 * relay 2, RouteQuery on a _probe connection is answered, and the probe goes
 * down when relay 2 stops. */
static void
test_probes (void)
{
  Relay *r2 = relay_start (relay_path, NULL), *r1;
  Client *c = client_new (0x71), *q = client_new (0x72);
  g_autofree gchar *dir = g_dir_make_tmp ("wzp-probe-XXXXXX", NULL);
  g_autofree gchar *conf = g_build_filename (dir, "relay.conf", NULL);
  g_autofree gchar *text = g_strdup_printf ("[federation]\nprobe-targets = %s\nprobe-interval-ms = 100\n",
                                            r2->addr);
  const gchar *extra[] = { "--config", conf, NULL };
  const gchar *fp = wzp_identity_get_fingerprint (c->id);
  g_autofree gchar *up = g_strdup_printf ("wzp_probe_up{target=\"%s\"} 1.000", r2->addr);
  g_autofree gchar *down = g_strdup_printf ("wzp_probe_up{target=\"%s\"} 0.000", r2->addr);
  g_autofree gchar *remote = g_strdup_printf ("{\"fingerprint\":\"%s\",\"location\":{\"Remote\":\"%s\"}}", fp, r2->addr);
  g_autofree gchar *route = NULL, *route_path = g_strdup_printf ("/route/%s", fp);
  g_autofree gchar *mesh = NULL, *metrics = NULL;
  HttpWait w;
  g_autoptr (WzpSignal) resp = NULL, resp2 = NULL;
  WzpSignal *query;

  client_register (c, r2);
  g_assert_true (g_file_set_contents (conf, text, -1, NULL));
  r1 = relay_start (relay_path, extra);
  w = (HttpWait) { r1, "/metrics", up };
  g_assert_true (spin (http_has, &w, 5000));
  w = (HttpWait) { r1, "/presence", remote };
  g_assert_true (spin (http_has, &w, 5000));
  route = http_get (r1, route_path);
  g_test_message ("%s", route);
  g_assert_nonnull (strstr (route, "\"route\":\"direct_peer\""));
  g_assert_nonnull (strstr (route, r2->addr));
  mesh = http_get (r1, "/mesh");
  g_assert_nonnull (strstr (mesh, "UP"));
  metrics = relay_fetch_metrics (r1);
  g_assert_nonnull (strstr (metrics, "wzp_probe_loss_pct"));
  g_assert_nonnull (strstr (metrics, "wzp_probe_rtt_ms"));

  /* RouteQuery on a _probe connection to relay 2 */
  client_connect (q, r2, "_probe");
  query = wzp_signal_new (WZP_SIGNAL_ROUTE_QUERY);
  query->route_query.fingerprint = g_strdup (fp);
  query->route_query.ttl = 3;
  client_send (q, query);
  resp = client_expect (q, WZP_SIGNAL_ROUTE_RESPONSE);
  g_assert_true (resp->route_response.found);
  g_assert_cmpuint (resp->route_response.relay_chain->len, ==, 1);
  query = wzp_signal_new (WZP_SIGNAL_ROUTE_QUERY);
  query->route_query.fingerprint = g_strdup ("0000:0000:0000:0000:0000:0000:0000:0000");
  client_send (q, query);
  resp2 = client_expect (q, WZP_SIGNAL_ROUTE_RESPONSE);
  g_assert_false (resp2->route_response.found);
  g_assert_cmpuint (resp2->route_response.relay_chain->len, ==, 0);

  /* anyone may open _probe: what it can make the relay keep is bounded
   * (64 gossiping relays) and so is its rate (20 messages a second) */
  for (guint i = 0; i < 70; i++) {
    WzpSignal *gossip = wzp_signal_new (WZP_SIGNAL_PRESENCE_UPDATE);
    gossip->presence_update.fingerprints = g_ptr_array_new_with_free_func (g_free);
    g_ptr_array_add (gossip->presence_update.fingerprints, g_strdup_printf ("fake-%u", i));
    gossip->presence_update.relay_addr = g_strdup_printf ("192.0.2.%u:4433", i);
    client_send (q, gossip);
    settle (60);
  }
  {
    g_autofree gchar *peers = http_get (r2, "/peers");
    guint n = 0;
    for (const gchar *at = peers; (at = strstr (at, "\"addr\"")) != NULL; at++)
      n++;
    g_test_message ("/peers after 70 gossiping addresses: %u entries", n);
    g_assert_cmpuint (n, ==, 64);
  }
  g_ptr_array_set_size (q->msgs, 0);
  for (guint i = 0; i < 60; i++) {
    WzpSignal *ping = wzp_signal_new (WZP_SIGNAL_PING);
    ping->ping.timestamp_ms = i;
    client_send (q, ping);
  }
  settle (500);
  {
    guint pongs = 0;
    for (guint i = 0; i < q->msgs->len; i++)
      pongs += ((WzpSignal *) g_ptr_array_index (q->msgs, i))->type == WZP_SIGNAL_PONG;
    g_test_message ("60 pings in a burst: %u answered", pongs);
    g_assert_cmpuint (pongs, <=, 40);
    g_assert_cmpuint (pongs, >=, 1);
  }

  client_free (q);
  client_free (c);
  relay_stop (r2);
  w = (HttpWait) { r1, "/metrics", down };
  g_assert_true (spin (http_has, &w, 5000));
  relay_stop (r1);
  g_unlink (conf);
  g_rmdir (dir);
}

/* The relay restarts itself once with glibc's heap on transparent huge
 * pages (relay/main.c): same process, same name, the tunable in its
 * environment; WZP_RELAY_HUGE_PAGES=0 leaves it as started. */
static gchar *
relay_proc_file (Relay *r, const gchar *name)
{
  g_autofree gchar *path = g_strdup_printf ("/proc/%s/%s", g_subprocess_get_identifier (r->proc), name);
  g_autofree gchar *text = NULL;
  gsize len = 0;

  g_assert_true (g_file_get_contents (path, &text, &len, NULL));
  for (gsize i = 0; i < len; i++)
    if (text[i] == '\0')
      text[i] = '\n';          /* environ: one variable a line */
  /* a line before the first too, so that every line is found as "\nLINE\n" */
  return g_strconcat ("\n", text, NULL);
}

static void
test_huge_pages (void)
{
  g_autofree gchar *thp = NULL, *env_on = NULL, *comm_on = NULL, *env_off = NULL;
  Relay *r;

  if (!g_file_get_contents ("/sys/kernel/mm/transparent_hugepage/enabled", &thp, NULL, NULL) ||
      strstr (thp, "[never]")) {
    g_test_skip ("transparent huge pages are off in this kernel");
    return;
  }
  r = relay_start (relay_path, NULL);
  env_on = relay_proc_file (r, "environ");
  comm_on = relay_proc_file (r, "comm");
  relay_stop (r);
  g_assert_nonnull (strstr (env_on, "\nGLIBC_TUNABLES=glibc.malloc.hugetlb=1\n"));
  g_assert_cmpstr (comm_on, ==, "\nwzp-relay\n");

  g_setenv ("WZP_RELAY_HUGE_PAGES", "0", TRUE);
  r = relay_start (relay_path, NULL);
  g_unsetenv ("WZP_RELAY_HUGE_PAGES");
  env_off = relay_proc_file (r, "environ");
  relay_stop (r);
  g_assert_null (strstr (env_off, "glibc.malloc.hugetlb"));
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  relay_path = g_getenv ("WZP_RELAY");
  g_assert_nonnull (relay_path);
  g_test_add_func ("/relay/direct-call", test_direct_call);
  g_test_add_func ("/relay/disconnect-reject-unreachable", test_disconnect_reject_unreachable);
  g_test_add_func ("/relay/ring-timeout", test_ring_timeout);
  g_test_add_func ("/relay/signatures-and-reregistration", test_signatures_and_reregistration);
  g_test_add_func ("/relay/reflect-and-ping", test_reflect_ping_and_strays);
  g_test_add_func ("/relay/room-three-members", test_room_three_members);
  g_test_add_func ("/relay/call-room-acl", test_call_room_acl);
  g_test_add_func ("/relay/bad-names-and-timeouts", test_bad_names_and_timeouts);
  g_test_add_func ("/relay/bad-input-during-call", test_bad_input_during_call);
  g_test_add_func ("/relay/metrics-and-shutdown", test_metrics_format_and_shutdown);
#if defined(__GLIBC__) && !defined(__SANITIZE_ADDRESS__)
  /* the heap gauge is glibc's, and not exported under AddressSanitizer */
  g_test_add_func ("/relay/metrics-scrapes-leave-nothing", test_metrics_scrapes_leave_nothing);
#endif
  g_test_add_func ("/relay/auth", test_auth);
  g_test_add_func ("/relay/ipv6", test_ipv6);
  g_test_add_func ("/relay/federation-flood", test_federation_flood);
  g_test_add_func ("/relay/probes", test_probes);
  g_test_add_func ("/relay/federation-certificates", test_federation_certificates);
  g_test_add_func ("/relay/quality-directive", test_quality_directive);
#ifdef __GLIBC__
  g_test_add_func ("/relay/huge-pages", test_huge_pages);
#endif
  return g_test_run ();
}
