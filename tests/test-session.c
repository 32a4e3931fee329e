/* WzpSession against the real relay on loopback: relay-only and direct
 * calls, the MediaPathReport negotiation, a peer that sends no report,
 * reject, an unreachable callee, hangup. */
#include <string.h>
#include <math.h>
#include <glib/gstdio.h>
#include <gio/gio.h>

#include "relay-fixture.h"
#include "relay-client.h"
#include "wzp-session.h"
#include "wzp-session-test.h"
#include "wzp-e2e.h"
#include "wzp-wire.h"
#include "wzp-quic.h"
#include <gobject/gvaluecollector.h>
#include "wzp-tls.h"

#include <glib/gstdio.h>

static const gchar *relay_path;

typedef struct {
  WzpSession *s;
  GMutex lock;
  GPtrArray *steps;         /* gchar* */
  gboolean negotiated, use_direct;
  GError *error;
  gchar **relays;           /* relay labels of the last room:update */
} Party;

static void
on_event (WzpSession *s, const gchar *step, GVariant *data, Party *p)
{
  g_mutex_lock (&p->lock);
  g_ptr_array_add (p->steps, g_strdup (step));
  if (strcmp (step, "room:update") == 0) {
    g_strfreev (p->relays);
    g_variant_lookup (data, "relays", "^as", &p->relays);
  }
  if (strcmp (step, "connect:path_negotiated") == 0) {
    p->negotiated = TRUE;
    g_variant_lookup (data, "use_direct", "b", &p->use_direct);
  }
  g_mutex_unlock (&p->lock);
}

static void
on_error (WzpSession *s, const GError *e, Party *p)
{
  g_mutex_lock (&p->lock);
  if (p->error == NULL)
    p->error = g_error_copy (e);
  g_mutex_unlock (&p->lock);
}

static Party *
party_new (Relay *r, guint8 seed, const gchar *first_prop, ...)
{
  Party *p = g_new0 (Party, 1);
  g_autofree gchar *hex = NULL;
  guint8 raw[32];
  va_list ap;

  memset (raw, seed, sizeof raw);
  hex = g_strdup_printf ("%s", "");
  {
    GString *h = g_string_new (NULL);
    for (guint i = 0; i < 32; i++)
      g_string_append_printf (h, "%02x", raw[i]);
    g_free (hex);
    hex = g_string_free (h, FALSE);
  }
  g_mutex_init (&p->lock);
  p->steps = g_ptr_array_new_with_free_func (g_free);
  /* properties, and the test-* faults (wzp-session-test.h) among them */
  p->s = wzp_session_new ();
  va_start (ap, first_prop);
  for (const gchar *name = first_prop; name; name = va_arg (ap, const gchar *)) {
    GParamSpec *spec;
    GValue v = G_VALUE_INIT;
    g_autofree gchar *err = NULL;

    if (g_str_has_prefix (name, "test-")) {
      g_assert_true (wzp_session_set_test_fault (p->s, name, va_arg (ap, guint)));
      continue;
    }
    spec = g_object_class_find_property (G_OBJECT_GET_CLASS (p->s), name);
    g_assert_nonnull (spec);
    G_VALUE_COLLECT_INIT (&v, spec->value_type, ap, 0, &err);
    g_assert_null (err);
    g_object_set_property (G_OBJECT (p->s), name, &v);
    g_value_unset (&v);
  }
  va_end (ap);
  g_object_set (p->s, "relay", r->addr, "identity-hex", hex, "relay-fingerprint", r->tls_fp, NULL);
  g_signal_connect (p->s, "call-event", G_CALLBACK (on_event), p);
  g_signal_connect (p->s, "error", G_CALLBACK (on_error), p);
  return p;
}

static void
party_free (Party *p)
{
  wzp_session_stop (p->s);
  g_signal_handlers_disconnect_by_data (p->s, p);
  g_object_unref (p->s);
  g_ptr_array_unref (p->steps);
  g_strfreev (p->relays);
  g_clear_error (&p->error);
  g_mutex_clear (&p->lock);
  g_free (p);
}

static gchar *
fingerprint_of (guint8 seed)
{
  guint8 raw[32];
  g_autoptr (WzpIdentity) id = NULL;

  memset (raw, seed, sizeof raw);
  id = wzp_identity_new_from_seed (raw);
  return g_strdup (wzp_identity_get_fingerprint (id));
}

static gboolean
wait_state (Party *p, WzpSessionState st, guint ms)
{
  gint64 end = g_get_monotonic_time () + (gint64) ms * 1000;

  while (wzp_session_get_state (p->s) != st) {
    if (g_get_monotonic_time () > end)
      return FALSE;
    g_usleep (1000);
  }
  return TRUE;
}

static gboolean
wait_negotiated (Party *p, guint ms)
{
  gint64 end = g_get_monotonic_time () + (gint64) ms * 1000;
  gboolean done;

  for (;;) {
    g_mutex_lock (&p->lock);
    done = p->negotiated;
    g_mutex_unlock (&p->lock);
    if (done || g_get_monotonic_time () > end)
      return done;
    g_usleep (1000);
  }
}

static gboolean
has_error (Party *p, gint code, guint ms)
{
  gint64 end = g_get_monotonic_time () + (gint64) ms * 1000;

  for (;;) {
    gboolean yes;
    g_mutex_lock (&p->lock);
    yes = p->error && p->error->code == code;
    g_mutex_unlock (&p->lock);
    if (yes)
      return TRUE;
    if (g_get_monotonic_time () > end)
      return FALSE;
    g_usleep (1000);
  }
}

static guint quality_seen;   /* frames that arrived with a QualityReport */

/* what exchange() sends: 80 bytes of one value (opened, when sealed) */
static gboolean
frame_intact (const WzpMediaFrame *f)
{
  gsize len;
  const guint8 *d = g_bytes_get_data (f->payload, &len);

  for (gsize i = 1; i < len; i++)
    if (d[i] != d[0])
      return FALSE;
  return len == 80;
}

/* both sides seal their media and proved their identity keys */
static void
assert_sealed (Party *a, Party *b, gboolean sealed)
{
  WzpSessionStats sa, sb;

  wzp_session_get_stats (a->s, &sa);
  wzp_session_get_stats (b->s, &sb);
  g_assert_cmpint (sa.encrypted, ==, sealed);
  g_assert_cmpint (sb.encrypted, ==, sealed);
  g_assert_cmpint (sa.peer_authenticated, ==, sealed);
  g_assert_cmpint (sb.peer_authenticated, ==, sealed);
  g_assert_cmpuint (sa.frames_auth_failed + sb.frames_auth_failed, ==, 0);
}

/* Sends @n frames each way, 10 ms apart; returns how many each side got, and
 * the path of the last frame each side received. */
static void
exchange (Party *a, Party *b, guint n, guint *got_a, guint *got_b, WzpMediaPath *path_a,
          WzpMediaPath *path_b)
{
  guint8 frame[80];

  *got_a = *got_b = 0;
  for (guint i = 0; i < n; i++) {
    memset (frame, (guint8) i, sizeof frame);
    wzp_session_send_media (a->s, frame, sizeof frame, WZP_CODEC_OPUS24K, i * 20);
    wzp_session_send_media (b->s, frame, sizeof frame, WZP_CODEC_OPUS24K, i * 20);
    g_usleep (10000);
  }
  for (;;) {
    WzpMediaFrame *f = wzp_session_recv_media (a->s, g_get_monotonic_time () + 300000);
    if (f == NULL)
      break;
    (*got_a)++;
    *path_a = f->path;
    g_assert_true (frame_intact (f));
    if (f->has_quality && f->quality.bitrate_cap_kbps == 200)
      quality_seen++;
    wzp_media_frame_free (f);
  }
  for (;;) {
    WzpMediaFrame *f = wzp_session_recv_media (b->s, g_get_monotonic_time () + 300000);
    if (f == NULL)
      break;
    (*got_b)++;
    *path_b = f->path;
    g_assert_true (frame_intact (f));
    wzp_media_frame_free (f);
  }
}

static gboolean
has_step (Party *p, const gchar *step, guint ms)
{
  gint64 end = g_get_monotonic_time () + (gint64) ms * 1000;

  for (;;) {
    gboolean yes;
    g_mutex_lock (&p->lock);
    yes = g_ptr_array_find_with_equal_func (p->steps, step, g_str_equal, NULL);
    g_mutex_unlock (&p->lock);
    if (yes)
      return TRUE;
    if (g_get_monotonic_time () > end)
      return FALSE;
    g_usleep (1000);
  }
}

/* A free UDP port on 127.0.0.1 (free when asked; the tests' own ports are
 * the only others in use). */
static guint16
free_port (void)
{
  g_autoptr (GSocket) sock = g_socket_new (G_SOCKET_FAMILY_IPV4, G_SOCKET_TYPE_DATAGRAM,
                                           G_SOCKET_PROTOCOL_UDP, NULL);
  g_autoptr (GSocketAddress) any = g_inet_socket_address_new_from_string ("127.0.0.1", 0);
  g_autoptr (GSocketAddress) got = NULL;

  g_assert_true (g_socket_bind (sock, any, FALSE, NULL));
  got = g_socket_get_local_address (sock, NULL);
  return g_inet_socket_address_get_port (G_INET_SOCKET_ADDRESS (got));
}

/* The Acceptor is the side whose reflexive address sorts first (protocol
 * §6.3); on loopback that is decided by the ports. */
static void
make_acceptor_late (Party *acceptor, Party *dialer, guint late_ms)
{
  guint16 p1 = free_port (), p2 = free_port ();
  g_autofree gchar *a1 = g_strdup_printf ("127.0.0.1:%u", p1);
  g_autofree gchar *a2 = g_strdup_printf ("127.0.0.1:%u", p2);
  gboolean first = strcmp (a1, a2) < 0;

  g_object_set (acceptor->s, "local-port", first ? p1 : p2, NULL);
  wzp_session_set_test_fault (acceptor->s, "test-setup-delay-ms", late_ms);
  g_object_set (dialer->s, "local-port", first ? p2 : p1, NULL);
}

/* On a failure: what each side went through, for the log. */
static void
dump_steps (Party *p, const gchar *who)
{
  g_mutex_lock (&p->lock);
  for (guint i = 0; i < p->steps->len; i++)
    g_printerr ("%s: %s\n", who, (const gchar *) g_ptr_array_index (p->steps, i));
  g_mutex_unlock (&p->lock);
}

typedef enum { ON_TIME, CALLEE_LATE, CALLER_LATE } Lateness;

static void
call_with (gboolean direct, gboolean b_reports, WzpMediaPath expect, Lateness late)
{
  Relay *r = relay_start (relay_path, NULL);
  g_autofree gchar *fp_b = fingerprint_of (0x11);
  /* the real 3 s wait when both report (it costs nothing then, and a busy
   * host cannot turn a late report into a relay call); shortened when one
   * side never reports and the other must wait all of it */
  guint wait_ms = b_reports ? 3000 : 800;
  Party *b = party_new (r, 0x11, "auto-answer", TRUE, "direct", direct,
                        "send-path-report", b_reports, "report-timeout-ms", wait_ms, NULL);
  Party *a = party_new (r, 0x2a, "call-target", fp_b, "direct", direct,
                        "report-timeout-ms", wait_ms, NULL);
  guint got_a, got_b;
  WzpMediaPath path_a = WZP_MEDIA_PATH_NONE, path_b = WZP_MEDIA_PATH_NONE;
  WzpSessionStats st;

  /* the Acceptor hears the relay's CallSetup 300 ms after the Dialer, which
   * has dialled it by then (relays far away, peers near each other) */
  if (late == CALLEE_LATE)
    make_acceptor_late (b, a, 300);
  else if (late == CALLER_LATE)
    make_acceptor_late (a, b, 300);
  g_assert_true (wzp_session_start (b->s, NULL));
  g_assert_true (wait_state (b, WZP_SESSION_STATE_REGISTERED, 5000));
  g_assert_true (wzp_session_start (a->s, NULL));
  g_assert_true (wait_state (a, WZP_SESSION_STATE_ACTIVE, 5000));
  g_assert_true (wait_state (b, WZP_SESSION_STATE_ACTIVE, 5000));
  g_assert_true (wait_negotiated (a, 5000));
  g_assert_true (wait_negotiated (b, 5000));
  if (b_reports)
    g_assert_cmpint (a->use_direct, ==, b->use_direct);     /* never split */
  if (late != ON_TIME) {
    Party *acceptor = late == CALLEE_LATE ? b : a;
    /* the dial that came first was kept, not refused and waited for */
    g_assert_true (has_step (acceptor, "connect:early_dial", 0));
    g_assert_true (has_step (a, "connect:dual_path_race_done", 0));
    g_assert_true (has_step (b, "connect:dual_path_race_done", 0));
  }
  g_usleep (100000);
  quality_seen = 0;
  exchange (a, b, 50, &got_a, &got_b, &path_a, &path_b);
  g_assert_cmpuint (quality_seen, ==, 1);
  g_test_message ("a got %u via %s, b got %u via %s", got_a, wzp_media_path_name (path_a),
                  got_b, wzp_media_path_name (path_b));
  {
    WzpSessionStats sa, sb;
    wzp_session_get_stats (a->s, &sa);
    wzp_session_get_stats (b->s, &sb);
    g_test_message ("a: sent %" G_GUINT64_FORMAT " dropped %" G_GUINT64_FORMAT "; b: sent %"
                    G_GUINT64_FORMAT " dropped %" G_GUINT64_FORMAT, sa.frames_sent, sa.frames_dropped,
                    sb.frames_sent, sb.frames_dropped);
  }
  g_assert_cmpuint (got_a, ==, 50);
  g_assert_cmpuint (got_b, ==, 50);
  assert_sealed (a, b, TRUE);
  if (path_a != expect || path_b != expect) {
    dump_steps (a, "caller");
    dump_steps (b, "callee");
  }
  g_assert_cmpint (path_a, ==, expect);
  g_assert_cmpint (path_b, ==, expect);
  /* the path in use: where the call converged (a side without the peer's
   * report decided relay and then followed the peer's media to direct) */
  g_assert_cmpint (wzp_session_get_negotiated_path (a->s), ==, expect);
  g_assert_cmpint (wzp_session_get_negotiated_path (b->s), ==, expect);
  wzp_session_get_stats (a->s, &st);
  g_assert_cmpint (st.path, ==, expect);
  g_assert_cmpuint (st.frames_sent, ==, 50);
  g_assert_cmpuint (st.frames_received, ==, 50);
  /* 50 frames: the 50th carries a QualityReport with the measured RTT */
  g_assert_cmpuint (st.reports_sent, ==, 1);
  g_assert_cmpuint (st.rtt_us, >, 0);
  g_test_message ("setup to first frame: %.1f ms", st.setup_us / 1000.0);

  /* hangup from one side reaches the other */
  wzp_session_hangup (a->s);
  g_assert_true (has_error (b, WZP_SESSION_ERROR_HUNG_UP, 5000));
  party_free (a);
  party_free (b);
  relay_stop (r);
}

static void
test_relay_only (void)
{
  call_with (FALSE, TRUE, WZP_MEDIA_PATH_RELAY, ON_TIME);
}

static void
test_direct (void)
{
  call_with (TRUE, TRUE, WZP_MEDIA_PATH_DIRECT, ON_TIME);
}

/* The peer's dial arrives before our own CallSetup: kept until it comes. */
static void
test_setup_after_dial (void)
{
  call_with (TRUE, TRUE, WZP_MEDIA_PATH_DIRECT, CALLEE_LATE);
  call_with (TRUE, TRUE, WZP_MEDIA_PATH_DIRECT, CALLER_LATE);
}

/* B never reports (as peers before MediaPathReport): A times out and says
 * relay, B hears A's direct_ok and says direct — and the call still carries
 * audio both ways because each side follows the path the other's media
 * arrives on. */
static void
test_peer_without_report (void)
{
  call_with (TRUE, FALSE, WZP_MEDIA_PATH_DIRECT, ON_TIME);
}

static void
test_reject_and_unreachable (void)
{
  Relay *r = relay_start (relay_path, NULL);
  g_autofree gchar *fp_b = fingerprint_of (0x11), *fp_nobody = fingerprint_of (0x77);
  Party *b = party_new (r, 0x11, NULL);
  Party *a = party_new (r, 0x2a, "call-target", fp_b, NULL);
  Party *c = party_new (r, 0x33, "call-target", fp_nobody, NULL);

  g_assert_true (wzp_session_start (b->s, NULL));
  g_assert_true (wait_state (b, WZP_SESSION_STATE_REGISTERED, 5000));
  g_assert_true (wzp_session_start (a->s, NULL));
  g_assert_true (wait_state (b, WZP_SESSION_STATE_RINGING, 5000));
  wzp_session_answer (b->s, FALSE);
  g_assert_true (has_error (a, WZP_SESSION_ERROR_REJECTED, 5000));
  g_assert_nonnull (strstr (a->error->message, "declined"));

  g_assert_true (wzp_session_start (c->s, NULL));
  g_assert_true (has_error (c, WZP_SESSION_ERROR_PEER_UNREACHABLE, 5000));
  g_assert_nonnull (strstr (c->error->message, "not registered"));
  party_free (a);
  party_free (b);
  party_free (c);
  relay_stop (r);
}

static void
test_relay_down (void)
{
  g_autoptr (GSocket) silent = g_socket_new (G_SOCKET_FAMILY_IPV4, G_SOCKET_TYPE_DATAGRAM,
                                             G_SOCKET_PROTOCOL_UDP, NULL);
  g_autoptr (GSocketAddress) any = g_inet_socket_address_new_from_string ("127.0.0.1", 0);
  g_autoptr (GSocketAddress) where = NULL;
  g_autofree gchar *addr = NULL;
  Relay fake = { 0 };
  Party *a;

  g_socket_bind (silent, any, FALSE, NULL);
  where = g_socket_get_local_address (silent, NULL);
  addr = g_strdup_printf ("127.0.0.1:%u", g_inet_socket_address_get_port (G_INET_SOCKET_ADDRESS (where)));
  fake.addr = addr;
  a = party_new (&fake, 0x2a, NULL);
  g_assert_true (wzp_session_start (a->s, NULL));
  g_assert_true (has_error (a, WZP_SESSION_ERROR_RELAY_UNREACHABLE, 15000));
  g_assert_nonnull (strstr (a->error->message, "reachable"));
  party_free (a);
}


/* Fault injection drops every packet that is not to or from the relay: both
 * sides decide relay, and media runs on the relay from the start. Real timer
 * values (2 s direct limit, 3 s report wait). */
static void
test_direct_blocked (void)
{
  Relay *r = relay_start (relay_path, NULL);
  g_autofree gchar *fp_b = fingerprint_of (0x11);
  Party *b = party_new (r, 0x11, "auto-answer", TRUE, "test-block-direct", TRUE, NULL);
  Party *a = party_new (r, 0x2a, "call-target", fp_b, "test-block-direct", TRUE, NULL);
  guint got_a, got_b;
  WzpMediaPath path_a = WZP_MEDIA_PATH_NONE, path_b = WZP_MEDIA_PATH_NONE;
  gint64 t0;

  g_assert_true (wzp_session_start (b->s, NULL));
  g_assert_true (wait_state (b, WZP_SESSION_STATE_REGISTERED, 5000));
  t0 = g_get_monotonic_time ();
  g_assert_true (wzp_session_start (a->s, NULL));
  /* audio first: both on the relay long before the 2 s direct limit */
  g_assert_true (wait_state (a, WZP_SESSION_STATE_ACTIVE, 5000));
  g_assert_true (wait_state (b, WZP_SESSION_STATE_ACTIVE, 5000));
  g_assert_cmpint (g_get_monotonic_time () - t0, <, 1500000);
  g_assert_true (wait_negotiated (a, 8000));
  g_assert_true (wait_negotiated (b, 8000));
  g_assert_false (a->use_direct);
  g_assert_false (b->use_direct);
  exchange (a, b, 50, &got_a, &got_b, &path_a, &path_b);
  g_assert_cmpuint (got_a, ==, 50);
  g_assert_cmpuint (got_b, ==, 50);
  g_assert_cmpint (path_a, ==, WZP_MEDIA_PATH_RELAY);
  g_assert_cmpint (path_b, ==, WZP_MEDIA_PATH_RELAY);
  party_free (a);
  party_free (b);
  relay_stop (r);
}

typedef struct {
  Party *to;
  guint n;
  gboolean stop;
  GHashTable *seen;         /* seq -> count */
  guint via_relay, via_direct;
} Reader;

static gpointer
reader_thread (gpointer data)
{
  Reader *rd = data;

  while (!rd->stop) {
    WzpMediaFrame *f = wzp_session_recv_media (rd->to->s, g_get_monotonic_time () + 50000);
    if (f == NULL)
      continue;
    g_hash_table_insert (rd->seen, GUINT_TO_POINTER (f->seq),
                         GUINT_TO_POINTER (GPOINTER_TO_UINT (g_hash_table_lookup (rd->seen, GUINT_TO_POINTER (f->seq))) + 1));
    if (f->path == WZP_MEDIA_PATH_DIRECT)
      rd->via_direct++;
    else
      rd->via_relay++;
    wzp_media_frame_free (f);
  }
  return NULL;
}

/* Media starts on the relay; the reports come late (600 ms), then both move
 * to direct: the receiver gets every frame exactly once, across the switch. */
static void
test_switch_without_loss (void)
{
  Relay *r = relay_start (relay_path, NULL);
  g_autofree gchar *fp_b = fingerprint_of (0x11);
  Party *b = party_new (r, 0x11, "auto-answer", TRUE, "test-report-delay-ms", 600, NULL);
  Party *a = party_new (r, 0x2a, "call-target", fp_b, "test-report-delay-ms", 600, NULL);
  Reader rd = { b, 0, FALSE, g_hash_table_new (NULL, NULL), 0, 0 };
  GThread *t;
  guint8 frame[80] = { 0 };
  const guint n = 150;

  g_assert_true (wzp_session_start (b->s, NULL));
  g_assert_true (wait_state (b, WZP_SESSION_STATE_REGISTERED, 5000));
  g_assert_true (wzp_session_start (a->s, NULL));
  g_assert_true (wait_state (a, WZP_SESSION_STATE_ACTIVE, 5000));
  g_assert_true (wait_state (b, WZP_SESSION_STATE_ACTIVE, 5000));
  t = g_thread_new ("reader", reader_thread, &rd);
  for (guint i = 0; i < n; i++) {
    g_assert_true (wzp_session_send_media (a->s, frame, sizeof frame, WZP_CODEC_OPUS24K, i * 20));
    g_usleep (10000);
  }
  g_usleep (300000);
  rd.stop = TRUE;
  g_thread_join (t);
  g_assert_true (a->use_direct);
  g_assert_true (b->use_direct);
  g_test_message ("%u frames via the relay, then %u direct", rd.via_relay, rd.via_direct);
  g_assert_cmpuint (rd.via_relay, >, 0);
  g_assert_cmpuint (rd.via_direct, >, 0);
  g_assert_cmpuint (g_hash_table_size (rd.seen), ==, n);
  for (guint i = 0; i < n; i++)
    g_assert_cmpuint (GPOINTER_TO_UINT (g_hash_table_lookup (rd.seen, GUINT_TO_POINTER (i))), ==, 1);
  g_hash_table_destroy (rd.seen);
  party_free (a);
  party_free (b);
  relay_stop (r);
}

static void
test_relay_killed (void)
{
  Relay *r = relay_start (relay_path, NULL);
  g_autofree gchar *fp_b = fingerprint_of (0x11);
  Party *b = party_new (r, 0x11, "auto-answer", TRUE, "direct", FALSE, NULL);
  Party *a = party_new (r, 0x2a, "call-target", fp_b, "direct", FALSE, NULL);

  g_assert_true (wzp_session_start (b->s, NULL));
  g_assert_true (wait_state (b, WZP_SESSION_STATE_REGISTERED, 5000));
  g_assert_true (wzp_session_start (a->s, NULL));
  g_assert_true (wait_state (a, WZP_SESSION_STATE_ACTIVE, 5000));
  g_subprocess_force_exit (r->proc);
  g_subprocess_wait (r->proc, NULL, NULL);
  /* the relay vanished without a word: idle timeout, then a clear error */
  g_assert_true (wait_state (a, WZP_SESSION_STATE_ENDED, 40000));
  g_assert_nonnull (a->error);
  g_test_message ("after the relay died: %s", a->error->message);
  party_free (a);
  party_free (b);
  relay_free (r);
}


/* A call on the direct path outlives its relay: the relay's shutdown does
 * not hang it up (both reported direct_ok), media keeps flowing, both
 * register again when the relay is back, and a hangup still reaches the
 * other side (over the direct connection). */
static void
test_relay_restart_direct (void)
{
  Relay *r = relay_start (relay_path, NULL);
  g_autofree gchar *fp_b = fingerprint_of (0x11);
  Party *b = party_new (r, 0x11, "auto-answer", TRUE, NULL);
  Party *a = party_new (r, 0x2a, "call-target", fp_b, NULL);
  guint got_a, got_b;
  WzpMediaPath path_a = WZP_MEDIA_PATH_NONE, path_b = WZP_MEDIA_PATH_NONE;
  gint64 t0;

  g_assert_true (wzp_session_start (b->s, NULL));
  g_assert_true (wait_state (b, WZP_SESSION_STATE_REGISTERED, 5000));
  g_assert_true (wzp_session_start (a->s, NULL));
  g_assert_true (wait_negotiated (a, 5000) && wait_negotiated (b, 5000));
  g_assert_true (a->use_direct && b->use_direct);
  g_usleep (100000);

  relay_restart (r, relay_path);
  g_assert_true (has_step (a, "signal:lost", 3000));
  g_assert_true (has_step (b, "signal:lost", 3000));
  exchange (a, b, 50, &got_a, &got_b, &path_a, &path_b);
  g_test_message ("with the relay restarting: a got %u via %s, b got %u via %s", got_a,
                  wzp_media_path_name (path_a), got_b, wzp_media_path_name (path_b));
  g_assert_cmpuint (got_a, ==, 50);
  g_assert_cmpuint (got_b, ==, 50);
  g_assert_cmpint (path_a, ==, WZP_MEDIA_PATH_DIRECT);
  g_assert_cmpint (wzp_session_get_state (a->s), ==, WZP_SESSION_STATE_ACTIVE);
  g_assert_cmpint (wzp_session_get_state (b->s), ==, WZP_SESSION_STATE_ACTIVE);
  /* back-off starts at 1 s */
  g_assert_true (has_step (a, "signal:reregistered", 5000));
  g_assert_true (has_step (b, "signal:reregistered", 5000));

  t0 = g_get_monotonic_time ();
  wzp_session_hangup (a->s);
  g_assert_true (has_error (b, WZP_SESSION_ERROR_HUNG_UP, 3000));
  g_test_message ("hangup reached the callee in %.1f ms", (g_get_monotonic_time () - t0) / 1000.0);
  party_free (a);
  party_free (b);
  relay_stop (r);
}

/* Room mode: two sessions join one room on the relay (SNI = room name,
 * CallOffer/CallAnswer), hear each other, and see each other in the
 * relay's RoomUpdate. */
static void
test_room_mode (void)
{
  Relay *r = relay_start (relay_path, NULL);
  Party *a = party_new (r, 0x31, "mode", "room", "room", "Lobby", "alias", "ann", NULL);
  Party *b = party_new (r, 0x32, "mode", "room", "room", "lobby", "alias", "bob", NULL);
  g_autofree gchar *fp_a = fingerprint_of (0x31), *fp_b = fingerprint_of (0x32);
  guint got_a, got_b;
  WzpMediaPath path_a = WZP_MEDIA_PATH_NONE, path_b = WZP_MEDIA_PATH_NONE;
  gint64 end;
  g_auto (GStrv) members = NULL;

  g_assert_true (wzp_session_start (a->s, NULL));
  g_assert_true (wait_state (a, WZP_SESSION_STATE_ACTIVE, 5000));
  g_assert_true (wzp_session_start (b->s, NULL));
  g_assert_true (wait_state (b, WZP_SESSION_STATE_ACTIVE, 5000));
  /* the room name is lowercased: one room; a hears of b's join */
  end = g_get_monotonic_time () + 5 * G_USEC_PER_SEC;
  do {
    g_clear_pointer (&members, g_strfreev);
    members = wzp_session_dup_participants (a->s);
    if (members && g_strv_length (members) == 2)
      break;
    g_usleep (2000);
  } while (g_get_monotonic_time () < end);
  g_assert_nonnull (members);
  g_assert_cmpuint (g_strv_length (members), ==, 2);
  g_assert_true (g_strv_contains ((const gchar *const *) members, fp_a));
  g_assert_true (g_strv_contains ((const gchar *const *) members, fp_b));
  g_assert_true (has_step (b, "room:update", 1000));
  exchange (a, b, 40, &got_a, &got_b, &path_a, &path_b);
  g_test_message ("room: a got %u, b got %u", got_a, got_b);
  g_assert_cmpuint (got_a, ==, 40);
  g_assert_cmpuint (got_b, ==, 40);
  g_assert_cmpint (path_a, ==, WZP_MEDIA_PATH_RELAY);
  party_free (b);
  /* b left: a's list shrinks to itself */
  end = g_get_monotonic_time () + 5 * G_USEC_PER_SEC;
  do {
    g_clear_pointer (&members, g_strfreev);
    members = wzp_session_dup_participants (a->s);
    if (members && g_strv_length (members) == 1)
      break;
    g_usleep (2000);
  } while (g_get_monotonic_time () < end);
  g_assert_cmpuint (g_strv_length (members), ==, 1);
  g_assert_cmpstr (members[0], ==, fp_a);
  party_free (a);
  relay_stop (r);
}

/* Asymmetric cases with the real timers (2 s direct limit, 3 s report
 * wait): whatever each side decides, both end on one path and every frame
 * arrives both ways. */
typedef struct {
  const gchar *name;
  guint a_report_delay, b_report_delay;   /* ms; G_MAXUINT = never sent */
  guint a_relay_delay;                     /* ms before a dials the relay */
  gboolean a_block, b_block;               /* direct path dropped */
  WzpMediaPath expect;                     /* NONE = either, as long as both agree */
} AsymCase;

static void
test_asymmetric (void)
{
  static const AsymCase cases[] = {
    { "b's report arrives after a's 3 s wait", 0, 3500, 0, FALSE, FALSE, WZP_MEDIA_PATH_NONE },
    { "both reports lost", G_MAXUINT, G_MAXUINT, 0, FALSE, FALSE, WZP_MEDIA_PATH_NONE },
    { "a's report lost", G_MAXUINT, 0, 0, FALSE, FALSE, WZP_MEDIA_PATH_NONE },
    { "a's relay leg 800 ms late", 0, 0, 800, FALSE, FALSE, WZP_MEDIA_PATH_DIRECT },
    { "a's relay leg late, direct blocked", 0, 0, 800, TRUE, TRUE, WZP_MEDIA_PATH_RELAY },
    { "direct blocked at a only", 0, 0, 0, TRUE, FALSE, WZP_MEDIA_PATH_RELAY },
  };
  Relay *r = relay_start (relay_path, NULL);

  for (guint k = 0; k < G_N_ELEMENTS (cases); k++) {
    const AsymCase *t = &cases[k];
    g_autofree gchar *fp_b = fingerprint_of (0x12);
    Party *b = party_new (r, 0x12, "auto-answer", TRUE, "test-block-direct", t->b_block,
                          "send-path-report", t->b_report_delay != G_MAXUINT,
                          "test-report-delay-ms", t->b_report_delay == G_MAXUINT ? 0 : t->b_report_delay,
                          NULL);
    Party *a = party_new (r, 0x2b, "call-target", fp_b, "test-block-direct", t->a_block,
                          "send-path-report", t->a_report_delay != G_MAXUINT,
                          "test-report-delay-ms", t->a_report_delay == G_MAXUINT ? 0 : t->a_report_delay,
                          "test-relay-delay-ms", t->a_relay_delay, NULL);
    guint got_a, got_b;
    WzpMediaPath path_a = WZP_MEDIA_PATH_NONE, path_b = WZP_MEDIA_PATH_NONE;
    gint64 t0;

    g_assert_true (wzp_session_start (b->s, NULL));
    g_assert_true (wait_state (b, WZP_SESSION_STATE_REGISTERED, 5000));
    t0 = g_get_monotonic_time ();
    g_assert_true (wzp_session_start (a->s, NULL));
    g_assert_true (wait_state (a, WZP_SESSION_STATE_ACTIVE, 5000));
    g_assert_true (wait_state (b, WZP_SESSION_STATE_ACTIVE, 5000));
    g_assert_true (wait_negotiated (a, 6000) && wait_negotiated (b, 6000));
    /* media starts only after both decided and the first grace passed:
     * the worst moment for a disagreement */
    g_usleep (2500000);
    exchange (a, b, 50, &got_a, &got_b, &path_a, &path_b);
    g_test_message ("%s: a decided %s, b decided %s; a got %u via %s, b got %u via %s (%.0f ms)",
                    t->name, a->use_direct ? "direct" : "relay", b->use_direct ? "direct" : "relay",
                    got_a, wzp_media_path_name (path_a), got_b, wzp_media_path_name (path_b),
                    (g_get_monotonic_time () - t0) / 1000.0);
    g_assert_cmpuint (got_a, ==, 50);
    g_assert_cmpuint (got_b, ==, 50);
    g_assert_cmpint (path_a, ==, path_b);
    if (t->expect != WZP_MEDIA_PATH_NONE)
      g_assert_cmpint (path_a, ==, t->expect);
    party_free (a);
    party_free (b);
  }
  relay_stop (r);
}

/* The peer's media stops (its process hangs, its network drops) while its
 * connections stay up: the call ends after media-timeout-ms with a reason.
 * Also checks the stats property. */
static void
test_media_timeout (void)
{
  Relay *r = relay_start (relay_path, NULL);
  g_autofree gchar *fp_b = fingerprint_of (0x13);
  Party *b = party_new (r, 0x13, "auto-answer", TRUE, "direct", FALSE, "media-timeout-ms", 600, NULL);
  Party *a = party_new (r, 0x2c, "call-target", fp_b, "direct", FALSE, NULL);
  guint8 frame[40] = { 0xf8 };
  g_autoptr (GVariant) stats = NULL;
  guint64 received = 0;
  const gchar *state = NULL;
  gint64 t0;

  g_assert_true (wzp_session_start (b->s, NULL));
  g_assert_true (wait_state (b, WZP_SESSION_STATE_REGISTERED, 5000));
  g_assert_true (wzp_session_start (a->s, NULL));
  g_assert_true (wait_state (a, WZP_SESSION_STATE_ACTIVE, 5000));
  g_assert_true (wait_state (b, WZP_SESSION_STATE_ACTIVE, 5000));
  for (guint i = 0; i < 10; i++) {
    wzp_session_send_media (a->s, frame, sizeof frame, WZP_CODEC_OPUS24K, i * 20);
    g_usleep (20000);
  }
  t0 = g_get_monotonic_time ();
  g_assert_true (has_error (b, WZP_SESSION_ERROR_PEER_LOST, 3000));
  g_test_message ("ended %.0f ms after the last frame: %s", (g_get_monotonic_time () - t0) / 1000.0,
                  b->error->message);
  g_assert_cmpint (g_get_monotonic_time () - t0, >=, 500000);
  g_assert_nonnull (strstr (b->error->message, "no media"));
  g_object_get (b->s, "stats", &stats, NULL);
  g_assert_true (g_variant_lookup (stats, "frames-received", "t", &received));
  g_assert_true (g_variant_lookup (stats, "state", "&s", &state));
  g_assert_cmpuint (received, ==, 10);
  g_assert_cmpstr (state, ==, "ended");
  party_free (a);
  party_free (b);
  relay_stop (r);
}

/* ---- federation: two relays on loopback ------------------------------------ */

typedef struct {
  gchar *dir, *seed_path, *conf_path, *tls_fp;
} FedRelay;

/* A relay identity from @seed_byte, and the TLS fingerprint it will present. */
static FedRelay *
fed_identity (guint8 seed_byte)
{
  FedRelay *f = g_new0 (FedRelay, 1);
  guint8 raw[32];
  g_autoptr (WzpIdentity) id = NULL;
  g_autoptr (WzpTlsContext) tls = NULL;
  g_autoptr (GString) hex = g_string_new (NULL);

  memset (raw, seed_byte, sizeof raw);
  for (guint i = 0; i < 32; i++)
    g_string_append_printf (hex, "%02x", raw[i]);
  g_string_append_c (hex, '\n');
  f->dir = g_dir_make_tmp ("wzp-fed-XXXXXX", NULL);
  f->seed_path = g_build_filename (f->dir, "relay.seed", NULL);
  f->conf_path = g_build_filename (f->dir, "relay.conf", NULL);
  g_assert_true (g_file_set_contents_full (f->seed_path, hex->str, -1, G_FILE_SET_CONTENTS_NONE,
                                           0600, NULL));
  id = wzp_identity_new_from_seed (raw);
  tls = wzp_tls_context_new_server (wzp_identity_get_tls_secret_key (id), NULL);
  f->tls_fp = g_strdup (wzp_tls_context_get_fingerprint (tls));
  return f;
}

static Relay *
fed_start (FedRelay *f, const gchar *conf)
{
  const gchar *extra[] = { "--identity", f->seed_path, "--config", f->conf_path, NULL };

  g_assert_true (g_file_set_contents (f->conf_path, conf, -1, NULL));
  return relay_start (relay_path, extra);
}

static void
fed_free (FedRelay *f)
{
  g_unlink (f->seed_path);
  g_unlink (f->conf_path);
  g_rmdir (f->dir);
  g_free (f->dir);
  g_free (f->seed_path);
  g_free (f->conf_path);
  g_free (f->tls_fp);
  g_free (f);
}

static guint64
metric_of (Relay *r, const gchar *line_prefix)
{
  g_autofree gchar *out = relay_fetch_metrics (r);
  g_auto (GStrv) lines = NULL;

  if (out == NULL)
    return G_MAXUINT64;
  lines = g_strsplit (out, "\n", -1);
  for (guint i = 0; lines[i]; i++)
    if (g_str_has_prefix (lines[i], line_prefix) && lines[i][strlen (line_prefix)] == ' ')
      return g_ascii_strtoull (lines[i] + strlen (line_prefix) + 1, NULL, 10);
  return G_MAXUINT64;
}

static gboolean
wait_metric (Relay *r, const gchar *name, guint64 want, guint ms)
{
  gint64 end = g_get_monotonic_time () + (gint64) ms * 1000;

  while (metric_of (r, name) != want) {
    if (g_get_monotonic_time () > end)
      return FALSE;
    g_usleep (20000);
  }
  return TRUE;
}

/* B trusts A's certificate; A dials B, pinned to B's. */
static void
fed_pair (FedRelay *fa, FedRelay *fb, Relay **ra, Relay **rb)
{
  g_autofree gchar *conf_b = g_strdup_printf ("[trusted]\nfingerprints = %s\n", fa->tls_fp);
  g_autofree gchar *conf_a = NULL;

  *rb = fed_start (fb, conf_b);
  conf_a = g_strdup_printf ("[peer:b]\nurl = %s\nfingerprint = %s\nlabel = Relay B\n",
                            (*rb)->addr, fb->tls_fp);
  *ra = fed_start (fa, conf_a);
  g_assert_true (wait_metric (*ra, "wzp_federation_links_up", 1, 5000));
  g_assert_true (wait_metric (*rb, "wzp_federation_links_up", 1, 5000));
  g_assert_cmpuint (metric_of (*rb, "wzp_federation_links_total{outcome=\"accepted\"}"), ==, 1);
  g_assert_cmpuint (metric_of (*rb, "wzp_federation_links_total{outcome=\"unverified\"}"), ==, 0);
}

/* A caller on relay A, a callee on relay B: the call rings, connects,
 * negotiates through reports forwarded across the link, carries media both
 * ways (direct on loopback, or bridged by the relays with direct off), and
 * a hangup crosses the link (upstream drops it). */
static void
fed_call (gboolean direct)
{
  FedRelay *fa = fed_identity (0xa1), *fb = fed_identity (0xb2);
  Relay *ra, *rb;
  g_autofree gchar *fp_bob = fingerprint_of (0x41);
  Party *bob, *alice;
  guint got_a, got_b;
  WzpMediaPath path_a = WZP_MEDIA_PATH_NONE, path_b = WZP_MEDIA_PATH_NONE;
  WzpMediaPath want = direct ? WZP_MEDIA_PATH_DIRECT : WZP_MEDIA_PATH_RELAY;

  fed_pair (fa, fb, &ra, &rb);
  bob = party_new (rb, 0x41, "auto-answer", TRUE, "direct", direct, NULL);
  alice = party_new (ra, 0x42, "call-target", fp_bob, "direct", direct, NULL);
  g_assert_true (wzp_session_start (bob->s, NULL));
  g_assert_true (wait_state (bob, WZP_SESSION_STATE_REGISTERED, 5000));
  g_assert_true (wzp_session_start (alice->s, NULL));
  g_assert_true (has_step (alice, "call:ringing", 5000));
  g_assert_true (wait_state (alice, WZP_SESSION_STATE_ACTIVE, 5000));
  g_assert_true (wait_state (bob, WZP_SESSION_STATE_ACTIVE, 5000));
  g_assert_true (wait_negotiated (alice, 5000) && wait_negotiated (bob, 5000));
  /* each side heard the other's report: it crossed the link both ways */
  g_assert_true (has_step (alice, "connect:peer_report_received", 1000));
  g_assert_true (has_step (bob, "connect:peer_report_received", 1000));
  g_assert_cmpint (alice->use_direct, ==, direct);
  g_assert_cmpint (bob->use_direct, ==, direct);
  /* each relay forwarded two: its party's across the link, the other's to its party */
  g_assert_cmpuint (metric_of (ra, "wzp_relay_path_reports_forwarded_total"), ==, 2);
  g_assert_cmpuint (metric_of (rb, "wzp_relay_path_reports_forwarded_total"), ==, 2);
  g_usleep (100000);
  exchange (alice, bob, 50, &got_a, &got_b, &path_a, &path_b);
  g_test_message ("across two relays (%s): alice got %u via %s, bob got %u via %s",
                  direct ? "direct allowed" : "relay only", got_a, wzp_media_path_name (path_a),
                  got_b, wzp_media_path_name (path_b));
  g_assert_cmpuint (got_a, ==, 50);
  g_assert_cmpuint (got_b, ==, 50);
  g_assert_cmpint (path_a, ==, want);
  g_assert_cmpint (path_b, ==, want);
  assert_sealed (alice, bob, TRUE);
  if (!direct)
    g_assert_cmpuint (metric_of (ra, "wzp_federation_datagrams_received_total"), >=, 50);
  wzp_session_hangup (alice->s);
  g_assert_true (has_error (bob, WZP_SESSION_ERROR_HUNG_UP, 3000));
  party_free (alice);
  party_free (bob);
  relay_stop (ra);
  relay_stop (rb);
  fed_free (fa);
  fed_free (fb);
}

static void
test_federation_direct (void)
{
  fed_call (TRUE);
}

static void
test_federation_relay_only (void)
{
  fed_call (FALSE);
}

/* A reject on relay B reaches the caller on relay A (upstream loses it). */
static void
test_federation_reject (void)
{
  FedRelay *fa = fed_identity (0xa3), *fb = fed_identity (0xb4);
  Relay *ra, *rb;
  g_autofree gchar *fp_bob = fingerprint_of (0x43);
  Party *bob, *alice;

  fed_pair (fa, fb, &ra, &rb);
  bob = party_new (rb, 0x43, NULL);
  alice = party_new (ra, 0x44, "call-target", fp_bob, NULL);
  g_assert_true (wzp_session_start (bob->s, NULL));
  g_assert_true (wait_state (bob, WZP_SESSION_STATE_REGISTERED, 5000));
  g_assert_true (wzp_session_start (alice->s, NULL));
  g_assert_true (wait_state (bob, WZP_SESSION_STATE_RINGING, 5000));
  wzp_session_answer (bob->s, FALSE);
  g_assert_true (has_error (alice, WZP_SESSION_ERROR_REJECTED, 5000));
  party_free (alice);
  party_free (bob);
  relay_stop (ra);
  relay_stop (rb);
  fed_free (fa);
  fed_free (fb);
}

/* Refused links: a relay B does not trust, and a relay that dials B
 * pinned to another certificate than B's. */
static void
test_federation_untrusted (void)
{
  FedRelay *fb = fed_identity (0xb5), *fc = fed_identity (0xc6), *fd = fed_identity (0xd7);
  Relay *rb, *rc, *rd;
  g_autofree gchar *conf_c = NULL, *conf_d = NULL;

  rb = fed_start (fb, "[federation]\nglobal-rooms = lobby\n");
  conf_c = g_strdup_printf ("[peer:b]\nurl = %s\nfingerprint = %s\n", rb->addr, fb->tls_fp);
  rc = fed_start (fc, conf_c);
  /* C's hello names its own certificate, which B does not trust */
  g_assert_true (wait_metric (rb, "wzp_federation_links_total{outcome=\"refused\"}", 1, 5000));
  g_assert_cmpuint (metric_of (rb, "wzp_federation_links_up"), ==, 0);
  /* D pins a fingerprint B does not present: D never brings the link up */
  conf_d = g_strdup_printf ("[peer:b]\nurl = %s\nfingerprint = %s\n", rb->addr, fc->tls_fp);
  rd = fed_start (fd, conf_d);
  g_usleep (1000000);
  g_assert_cmpuint (metric_of (rd, "wzp_federation_links_up"), ==, 0);
  g_assert_cmpuint (metric_of (rb, "wzp_federation_links_up"), ==, 0);
  relay_stop (rd);
  relay_stop (rc);
  relay_stop (rb);
  fed_free (fb);
  fed_free (fc);
  fed_free (fd);
}

static guint
participants_of (Party *p)
{
  g_auto (GStrv) m = wzp_session_dup_participants (p->s);

  return m ? g_strv_length (m) : 0;
}

static gboolean
wait_participants (Party *p, guint n, guint ms)
{
  gint64 end = g_get_monotonic_time () + (gint64) ms * 1000;

  while (participants_of (p) != n) {
    if (g_get_monotonic_time () > end)
      return FALSE;
    g_usleep (5000);
  }
  return TRUE;
}

static gboolean
has_relay_labels (Party *p, const gchar *a, const gchar *b)
{
  gboolean yes;

  g_mutex_lock (&p->lock);
  yes = p->relays && g_strv_contains ((const gchar *const *) p->relays, a) &&
      g_strv_contains ((const gchar *const *) p->relays, b);
  g_mutex_unlock (&p->lock);
  return yes;
}

static gboolean
wait_relay_labels (Party *p, const gchar *a, const gchar *b, guint ms)
{
  gint64 end = g_get_monotonic_time () + (gint64) ms * 1000;

  while (!has_relay_labels (p, a, b)) {
    if (g_get_monotonic_time () > end)
      return FALSE;
    g_usleep (5000);
  }
  return TRUE;
}

/* A global room over three relays in a line, A - B - C, one member on each:
 * everyone hears the two others exactly once (the middle relay passes A's
 * and C's media on; dedup keeps copies out), RoomUpdates list all three with
 * their relays' labels, and when C dies its member leaves the others' lists
 * within 20 s. */
static void
test_federation_global_room (void)
{
  FedRelay *fa = fed_identity (0xa8), *fb = fed_identity (0xb9), *fc = fed_identity (0xca);
  Relay *ra, *rb, *rc;
  g_autofree gchar *conf_b = g_strdup_printf ("[trusted]\nfingerprints = %s;%s\n[federation]\n"
                                              "global-rooms = lobby\nlabel = Relay B\n",
                                              fa->tls_fp, fc->tls_fp);
  g_autofree gchar *conf_a = NULL, *conf_c = NULL;
  Party *p[3];
  const gchar *labels[] = { "Relay A", "Relay B", "Relay C" };
  guint got[3][3] = { { 0 } };
  gint64 t0;

  rb = fed_start (fb, conf_b);
  conf_a = g_strdup_printf ("[peer:b]\nurl = %s\nfingerprint = %s\n[federation]\n"
                            "global-rooms = lobby\nlabel = Relay A\n", rb->addr, fb->tls_fp);
  conf_c = g_strdup_printf ("[peer:b]\nurl = %s\nfingerprint = %s\n[federation]\n"
                            "global-rooms = lobby\nlabel = Relay C\n", rb->addr, fb->tls_fp);
  ra = fed_start (fa, conf_a);
  rc = fed_start (fc, conf_c);
  g_assert_true (wait_metric (rb, "wzp_federation_links_up", 2, 5000));
  p[0] = party_new (ra, 0x51, "mode", "room", "room", "lobby", "alias", "ann", NULL);
  p[1] = party_new (rb, 0x52, "mode", "room", "room", "Lobby", "alias", "ben", NULL);
  p[2] = party_new (rc, 0x53, "mode", "room", "room", "lobby", "alias", "cy", NULL);
  for (guint i = 0; i < 3; i++) {
    g_assert_true (wzp_session_start (p[i]->s, NULL));
    g_assert_true (wait_state (p[i], WZP_SESSION_STATE_ACTIVE, 5000));
  }
  for (guint i = 0; i < 3; i++)
    g_assert_true (wait_participants (p[i], 3, 5000));
  /* A's member sees B's and C's with their relays' labels (the event that
   * carries them follows the participants' update the wait above saw) */
  g_assert_true (wait_relay_labels (p[0], "Relay B", "Relay C", 5000));

  for (guint n = 0; n < 30; n++) {
    for (guint i = 0; i < 3; i++) {
      guint8 frame[40];
      memset (frame, (guint8) i, sizeof frame);
      frame[0] = 0xf8;
      wzp_session_send_media (p[i]->s, frame, sizeof frame, WZP_CODEC_OPUS24K, n * 20);
    }
    g_usleep (10000);
  }
  for (guint i = 0; i < 3; i++) {
    WzpMediaFrame *f;
    while ((f = wzp_session_recv_media (p[i]->s, g_get_monotonic_time () + 300000))) {
      guint from = ((const guint8 *) g_bytes_get_data (f->payload, NULL))[1];
      if (from < 3)
        got[i][from]++;
      wzp_media_frame_free (f);
    }
  }
  for (guint i = 0; i < 3; i++) {
    g_test_message ("%s's member heard A %u, B %u, C %u", labels[i], got[i][0], got[i][1], got[i][2]);
    for (guint j = 0; j < 3; j++)
      g_assert_cmpuint (got[i][j], ==, i == j ? 0 : 30);
  }

  /* C vanishes without a word: within 20 s the others list two members */
  t0 = g_get_monotonic_time ();
  g_subprocess_force_exit (rc->proc);
  g_subprocess_wait (rc->proc, NULL, NULL);
  g_assert_true (wait_participants (p[0], 2, 20000));
  g_assert_true (wait_participants (p[1], 2, 1000));
  g_test_message ("C's member left A's list %.1f s after C died", (g_get_monotonic_time () - t0) / 1e6);
  for (guint i = 0; i < 3; i++)
    party_free (p[i]);
  relay_free (rc);
  relay_stop (ra);
  relay_stop (rb);
  fed_free (fa);
  fed_free (fb);
  fed_free (fc);
}

/* Randomized trials: per side, direct blocked or not, its report delayed
 * (sometimes past the peer's wait) or never sent, the relay's CallSetup
 * heard late (sometimes past the peer's direct limit); the relay shared. Every
 * trial must carry audio both ways, and both sides must end sending on the
 * same path (checked by the path the last frames arrive on). Timers are
 * shortened (100 ms direct limit, 150 ms report wait) so 300 trials fit. */
static void
test_randomized (void)
{
  const gchar *args[] = { "--max-conns-per-address", "100000", NULL };
  Relay *r = relay_start (relay_path, args);
  const gchar *env = g_getenv ("WZP_SESSION_TRIALS");
  guint trials = env ? (guint) g_ascii_strtoull (env, NULL, 10) : 300;
  g_autoptr (GRand) rnd = g_rand_new_with_seed (20261125);
  g_autoptr (GArray) setup_ms = g_array_new (FALSE, FALSE, sizeof (double));
  guint split = 0, silent = 0, on_direct = 0;

  for (guint t = 0; t < trials; t++) {
    guint8 sa = (guint8) (0x40 + (t * 2) % 180), sb = (guint8) (sa + 1);
    g_autofree gchar *fp_b = fingerprint_of (sb);
    gboolean block_a = g_rand_int_range (rnd, 0, 6) == 0, block_b = g_rand_int_range (rnd, 0, 6) == 0;
    guint delay_a = g_rand_boolean (rnd) ? 0 : g_rand_int_range (rnd, 0, 300);
    guint delay_b = g_rand_boolean (rnd) ? 0 : g_rand_int_range (rnd, 0, 300);
    gboolean rep_a = g_rand_int_range (rnd, 0, 8) != 0, rep_b = g_rand_int_range (rnd, 0, 8) != 0;
    guint late_a = g_rand_int_range (rnd, 0, 4) == 0 ? g_rand_int_range (rnd, 1, 200) : 0;
    guint late_b = g_rand_int_range (rnd, 0, 4) == 0 ? g_rand_int_range (rnd, 1, 200) : 0;
    Party *b = party_new (r, sb, "auto-answer", TRUE, "test-block-direct", block_b,
                          "test-report-delay-ms", delay_b, "send-path-report", rep_b,
                          "test-setup-delay-ms", late_b,
                          "direct-timeout-ms", 100, "report-timeout-ms", 150, NULL);
    Party *a = party_new (r, sa, "call-target", fp_b, "test-block-direct", block_a,
                          "test-report-delay-ms", delay_a, "send-path-report", rep_a,
                          "test-setup-delay-ms", late_a,
                          "direct-timeout-ms", 100, "report-timeout-ms", 150, NULL);
    WzpMediaPath last_a = WZP_MEDIA_PATH_NONE, last_b = WZP_MEDIA_PATH_NONE;
    gint64 t0, first_a = 0, first_b = 0, deadline;
    guint8 frame[40] = { 0 };

    g_assert_true (wzp_session_start (b->s, NULL));
    g_assert_true (wait_state (b, WZP_SESSION_STATE_REGISTERED, 5000));
    t0 = g_get_monotonic_time ();
    g_assert_true (wzp_session_start (a->s, NULL));
    deadline = t0 + 5 * G_USEC_PER_SEC;
    /* media every 5 ms from both sides for 800 ms after both hear each other */
    while (g_get_monotonic_time () < deadline) {
      WzpMediaFrame *f;
      wzp_session_send_media (a->s, frame, sizeof frame, WZP_CODEC_OPUS24K, 0);
      wzp_session_send_media (b->s, frame, sizeof frame, WZP_CODEC_OPUS24K, 0);
      g_usleep (5000);
      while ((f = wzp_session_recv_media (a->s, 0)) != NULL) {
        first_a = first_a ? first_a : f->received_us;
        last_a = f->path;
        wzp_media_frame_free (f);
      }
      while ((f = wzp_session_recv_media (b->s, 0)) != NULL) {
        first_b = first_b ? first_b : f->received_us;
        last_b = f->path;
        wzp_media_frame_free (f);
      }
      if (first_a && first_b && deadline - g_get_monotonic_time () > 800000)
        deadline = g_get_monotonic_time () + 800000;
    }
    if (!first_a || !first_b) {
      silent++;
      g_test_message ("trial %u silent: block %d/%d delay %u/%u report %d/%d late %u/%u", t,
                      block_a, block_b, delay_a, delay_b, rep_a, rep_b, late_a, late_b);
    } else {
      double ms = (MAX (first_a, first_b) - t0) / 1000.0;
      g_array_append_val (setup_ms, ms);
      if (last_a != last_b) {
        split++;
        g_test_message ("trial %u split: a hears %s, b hears %s (block %d/%d delay %u/%u report "
                        "%d/%d late %u/%u)", t, wzp_media_path_name (last_a),
                        wzp_media_path_name (last_b), block_a, block_b, delay_a, delay_b, rep_a,
                        rep_b, late_a, late_b);
      }
      on_direct += last_a == WZP_MEDIA_PATH_DIRECT;
    }
    party_free (a);
    party_free (b);
  }
  {
    gdouble *v = (gdouble *) setup_ms->data;
    guint n = setup_ms->len;
    for (guint i = 1; i < n; i++)        /* insertion sort: n is small */
      for (guint j = i; j > 0 && v[j - 1] > v[j]; j--) {
        gdouble x = v[j]; v[j] = v[j - 1]; v[j - 1] = x;
      }
    g_test_message ("%u trials: %u silent, %u split, %u ended on direct; setup to audio both ways "
                    "ms: min %.1f p50 %.1f p90 %.1f p99 %.1f max %.1f", trials, silent, split, on_direct,
                    n ? v[0] : 0, n ? v[n / 2] : 0, n ? v[n * 9 / 10] : 0, n ? v[n * 99 / 100] : 0,
                    n ? v[n - 1] : 0);
  }
  g_assert_cmpuint (silent, ==, 0);
  g_assert_cmpuint (split, ==, 0);
  relay_stop (r);
}


/* A relay that validates tokens: both sides authenticate, the callee is
 * reached by the auth server's fingerprint, the call carries audio. The stub
 * auth server runs in a thread of its own. */
static gpointer
stub_thread (gpointer data)
{
  GMainLoop *loop = data;

  g_main_context_push_thread_default (g_main_loop_get_context (loop));
  g_main_loop_run (loop);
  g_main_context_pop_thread_default (g_main_loop_get_context (loop));
  return NULL;
}

static void
test_token_auth (void)
{
  g_autoptr (GMainContext) ctx = g_main_context_new ();
  GMainLoop *loop = g_main_loop_new (ctx, FALSE);
  g_autofree gchar *url = NULL;
  AuthStub *stub;
  GThread *t;
  Relay *r;
  Party *a, *b;
  guint got_a, got_b;
  WzpMediaPath pa, pb;
  const gchar *args[3] = { "--auth-url", NULL, NULL };

  g_main_context_push_thread_default (ctx);
  stub = auth_stub_start (&url);
  g_main_context_pop_thread_default (ctx);
  t = g_thread_new ("auth-stub", stub_thread, loop);
  args[1] = url;
  r = relay_start (relay_path, args);
  b = party_new (r, 0x11, "auto-answer", TRUE, "token", "good-bob", "direct", FALSE, NULL);
  a = party_new (r, 0x2a, "call-target", "auth-bob", "token", "good-alice", "direct", FALSE, NULL);
  g_assert_true (wzp_session_start (b->s, NULL));
  g_assert_true (wait_state (b, WZP_SESSION_STATE_REGISTERED, 5000));
  g_assert_true (wzp_session_start (a->s, NULL));
  g_assert_true (wait_state (a, WZP_SESSION_STATE_ACTIVE, 5000));
  g_assert_true (wait_state (b, WZP_SESSION_STATE_ACTIVE, 5000));
  g_usleep (100000);
  exchange (a, b, 20, &got_a, &got_b, &pa, &pb);
  g_assert_cmpuint (got_a, ==, 20);
  g_assert_cmpuint (got_b, ==, 20);
  {
    /* sealed; the caller dialled "auth-bob", a name from the auth server,
     * not a key fingerprint: the callee is not authenticated to it. The
     * callee saw the caller's own key fingerprint in the offer, proved. */
    WzpSessionStats sa, sb;
    wzp_session_get_stats (a->s, &sa);
    wzp_session_get_stats (b->s, &sb);
    g_assert_true (sa.encrypted && sb.encrypted);
    g_assert_false (sa.peer_authenticated);
    g_assert_true (sb.peer_authenticated);
  }
  party_free (a);
  party_free (b);
  /* a bad token: the registration is refused and the session says so */
  a = party_new (r, 0x2a, "token", "wrong", NULL);
  g_assert_true (wzp_session_start (a->s, NULL));
  g_assert_true (has_error (a, WZP_SESSION_ERROR_NOT_AUTHORIZED, 5000));
  g_assert_nonnull (strstr (a->error->message, "refused our token"));
  party_free (a);
  relay_stop (r);
  g_main_loop_quit (loop);
  g_thread_join (t);
  g_main_context_push_thread_default (ctx);
  auth_stub_stop (stub);
  g_main_context_pop_thread_default (ctx);
  g_main_loop_unref (loop);
}

/* ---- end-to-end protection ---------------------------------------------- */

/* A call on the relay path, with the relay's test hooks set from @env
 * (NULL-terminated KEY=VALUE list), @enc_a / @enc_b the parties' encryption
 * settings; 50 frames each way. */
static void
hooked_call (const gchar *const *env, const gchar *enc_a, const gchar *enc_b, Party **pa, Party **pb,
             Relay **pr, guint *got_a, guint *got_b)
{
  g_autofree gchar *fp_b = fingerprint_of (0x11);
  WzpMediaPath path_a, path_b;

  for (guint i = 0; env && env[i]; i++) {
    g_auto (GStrv) kv = g_strsplit (env[i], "=", 2);
    g_setenv (kv[0], kv[1], TRUE);
  }
  *pr = relay_start (relay_path, NULL);
  for (guint i = 0; env && env[i]; i++) {
    g_auto (GStrv) kv = g_strsplit (env[i], "=", 2);
    g_unsetenv (kv[0]);
  }
  *pb = party_new (*pr, 0x11, "auto-answer", TRUE, "direct", FALSE, "encryption", enc_b, NULL);
  *pa = party_new (*pr, 0x2a, "call-target", fp_b, "direct", FALSE, "encryption", enc_a, NULL);
  g_assert_true (wzp_session_start ((*pb)->s, NULL));
  g_assert_true (wait_state (*pb, WZP_SESSION_STATE_REGISTERED, 5000));
  g_assert_true (wzp_session_start ((*pa)->s, NULL));
  g_assert_true (wait_state (*pa, WZP_SESSION_STATE_ACTIVE, 5000));
  g_assert_true (wait_state (*pb, WZP_SESSION_STATE_ACTIVE, 5000));
  g_assert_true (wait_negotiated (*pa, 5000) && wait_negotiated (*pb, 5000));
  g_usleep (100000);
  exchange (*pa, *pb, 50, got_a, got_b, &path_a, &path_b);
}

/* Shannon entropy of @data, bits per byte */
static gdouble
entropy (const guint8 *data, gsize len)
{
  guint counts[256] = { 0 };
  gdouble h = 0;

  for (gsize i = 0; i < len; i++)
    counts[data[i]]++;
  for (guint i = 0; i < 256; i++)
    if (counts[i])
      h -= counts[i] / (gdouble) len * log2 (counts[i] / (gdouble) len);
  return h;
}

/* What a relay that records the call's media holds: with encryption, no
 * frame as it was sent and bytes as random as ciphertext; with
 * encryption=off (the check that the recording works) the frames as sent. */
static void
test_e2e_relay_sees_ciphertext (void)
{
  for (gint sealed = 1; sealed >= 0; sealed--) {
    g_autofree gchar *dir = g_dir_make_tmp ("wzp-tap-XXXXXX", NULL);
    g_autofree gchar *tap = g_build_filename (dir, "tap", NULL);
    g_autofree gchar *kv = g_strdup_printf ("WZP_RELAY_TEST_TAP=%s", tap);
    const gchar *env[] = { kv, NULL };
    g_autofree gchar *data = NULL;
    gsize len, plain = 0, frames = 0;
    g_autoptr (GByteArray) payloads = g_byte_array_new ();
    Party *a, *b;
    Relay *r;
    guint got_a, got_b;

    hooked_call (env, sealed ? "auto" : "off", "auto", &a, &b, &r, &got_a, &got_b);
    g_assert_cmpuint (got_a, ==, 50);
    g_assert_cmpuint (got_b, ==, 50);
    assert_sealed (a, b, sealed);
    party_free (a);
    party_free (b);
    relay_stop (r);
    g_assert_true (g_file_get_contents (tap, &data, &len, NULL));
    for (gsize at = 0; at + 2 <= len;) {
      gsize n = ((guint8) data[at] << 8) | (guint8) data[at + 1];
      WzpMediaPacket pkt;

      g_assert_cmpuint (at + 2 + n, <=, len);
      g_assert_true (wzp_media_packet_parse ((const guint8 *) data + at + 2, n, &pkt, NULL));
      frames++;
      g_assert_cmpuint (pkt.payload_len, ==, sealed ? 80 + WZP_E2E_TAG_SIZE : 80);
      /* the frames were 80 bytes of one value each */
      {
        gboolean uniform = TRUE;
        for (gsize i = 1; i < 80; i++)
          uniform &= pkt.payload[i] == pkt.payload[0];
        plain += uniform;
      }
      g_byte_array_append (payloads, pkt.payload, pkt.payload_len);
      at += 2 + n;
    }
    g_test_message ("%s: the relay forwarded %" G_GSIZE_FORMAT " frames, %" G_GSIZE_FORMAT
                    " of them readable; payload entropy %.2f bits/byte", sealed ? "sealed" : "off",
                    frames, plain, entropy (payloads->data, payloads->len));
    g_assert_cmpuint (frames, ==, 100);
    if (sealed) {
      g_assert_cmpuint (plain, ==, 0);
      g_assert_cmpfloat (entropy (payloads->data, payloads->len), >, 7.8);
    } else {
      g_assert_cmpuint (plain, ==, 100);
      g_assert_cmpfloat (entropy (payloads->data, payloads->len), <, 6.0);
    }
    g_unlink (tap);
    g_rmdir (dir);
  }
}

/* A relay that flips a bit of every 10th datagram and forwards every 7th
 * twice: each altered frame is dropped and counted, each replay too, and
 * nothing else is lost. 100 datagrams: 10 altered, 14 replayed, one of them
 * (the 70th) both, so 11 failures and 13 replays. */
static void
test_e2e_tamper (void)
{
  const gchar *env[] = { "WZP_RELAY_TEST_FLIP_EVERY=10", "WZP_RELAY_TEST_REPLAY_EVERY=7", NULL };
  Party *a, *b;
  Relay *r;
  guint got_a, got_b;
  WzpSessionStats sa, sb;

  hooked_call (env, "auto", "auto", &a, &b, &r, &got_a, &got_b);
  wzp_session_get_stats (a->s, &sa);
  wzp_session_get_stats (b->s, &sb);
  g_test_message ("got %u + %u; auth failures %" G_GUINT64_FORMAT " + %" G_GUINT64_FORMAT
                  ", replays %" G_GUINT64_FORMAT " + %" G_GUINT64_FORMAT, got_a, got_b,
                  sa.frames_auth_failed, sb.frames_auth_failed, sa.frames_replayed, sb.frames_replayed);
  g_assert_cmpuint (got_a + got_b, ==, 90);
  g_assert_cmpuint (sa.frames_auth_failed + sb.frames_auth_failed, ==, 11);
  g_assert_cmpuint (sa.frames_replayed + sb.frames_replayed, ==, 13);
  party_free (a);
  party_free (b);
  relay_stop (r);
}

/* encryption=required against a peer that will not: the caller's call
 * ends with NOT_ENCRYPTED; a callee refuses the caller's offer (declined);
 * auto with off stays plaintext and works */
static void
test_e2e_modes (void)
{
  Relay *r = relay_start (relay_path, NULL);
  g_autofree gchar *fp_b = fingerprint_of (0x11);
  Party *a, *b;

  b = party_new (r, 0x11, "auto-answer", TRUE, "encryption", "off", NULL);
  a = party_new (r, 0x2a, "call-target", fp_b, "encryption", "required", NULL);
  g_assert_true (wzp_session_start (b->s, NULL));
  g_assert_true (wait_state (b, WZP_SESSION_STATE_REGISTERED, 5000));
  g_assert_true (wzp_session_start (a->s, NULL));
  g_assert_true (has_error (a, WZP_SESSION_ERROR_NOT_ENCRYPTED, 5000));
  party_free (a);
  party_free (b);

  b = party_new (r, 0x11, "auto-answer", TRUE, "encryption", "required", NULL);
  a = party_new (r, 0x2a, "call-target", fp_b, "encryption", "off", NULL);
  g_assert_true (wzp_session_start (b->s, NULL));
  g_assert_true (wait_state (b, WZP_SESSION_STATE_REGISTERED, 5000));
  g_assert_true (wzp_session_start (a->s, NULL));
  g_assert_true (has_error (a, WZP_SESSION_ERROR_REJECTED, 5000));
  g_assert_true (has_step (b, "call:refused_unencrypted", 1000));
  g_assert_cmpint (wzp_session_get_state (b->s), ==, WZP_SESSION_STATE_REGISTERED);
  party_free (a);
  party_free (b);
  relay_stop (r);

  {
    Party *pa, *pb;
    Relay *pr;
    guint got_a, got_b;

    hooked_call (NULL, "auto", "off", &pa, &pb, &pr, &got_a, &got_b);
    g_assert_cmpuint (got_a, ==, 50);
    g_assert_cmpuint (got_b, ==, 50);
    assert_sealed (pa, pb, FALSE);
    party_free (pa);
    party_free (pb);
    relay_stop (pr);
  }
}

/* An intruder that knows the call id dials the Acceptor with SNI call-<id>
 * before the real Dialer: once with no certificate (as upstream clients),
 * once with another identity's. Both are refused and counted; the Dialer's
 * connection, which shows the key that signed its offer, is the direct path. */
static gboolean
intruder_done (WzpConnection *c)
{
  return wzp_connection_get_state (c) == WZP_CONNECTION_CLOSED;
}

static void
test_e2e_direct_intruder (void)
{
  Relay *r = relay_start (relay_path, NULL);
  g_autofree gchar *fp_b = fingerprint_of (0x11);
  guint16 p1 = free_port (), p2 = free_port ();
  g_autofree gchar *a1 = g_strdup_printf ("127.0.0.1:%u", p1);
  g_autofree gchar *a2 = g_strdup_printf ("127.0.0.1:%u", p2);
  const gchar *acceptor_addr = strcmp (a1, a2) < 0 ? a1 : a2;
  Party *b = party_new (r, 0x11, "auto-answer", TRUE, "local-port", strcmp (a1, a2) < 0 ? p1 : p2, NULL);
  Party *a = party_new (r, 0x2a, "call-target", fp_b, "local-port", strcmp (a1, a2) < 0 ? p2 : p1, NULL);
  g_autoptr (GSocketAddress) target = wzp_socket_address_parse (acceptor_addr, NULL);
  g_autoptr (GSocketAddress) any = wzp_socket_address_parse ("127.0.0.1:0", NULL);
  g_autofree gchar *call_id = NULL, *sni = NULL;
  WzpSessionStats st;
  guint got_a, got_b;
  WzpMediaPath path_a = WZP_MEDIA_PATH_NONE, path_b = WZP_MEDIA_PATH_NONE;

  /* the Dialer acts on its CallSetup 800 ms late: the intruders come first */
  wzp_session_set_test_fault (a->s, "test-setup-delay-ms", 800);
  g_assert_true (wzp_session_start (b->s, NULL));
  g_assert_true (wait_state (b, WZP_SESSION_STATE_REGISTERED, 5000));
  g_assert_true (wzp_session_start (a->s, NULL));
  g_assert_true (has_step (b, "connect:role", 5000));
  call_id = wzp_session_dup_call_id (b->s);
  sni = g_strconcat ("call-call-", call_id, NULL);    /* "call-" + the CallSetup room */
  for (gint with_cert = 0; with_cert <= 1; with_cert++) {
    g_autoptr (WzpEndpoint) ep = wzp_endpoint_new (any, NULL, NULL, NULL);
    g_autoptr (WzpConnection) c = NULL;
    guint8 other[32];

    memset (other, 0x77, sizeof other);
    if (with_cert)
      g_assert_true (wzp_endpoint_listen (ep, other, NULL));
    c = wzp_endpoint_connect (ep, target, sni, NULL, NULL);
    g_assert_nonnull (c);
    {
      gint64 end = g_get_monotonic_time () + 3 * G_USEC_PER_SEC;
      while (!intruder_done (c) && g_get_monotonic_time () < end)
        g_main_context_iteration (NULL, FALSE), g_usleep (500);
    }
    g_assert_true (intruder_done (c));
    g_test_message ("intruder %s a certificate: %s", with_cert ? "with" : "without",
                    wzp_connection_get_peer_close (c, NULL, NULL));
    g_assert_cmpstr (wzp_connection_get_peer_close (c, NULL, NULL), ==, "not-the-peer");
  }
  g_assert_true (wait_state (a, WZP_SESSION_STATE_ACTIVE, 5000));
  g_assert_true (wait_state (b, WZP_SESSION_STATE_ACTIVE, 5000));
  g_assert_true (wait_negotiated (a, 5000) && wait_negotiated (b, 5000));
  g_assert_true (a->use_direct && b->use_direct);
  g_usleep (100000);
  exchange (a, b, 50, &got_a, &got_b, &path_a, &path_b);
  g_assert_cmpuint (got_a, ==, 50);
  g_assert_cmpuint (got_b, ==, 50);
  g_assert_cmpint (path_a, ==, WZP_MEDIA_PATH_DIRECT);
  g_assert_cmpint (path_b, ==, WZP_MEDIA_PATH_DIRECT);
  assert_sealed (a, b, TRUE);
  wzp_session_get_stats (b->s, &st);
  g_assert_cmpuint (st.direct_refused, ==, 2);
  party_free (a);
  party_free (b);
  relay_stop (r);
}

/* An upstream-like caller (the test client: an unsigned DirectCallOffer with
 * zero keys, as upstream's app sends, and plain media) calls a gst-wzp callee
 * with encryption=auto: the call works in plaintext both ways, and the
 * callee reports it neither sealed nor authenticated. */
static void
test_e2e_upstream_peer (void)
{
  Relay *r = relay_start (relay_path, NULL);
  g_autofree gchar *fp_b = fingerprint_of (0x11);
  Party *b = party_new (r, 0x11, "auto-answer", TRUE, "direct", FALSE, NULL);
  Client *sig = client_new (0x55), *media = client_new (0x55);
  g_autoptr (WzpSignal) setup = NULL;
  WzpSignal *offer = wzp_signal_new (WZP_SIGNAL_DIRECT_CALL_OFFER);
  WzpSessionStats st;
  guint8 frame[80], pkt[128];
  guint got = 0, plain = 0;
  gsize n;

  g_assert_true (wzp_session_start (b->s, NULL));
  g_assert_true (wait_state (b, WZP_SESSION_STATE_REGISTERED, 5000));
  client_register (sig, r);
  offer->direct_call_offer.caller_fingerprint = g_strdup (wzp_identity_get_fingerprint (sig->id));
  offer->direct_call_offer.target_fingerprint = g_strdup (fp_b);
  offer->direct_call_offer.call_id = g_strdup ("18a2b3c4d5e6f708");
  offer->direct_call_offer.signature = g_bytes_new (NULL, 0);
  offer->direct_call_offer.supported_profiles = g_array_new (FALSE, FALSE, sizeof (WzpQualityProfile));
  g_array_append_val (offer->direct_call_offer.supported_profiles, WZP_PROFILE_GOOD);
  client_send (sig, offer);
  setup = client_expect (sig, WZP_SIGNAL_CALL_SETUP);
  join_room (media, r, setup->call_setup.room);
  g_assert_true (wait_state (b, WZP_SESSION_STATE_ACTIVE, 5000));
  g_assert_true (wait_negotiated (b, 5000));
  /* plain frames from the upstream-like caller reach the callee as sent */
  for (guint i = 0; i < 30; i++) {
    WzpMediaHeader h = { .codec = WZP_CODEC_OPUS24K, .seq = (guint16) i, .timestamp = i * 20 };
    memset (frame, (guint8) i, sizeof frame);
    n = wzp_media_packet_write (&h, frame, sizeof frame, NULL, pkt, sizeof pkt);
    g_assert_true (wzp_connection_send_datagram (media->conn, pkt, n, NULL));
    settle (5);
  }
  for (;;) {
    WzpMediaFrame *f = wzp_session_recv_media (b->s, g_get_monotonic_time () + 300000);
    if (f == NULL)
      break;
    got++;
    g_assert_true (frame_intact (f));
    wzp_media_frame_free (f);
  }
  g_assert_cmpuint (got, ==, 30);
  /* and the callee's frames reach it in plaintext */
  media->keep_datagrams = TRUE;
  for (guint i = 0; i < 30; i++) {
    memset (frame, (guint8) i, sizeof frame);
    wzp_session_send_media (b->s, frame, sizeof frame, WZP_CODEC_OPUS24K, i * 20);
    settle (5);
  }
  settle (300);
  for (guint i = 0; i < media->datagram_log->len; i++) {
    WzpMediaPacket p;
    gsize len;
    const guint8 *d = g_bytes_get_data (g_ptr_array_index (media->datagram_log, i), &len);
    g_assert_true (wzp_media_packet_parse (d, len, &p, NULL));
    plain += p.payload_len == 80 && p.payload[0] == p.payload[79];
  }
  g_assert_cmpuint (plain, ==, 30);
  wzp_session_get_stats (b->s, &st);
  g_assert_false (st.encrypted);
  g_assert_false (st.peer_authenticated);
  client_free (media);
  client_free (sig);
  party_free (b);
  relay_stop (r);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  relay_path = g_getenv ("WZP_RELAY");
  g_assert_nonnull (relay_path);
  g_test_add_func ("/session/relay-only", test_relay_only);
  g_test_add_func ("/session/direct", test_direct);
  g_test_add_func ("/session/peer-without-report", test_peer_without_report);
  g_test_add_func ("/session/setup-after-dial", test_setup_after_dial);
  g_test_add_func ("/session/direct-blocked", test_direct_blocked);
  g_test_add_func ("/session/switch-without-loss", test_switch_without_loss);
  g_test_add_func ("/session/reject-and-unreachable", test_reject_and_unreachable);
  g_test_add_func ("/session/relay-down", test_relay_down);
  g_test_add_func ("/session/token-auth", test_token_auth);
  g_test_add_func ("/session/relay-killed", test_relay_killed);
  g_test_add_func ("/session/relay-restart-direct", test_relay_restart_direct);
  g_test_add_func ("/session/room-mode", test_room_mode);
  g_test_add_func ("/session/asymmetric", test_asymmetric);
  g_test_add_func ("/session/media-timeout", test_media_timeout);
  g_test_add_func ("/federation/direct-call", test_federation_direct);
  g_test_add_func ("/federation/relay-only-call", test_federation_relay_only);
  g_test_add_func ("/federation/reject", test_federation_reject);
  g_test_add_func ("/federation/untrusted", test_federation_untrusted);
  g_test_add_func ("/federation/global-room", test_federation_global_room);
  g_test_add_func ("/session/randomized", test_randomized);
  g_test_add_func ("/e2e/relay-sees-ciphertext", test_e2e_relay_sees_ciphertext);
  g_test_add_func ("/e2e/tamper", test_e2e_tamper);
  g_test_add_func ("/e2e/modes", test_e2e_modes);
  g_test_add_func ("/e2e/direct-intruder", test_e2e_direct_intruder);
  g_test_add_func ("/e2e/upstream-peer", test_e2e_upstream_peer);
  return g_test_run ();
}
