/* wzp-tool call / answer: a test call from the shell. Places (or answers) a
 * call through a relay with a WzpSession, sends synthetic 20 ms Opus-sized
 * frames once the call is up, counts what arrives on which path and prints
 * one JSON line with the outcome. Used by the network lab (tests/net/) and
 * by operators checking a relay or a NAT. */
#include "wzp-tool-call.h"

#include <stdio.h>
#include <string.h>

#include "wzp-identity.h"
#include "wzp-jitter.h"
#include "wzp-session.h"
#include "wzp-signal.h"

typedef struct {
  GMutex lock;
  gint64 started_us;
  gint64 negotiated_us;        /* connect:path_negotiated, 0 until then */
  gboolean local_direct_ok, peer_direct_ok, peer_report;
  gchar *direct_addr;          /* where the direct connection went */
  gchar *error;
  gboolean verbose;
} CallLog;

static void
on_event (WzpSession *s, const gchar *step, GVariant *data, CallLog *log)
{
  g_mutex_lock (&log->lock);
  if (g_str_equal (step, "connect:path_negotiated")) {
    log->negotiated_us = g_get_monotonic_time ();
    g_variant_lookup (data, "local_direct_ok", "b", &log->local_direct_ok);
    g_variant_lookup (data, "peer_direct_ok", "b", &log->peer_direct_ok);
  } else if (g_str_equal (step, "connect:dual_path_race_done")) {
    g_free (log->direct_addr);
    log->direct_addr = NULL;
    g_variant_lookup (data, "address", "s", &log->direct_addr);
  } else if (g_str_equal (step, "connect:peer_report_received")) {
    log->peer_report = TRUE;
  }
  if (log->verbose) {
    g_autofree gchar *text = g_variant_print (data, FALSE);
    fprintf (stderr, "%8.1f ms %s %s\n", (g_get_monotonic_time () - log->started_us) / 1000.0,
             step, text);
  }
  g_mutex_unlock (&log->lock);
}

static void
on_error (WzpSession *s, const GError *error, CallLog *log)
{
  g_mutex_lock (&log->lock);
  if (log->error == NULL)
    log->error = g_strdup (error->message);
  g_mutex_unlock (&log->lock);
}

static gboolean
wait_state (WzpSession *s, WzpSessionState want, gint64 deadline)
{
  while (g_get_monotonic_time () < deadline) {
    WzpSessionState st = wzp_session_get_state (s);
    if (st == want)
      return TRUE;
    if (st == WZP_SESSION_STATE_ENDED)
      return FALSE;
    g_usleep (2000);
  }
  return FALSE;
}

/* a JSON string literal (libwzp's serde-style quoting), "" when unusable */
static gchar *
json_string (const gchar *s)
{
  gchar *q = wzp_json_quote (s ? s : "", NULL);

  return q ? q : g_strdup ("\"\"");
}

/* everything the playout buffer has to give out by @now (frames, gaps) */
static void
playout_drain (WzpJitter *j, gint64 now)
{
  WzpMediaFrame *f = NULL;
  guint gap;
  gint64 wake;
  WzpJitterOutput o;

  while ((o = wzp_jitter_pop (j, now, &f, &gap, &wake)) != WZP_JITTER_NONE)
    if (o == WZP_JITTER_FRAME)
      wzp_media_frame_free (g_steal_pointer (&f));
}

int
wzp_tool_call (int argc, char **argv, gboolean answer)
{
  const gchar *relay, *target = NULL, *identity = NULL, *pin = NULL, *alias = NULL;
  guint64 frames = 250, report_ms = 3000, direct_ms = 2000, timeout_s = 30;
  gboolean direct = TRUE, verbose = FALSE;
  g_autoptr (WzpSession) s = NULL;
  g_autoptr (GError) error = NULL;
  CallLog log = { 0 };
  WzpSessionStats st;
  guint64 sent = 0, received = 0, via_direct = 0, via_relay = 0;
  gint64 deadline, next, last_send = 0, active_us = 0;
  gboolean up, ok, peer_hung_up;
  WzpJitter *playout = NULL;
  WzpJitterStats js = { 0 };
  g_autoptr (GError) end = NULL;
  g_autofree gchar *err_json = NULL, *addr_json = NULL;
  int first = answer ? 1 : 2;

  if (argc < first)
    return wzp_tool_usage_error (answer ? "answer: the relay's HOST:PORT is missing" :
                                 "call: expected the relay's HOST:PORT and the callee's fingerprint");
  relay = argv[0];
  if (!answer)
    target = argv[1];
  for (int i = first; i < argc; i++) {
    const gchar *a = argv[i];
    gboolean more = i + 1 < argc;
    if (strcmp (a, "--identity") == 0 && more)
      identity = argv[++i];
    else if (strcmp (a, "--pin") == 0 && more)
      pin = argv[++i];
    else if (strcmp (a, "--alias") == 0 && more)
      alias = argv[++i];
    else if (strcmp (a, "--frames") == 0 && more &&
             g_ascii_string_to_unsigned (argv[i + 1], 10, 0, 1000000, &frames, NULL))
      i++;
    else if (strcmp (a, "--report-timeout") == 0 && more &&
             g_ascii_string_to_unsigned (argv[i + 1], 10, 1, 60000, &report_ms, NULL))
      i++;
    else if (strcmp (a, "--direct-timeout") == 0 && more &&
             g_ascii_string_to_unsigned (argv[i + 1], 10, 1, 60000, &direct_ms, NULL))
      i++;
    else if (strcmp (a, "--timeout") == 0 && more &&
             g_ascii_string_to_unsigned (argv[i + 1], 10, 1, 86400, &timeout_s, NULL))
      i++;
    else if (strcmp (a, "--no-direct") == 0)
      direct = FALSE;
    else if (strcmp (a, "--verbose") == 0)
      verbose = TRUE;
    else
      return wzp_tool_bad_option (answer ? "answer" : "call", (const gchar *const[]) {
          "--identity", "--pin", "--alias", "--frames", "--report-timeout", "--direct-timeout",
          "--timeout", NULL }, argc, argv, i);
  }

  g_mutex_init (&log.lock);
  log.verbose = verbose;
  s = wzp_session_new ();
  g_object_set (s, "relay", relay, "direct", direct, "report-timeout-ms", (guint) report_ms,
                "direct-timeout-ms", (guint) direct_ms, "auto-answer", answer, NULL);
  if (identity && strlen (identity) == 64 && strspn (identity, "0123456789abcdefABCDEF") == 64)
    g_object_set (s, "identity-hex", identity, NULL);
  else if (identity)
    g_object_set (s, "identity-file", identity, NULL);
  if (pin)
    g_object_set (s, "relay-fingerprint", pin, NULL);
  if (alias)
    g_object_set (s, "alias", alias, NULL);
  if (target)
    g_object_set (s, "call-target", target, NULL);
  g_signal_connect (s, "call-event", G_CALLBACK (on_event), &log);
  g_signal_connect (s, "error", G_CALLBACK (on_error), &log);

  log.started_us = g_get_monotonic_time ();
  deadline = log.started_us + (gint64) timeout_s * G_USEC_PER_SEC;
  if (!wzp_session_start (s, &error)) {
    fprintf (stderr, "wzp-tool: %s\n", error->message);
    return 1;
  }
  if (answer) {
    /* the caller may start once this line is out */
    if (wait_state (s, WZP_SESSION_STATE_REGISTERED, deadline)) {
      printf ("{\"registered\":true}\n");
      fflush (stdout);
    }
  }
  up = wait_state (s, WZP_SESSION_STATE_ACTIVE, deadline);
  if (up)
    active_us = g_get_monotonic_time ();

  playout = wzp_jitter_new_adaptive (20, 400);
  /* frames every 20 ms; receive in between */
  next = g_get_monotonic_time ();
  while (up && g_get_monotonic_time () < deadline) {
    gint64 now = g_get_monotonic_time ();
    WzpMediaFrame *f;

    if (wzp_session_get_state (s) == WZP_SESSION_STATE_ENDED)
      break;
    if (sent < frames && now >= next) {
      guint8 frame[60];
      memset (frame, (guint8) sent, sizeof frame);
      frame[0] = 0xf8;          /* an Opus TOC: CELT, 20 ms, one frame */
      if (wzp_session_send_media (s, frame, sizeof frame, WZP_CODEC_OPUS24K, (guint32) sent * 20))
        sent++;
      next += 20000;
      if (sent == frames)
        last_send = now;
    }
    /* after the last frame: the caller lingers 1.5 s, then hangs up; the
     * callee waits for that hangup (or 5 s) */
    if (sent == frames && now - last_send > (answer ? 5000000 : 1500000))
      break;
    f = wzp_session_recv_media (s, sent < frames ? next : now + 20000);
    while (f) {
      received++;
      if (f->path == WZP_MEDIA_PATH_DIRECT)
        via_direct++;
      else
        via_relay++;
      /* played out as wzpsrc would: what the listener would hear */
      wzp_jitter_push (playout, f);
      f = wzp_session_recv_media (s, 0);
    }
    playout_drain (playout, g_get_monotonic_time ());
  }
  playout_drain (playout, G_MAXINT64 / 4);
  wzp_jitter_get_stats (playout, &js);
  wzp_jitter_free (playout);
  wzp_session_get_stats (s, &st);
  end = wzp_session_dup_end_error (s);
  /* the other side hanging up before we sent all our frames is a normal end */
  peer_hung_up = g_error_matches (end, WZP_SESSION_ERROR, WZP_SESSION_ERROR_HUNG_UP);
  if (!answer)
    wzp_session_hangup (s);
  wzp_session_stop (s);

  g_mutex_lock (&log.lock);
  err_json = json_string (log.error ? log.error : "");
  addr_json = json_string (log.direct_addr ? log.direct_addr : "");
  ok = up && received > 0 && (sent == frames || peer_hung_up);
  printf ("{\"role\":\"%s\",\"ok\":%s,\"path\":\"%s\",\"local_direct_ok\":%s,\"peer_direct_ok\":%s,"
          "\"peer_report\":%s,\"active_ms\":%.1f,\"negotiated_ms\":%.1f,\"setup_ms\":%.1f,"
          "\"sent\":%" G_GUINT64_FORMAT ",\"received\":%" G_GUINT64_FORMAT ",\"via_direct\":%"
          G_GUINT64_FORMAT ",\"via_relay\":%" G_GUINT64_FORMAT ",\"dropped\":%" G_GUINT64_FORMAT
          ",\"rtt_ms\":%.1f,\"direct_addr\":%s,\"encrypted\":%s,\"peer_authenticated\":%s,"
          "\"auth_failed\":%" G_GUINT64_FORMAT ",\"played\":%" G_GUINT64_FORMAT ",\"concealed\":%"
          G_GUINT64_FORMAT ",\"late\":%" G_GUINT64_FORMAT ",\"target_ms\":%u,\"ended\":%s}\n",
          answer ? "callee" : "caller", ok ? "true" : "false", wzp_media_path_name (st.path),
          log.local_direct_ok ? "true" : "false", log.peer_direct_ok ? "true" : "false",
          log.peer_report ? "true" : "false",
          up ? (active_us - log.started_us) / 1000.0 : -1.0,
          log.negotiated_us ? (log.negotiated_us - log.started_us) / 1000.0 : -1.0,
          st.setup_us / 1000.0, sent, received, via_direct, via_relay, st.frames_dropped,
          st.rtt_us / 1000.0, addr_json, st.encrypted ? "true" : "false",
          st.peer_authenticated ? "true" : "false", st.frames_auth_failed, js.released, js.concealed,
          js.late, js.target_ms, err_json);
  g_free (log.error);
  g_free (log.direct_addr);
  g_mutex_unlock (&log.lock);
  g_mutex_clear (&log.lock);
  return ok ? 0 : 1;
}
