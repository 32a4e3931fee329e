/* wzp-tool: identities, signal messages and media packets from the shell. */
#include "wzp-config.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <gio/gio.h>

#include "wzp-featherchat.h"
#include "wzp-identity.h"
#include "wzp-quic.h"
#include "wzp-signal.h"
#include "wzp-tls.h"
#include "wzp-tool-call.h"
#include "wzp-util.h"
#include "wzp-wire.h"

static const gchar usage[] =
  "usage: wzp-tool COMMAND ...\n"
  "\n"
  "  identity new FILE          create a seed file (mode 0600) and print its fingerprint\n"
  "  identity show FILE         print the fingerprint and public keys of a seed file\n"
  "  signal decode              read one framed or bare JSON message on stdin and\n"
  "                             print it re-encoded as canonical compact JSON\n"
  "  signal encode [--hex]      read one JSON message on stdin and write it framed\n"
  "                             (4-byte big-endian length + JSON) to stdout\n"
  "  featherchat encode [--relay-addr ADDR] [--room NAME]\n"
  "                             read one signal message on stdin, print featherChat's\n"
  "                             CallSignal type and payload as JSON\n"
  "  featherchat decode         read a CallSignal payload on stdin, print its type,\n"
  "                             signal message, relay_addr and room as JSON\n"
  "  media decode [--federation] HEX\n"
  "                             print a media datagram's fields as JSON\n"
  "  ping HOST:PORT [--pin FP] [--timeout MS]\n"
  "                             QUIC handshake with SNI \"ping\"; prints the handshake\n"
  "                             time and the server's TLS fingerprint\n"
  "  reflect HOST:PORT [--timeout MS]\n"
  "                             prints the address the relay sees us at\n"
  "  version HOST:PORT [--timeout MS]\n"
  "                             asks a relay for its build id (SNI \"version\")\n"
  "  version                    print this tool's version and build id\n"
  "  call RELAY FINGERPRINT [OPTIONS]\n"
  "  answer RELAY [OPTIONS]     a test call: place (or wait for and answer) one call,\n"
  "                             send synthetic 20 ms frames once it is up, print one\n"
  "                             JSON line: negotiated path, setup time, frames sent and\n"
  "                             received per path. Options: --identity FILE|HEX,\n"
  "                             --pin FP, --alias NAME, --frames N (250), --no-direct,\n"
  "                             --report-timeout MS (3000), --direct-timeout MS (2000),\n"
  "                             --timeout S (30), --verbose (call events on stderr)\n";

/* "wzp-tool: ", @msg (taken) and @tail on stderr */
static void
say (gchar *msg, const gchar *tail)
{
  fprintf (stderr, "wzp-tool: %s%s", msg, tail);
  g_free (msg);
}

static int G_GNUC_PRINTF (1, 2)
fail (const gchar *fmt, ...)
{
  va_list ap;

  va_start (ap, fmt);
  say (g_strdup_vprintf (fmt, ap), "\n");
  va_end (ap);
  return 1;
}

/* What was wrong with the command line, then where the usage is; exit 2. */
int
wzp_tool_usage_error (const gchar *fmt, ...)
{
  va_list ap;

  va_start (ap, fmt);
  say (g_strdup_vprintf (fmt, ap), "\n(wzp-tool help prints the usage)\n");
  va_end (ap);
  return 2;
}

int
wzp_tool_bad_option (const gchar *cmd, const gchar *const *value_opts, int argc, char **argv, int i)
{
  if (value_opts && g_strv_contains (value_opts, argv[i]))
    return i + 1 < argc ?
        wzp_tool_usage_error ("%s: %s \"%s\" is not a valid value", cmd, argv[i], argv[i + 1]) :
        wzp_tool_usage_error ("%s: %s needs a value", cmd, argv[i]);
  return wzp_tool_usage_error ("%s: unknown argument \"%s\"", cmd, argv[i]);
}

#define usage_error(...) wzp_tool_usage_error (__VA_ARGS__)

/* One line: errors carry no newlines, whatever the parser said. */
static const gchar *
one_line (gchar *s)
{
  for (gchar *p = s; *p; p++)
    if (*p == '\n' || *p == '\r')
      *p = ' ';
  return s;
}

static int
cmd_identity (int argc, char **argv)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (WzpIdentity) id = NULL;

  if (argc != 2)
    return usage_error ("identity: expected \"identity new FILE\" or \"identity show FILE\"");
  if (strcmp (argv[0], "new") == 0) {
    id = wzp_identity_new_random ();
    if (!wzp_identity_save (id, argv[1], &error))
      return fail ("%s", one_line (error->message));
    printf ("%s\n", wzp_identity_get_fingerprint (id));
    return 0;
  }
  if (strcmp (argv[0], "show") == 0) {
    g_autofree gchar *pub = NULL, *x = NULL, *tls = NULL;

    id = wzp_identity_load (argv[1], &error);
    if (id == NULL)
      return fail ("%s", one_line (error->message));
    pub = wzp_hex_encode (wzp_identity_get_public_key (id), WZP_KEY_SIZE);
    x = wzp_hex_encode (wzp_identity_get_x25519_public_key (id), WZP_KEY_SIZE);
    tls = wzp_hex_encode (wzp_identity_get_tls_public_key (id), WZP_KEY_SIZE);
    printf ("fingerprint: %s\n", wzp_identity_get_fingerprint (id));
    printf ("ed25519_public: %s\n", pub);
    printf ("x25519_public: %s\n", x);
    printf ("tls_ed25519_public: %s\n", tls);
    {
      /* what a relay with this identity presents (and what peers pin) */
      g_autoptr (WzpTlsContext) ctx = wzp_tls_context_new_server (wzp_identity_get_tls_secret_key (id), NULL);
      if (ctx)
        printf ("tls_fingerprint: %s\n", wzp_tls_context_get_fingerprint (ctx));
    }
    return 0;
  }
  return usage_error ("identity: unknown command \"%s\" (new or show)", argv[0]);
}

static GBytes *
read_stdin (GError **error)
{
  g_autoptr (GByteArray) buf = g_byte_array_new ();
  guint8 chunk[65536];

  for (;;) {
    size_t n = fread (chunk, 1, sizeof chunk, stdin);

    if (n > 0)
      g_byte_array_append (buf, chunk, (guint) n);
    if (buf->len > WZP_SIGNAL_MAX_FRAME + 4 + 1024) {
      g_set_error (error, WZP_SIGNAL_ERROR, WZP_SIGNAL_ERROR_TOO_LARGE,
                   "input is larger than a 1 MiB message");
      return NULL;
    }
    if (n < sizeof chunk) {
      if (ferror (stdin)) {
        g_set_error (error, G_IO_ERROR, G_IO_ERROR_FAILED, "cannot read stdin");
        return NULL;
      }
      break;
    }
  }
  return g_byte_array_free_to_bytes (g_steal_pointer (&buf));
}

/* A frame starts with its big-endian length, whose first byte is 0 for any
 * frame within the 1 MiB limit; JSON never starts with a 0 byte. */
static gboolean
looks_framed (const guint8 *d, gsize len)
{
  return len >= 1 && d[0] == 0;
}

static WzpSignal *
read_message (GError **error)
{
  g_autoptr (GBytes) in = read_stdin (error);
  const guint8 *d;
  gsize len;

  if (in == NULL)
    return NULL;
  d = g_bytes_get_data (in, &len);
  if (looks_framed (d, len))
    return wzp_signal_from_frame (d, len, error);
  /* Bare JSON: a trailing newline from echo is not part of the message. */
  while (len > 0 && g_ascii_isspace (d[len - 1]))
    len--;
  return wzp_signal_from_json ((const gchar *) d, len, error);
}

/* featherChat's CallSignal payload (protocol §4.6) from a signal message,
 * and back. */
static int
cmd_featherchat (int argc, char **argv)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (WzpSignal) msg = NULL;

  if (argc >= 1 && strcmp (argv[0], "encode") == 0) {
    const gchar *relay_addr = NULL, *room = NULL;
    g_autofree gchar *payload = NULL, *quoted = NULL;

    for (int i = 1; i < argc; i++) {
      if (strcmp (argv[i], "--relay-addr") == 0 && i + 1 < argc)
        relay_addr = argv[++i];
      else if (strcmp (argv[i], "--room") == 0 && i + 1 < argc)
        room = argv[++i];
      else
        return wzp_tool_bad_option ("featherchat encode", (const gchar *const[]) { "--relay-addr", "--room", NULL },
                                    argc, argv, i);
    }
    msg = read_message (&error);
    if (msg == NULL)
      return fail ("invalid message: %s", one_line (error->message));
    payload = wzp_featherchat_encode (msg, relay_addr, room, &error);
    quoted = payload ? wzp_json_quote (payload, &error) : NULL;
    if (quoted == NULL)
      return fail ("cannot encode: %s", one_line (error->message));
    printf ("{\"signal_type\":\"%s\",\"payload\":%s}\n",
            wzp_call_signal_type_name (wzp_featherchat_signal_type (msg->type)), quoted);
    return 0;
  }
  if (argc == 1 && strcmp (argv[0], "decode") == 0) {
    g_autoptr (GBytes) in = read_stdin (&error);
    g_autofree gchar *relay_addr = NULL, *room = NULL, *json = NULL, *qa = NULL, *qr = NULL;
    const gchar *d;
    gsize len;

    if (in == NULL)
      return fail ("%s", one_line (error->message));
    d = g_bytes_get_data (in, &len);
    while (len > 0 && g_ascii_isspace (d[len - 1]))
      len--;
    msg = wzp_featherchat_decode (d, len, &relay_addr, &room, &error);
    if (msg == NULL)
      return fail ("invalid payload: %s", one_line (error->message));
    json = wzp_signal_to_json (msg, NULL, &error);
    qa = relay_addr ? wzp_json_quote (relay_addr, NULL) : g_strdup ("null");
    qr = room ? wzp_json_quote (room, NULL) : g_strdup ("null");
    if (json == NULL || qa == NULL || qr == NULL)
      return fail ("cannot encode the message");
    printf ("{\"signal_type\":\"%s\",\"signal\":%s,\"relay_addr\":%s,\"room\":%s}\n",
            wzp_call_signal_type_name (wzp_featherchat_signal_type (msg->type)), json, qa, qr);
    return 0;
  }
  return usage_error ("featherchat: expected \"encode [--relay-addr ADDR] [--room NAME]\" or \"decode\"");
}

static int
cmd_signal (int argc, char **argv)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (WzpSignal) msg = NULL;

  if (argc < 1)
    return usage_error ("signal: expected \"signal decode\" or \"signal encode [--hex]\"");
  if (strcmp (argv[0], "decode") == 0 && argc == 1) {
    g_autofree gchar *json = NULL;

    msg = read_message (&error);
    if (msg == NULL)
      return fail ("invalid message: %s", one_line (error->message));
    json = wzp_signal_to_json (msg, NULL, &error);
    if (json == NULL)
      return fail ("cannot encode: %s", one_line (error->message));
    printf ("%s\n", json);
    return 0;
  }
  if (strcmp (argv[0], "encode") == 0 &&
      (argc == 1 || (argc == 2 && strcmp (argv[1], "--hex") == 0))) {
    g_autoptr (GBytes) frame = NULL;
    const guint8 *d;
    gsize len;

    msg = read_message (&error);
    if (msg == NULL)
      return fail ("invalid message: %s", one_line (error->message));
    frame = wzp_signal_to_frame (msg, &error);
    if (frame == NULL)
      return fail ("cannot encode: %s", one_line (error->message));
    d = g_bytes_get_data (frame, &len);
    if (argc == 2) {
      g_autofree gchar *hex = wzp_hex_encode (d, len);
      printf ("%s\n", hex);
    } else if (fwrite (d, 1, len, stdout) != len) {
      return fail ("cannot write stdout");
    }
    return fflush (stdout) == 0 ? 0 : fail ("cannot write stdout");
  }
  return usage_error ("signal: expected \"signal decode\" or \"signal encode [--hex]\", not \"%s\"%s",
                      argv[0], argc > 2 ? " with more arguments" : "");
}

static int
cmd_media (int argc, char **argv)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (GBytes) bytes = NULL;
  g_autoptr (GString) out = g_string_new ("{");
  g_autofree gchar *payload_hex = NULL;
  gboolean federation = FALSE;
  WzpMediaPacket pkt;
  const guint8 *d;
  gsize len;

  const gchar *hex;

  if (argc < 2 || strcmp (argv[0], "decode") != 0)
    return usage_error ("media: expected \"media decode [--federation] HEX\"");
  federation = argc == 3 && strcmp (argv[1], "--federation") == 0;
  if (argc != (federation ? 3 : 2))
    return usage_error ("media decode: expected [--federation] and one HEX argument");
  hex = argv[argc - 1];
  bytes = wzp_hex_decode (hex, &error);
  if (bytes == NULL)
    return fail ("invalid hex: %s", error->message);
  d = g_bytes_get_data (bytes, &len);
  if (federation) {
    g_autofree gchar *tag = NULL;

    if (len < WZP_ROOM_HASH_SIZE)
      return fail ("invalid media packet: federation datagram shorter than its 8-byte room hash");
    tag = wzp_hex_encode (d, WZP_ROOM_HASH_SIZE);
    g_string_append_printf (out, "\"room_hash\":\"%s\",", tag);
    d += WZP_ROOM_HASH_SIZE;
    len -= WZP_ROOM_HASH_SIZE;
  }
  if (!wzp_media_packet_parse (d, len, &pkt, &error))
    return fail ("invalid media packet: %s", error->message);
  payload_hex = wzp_hex_encode (pkt.payload, pkt.payload_len);
  g_string_append_printf (out,
      "\"version\":%u,\"repair\":%s,\"codec\":\"%s\",\"codec_id\":%u,\"quality\":%s,"
      "\"fec_ratio\":%u,\"seq\":%u,\"timestamp\":%u,\"fec_block\":%u,\"fec_symbol\":%u,"
      "\"reserved\":%u,\"csrc_count\":%u,\"payload_len\":%" G_GSIZE_FORMAT ",\"payload\":\"%s\"",
      pkt.header.version, pkt.header.repair ? "true" : "false",
      wzp_codec_id_to_string (pkt.header.codec), pkt.header.codec,
      pkt.header.has_quality ? "true" : "false", pkt.header.fec_ratio, pkt.header.seq,
      pkt.header.timestamp, pkt.header.fec_block, pkt.header.fec_symbol,
      pkt.header.reserved, pkt.header.csrc_count, pkt.payload_len, payload_hex);
  if (pkt.header.has_quality)
    g_string_append_printf (out,
        ",\"quality_report\":{\"loss_pct\":%u,\"rtt_4ms\":%u,\"jitter_ms\":%u,"
        "\"bitrate_cap_kbps\":%u}", pkt.quality.loss_pct, pkt.quality.rtt_4ms,
        pkt.quality.jitter_ms, pkt.quality.bitrate_cap_kbps);
  g_string_append_c (out, '}');
  printf ("%s\n", out->str);
  return 0;
}

/* ---- ping / version: one QUIC connection to a relay ------------------- */

typedef struct {
  gboolean established;
  gboolean done;
  GError *error;
  gchar *uni;
  gint64 started;
  gint64 handshake_us;
} Probe;

static void
probe_established (WzpConnection *c, Probe *p)
{
  p->established = TRUE;
  p->handshake_us = g_get_monotonic_time () - p->started;
}

static void
probe_closed (WzpConnection *c, const GError *e, Probe *p)
{
  if (!p->established || !p->done)
    p->error = g_error_copy (e);
  p->done = TRUE;
}

static void
probe_uni (WzpConnection *c, GBytes *data, Probe *p)
{
  gsize len;
  const gchar *d = g_bytes_get_data (data, &len);

  p->uni = g_utf8_make_valid (d, (gssize) MIN (len, 256));
  p->done = TRUE;
}

typedef enum { PROBE_PING, PROBE_VERSION, PROBE_REFLECT } ProbeMode;

static void
probe_signal (WzpConnection *c, const WzpSignal *msg, Probe *p)
{
  if (msg->type == WZP_SIGNAL_REGISTER_PRESENCE_ACK) {
    g_autoptr (WzpSignal) reflect = wzp_signal_new (WZP_SIGNAL_REFLECT);
    wzp_connection_send_signal (c, reflect, NULL);
  } else if (msg->type == WZP_SIGNAL_REFLECT_RESPONSE) {
    p->uni = g_strdup (msg->reflect_response.observed_addr);
    p->done = TRUE;
  }
}

static void
probe_register (WzpConnection *c, Probe *p)
{
  /* a throw-away registration with the all-zero key, as upstream's reflect
   * probes do (protocol §5.7) */
  g_autoptr (WzpSignal) reg = wzp_signal_new (WZP_SIGNAL_REGISTER_PRESENCE);
  wzp_connection_send_signal (c, reg, NULL);
}

static int
cmd_probe (int argc, char **argv, ProbeMode mode)
{
  gboolean version = mode != PROBE_PING;
  const gchar *name = mode == PROBE_PING ? "ping" : mode == PROBE_REFLECT ? "reflect" : "version";
  g_autoptr (GError) error = NULL;
  g_autoptr (GSocketAddress) to = NULL, any = NULL;
  g_autoptr (WzpEndpoint) ep = NULL;
  g_autoptr (WzpConnection) conn = NULL;
  WzpEndpointSettings settings;
  const gchar *pin = NULL;
  guint64 timeout_ms = 3000;
  gint64 deadline;
  Probe p = { 0 };

  if (argc < 1)
    return usage_error ("%s: the relay's HOST:PORT is missing", name);
  for (int i = 1; i < argc; i++) {
    if (strcmp (argv[i], "--pin") == 0 && i + 1 < argc && !version)
      pin = argv[++i];
    else if (strcmp (argv[i], "--timeout") == 0 && i + 1 < argc &&
             g_ascii_string_to_unsigned (argv[i + 1], 10, 1, 600000, &timeout_ms, NULL))
      i++;
    else
      return wzp_tool_bad_option (name, version ? (const gchar *const[]) { "--timeout", NULL } :
                                  (const gchar *const[]) { "--pin", "--timeout", NULL }, argc, argv, i);
  }
  to = wzp_socket_address_resolve (argv[0], &error);
  if (to == NULL)
    return fail ("%s", error->message);
  any = wzp_socket_address_parse (g_socket_address_get_family (to) == G_SOCKET_FAMILY_IPV6 ?
                                  "[::]:0" : "0.0.0.0:0", NULL);
  wzp_endpoint_settings_init (&settings);
  settings.handshake_timeout_ms = (guint) timeout_ms;
  ep = wzp_endpoint_new (any, NULL, &settings, &error);
  if (ep == NULL)
    return fail ("%s", error->message);
  p.started = g_get_monotonic_time ();
  conn = wzp_endpoint_connect (ep, to, mode == PROBE_VERSION ? "version" :
                               mode == PROBE_REFLECT ? "_signal" : "ping", pin, &error);
  if (conn == NULL)
    return fail ("%s", error->message);
  g_signal_connect (conn, "established", G_CALLBACK (probe_established), &p);
  if (mode == PROBE_REFLECT) {
    g_signal_connect (conn, "established", G_CALLBACK (probe_register), &p);
    g_signal_connect (conn, "signal", G_CALLBACK (probe_signal), &p);
  }
  g_signal_connect (conn, "closed", G_CALLBACK (probe_closed), &p);
  g_signal_connect (conn, "uni-stream", G_CALLBACK (probe_uni), &p);
  deadline = p.started + (gint64) timeout_ms * 1000;
  while (!(version ? p.done : (p.established || p.done)) && g_get_monotonic_time () < deadline)
    g_main_context_iteration (NULL, TRUE);
  g_signal_handlers_disconnect_by_data (conn, &p);
  if (!p.established) {
    g_autofree gchar *msg = p.error ? g_strdup (p.error->message) :
        g_strdup_printf ("no answer from %s within %" G_GUINT64_FORMAT " ms: is the relay "
                         "running and reachable?", argv[0], timeout_ms);
    g_clear_error (&p.error);
    return fail ("%s", one_line (msg));
  }
  if (version) {
    int rc;
    if (p.uni)
      printf ("%s\n", p.uni);
    rc = p.uni ? 0 : fail ("%s sent no %s", argv[0],
                           mode == PROBE_REFLECT ? "ReflectResponse" : "build id");
    if (mode == PROBE_REFLECT)
      wzp_connection_close (conn, 0, "done");
    g_free (p.uni);
    g_clear_error (&p.error);
    return rc;
  }
  printf ("{\"address\":\"%s\",\"handshake_ms\":%.3f,\"tls_fingerprint\":\"%s\"}\n",
          wzp_connection_get_remote_address (conn), p.handshake_us / 1000.0,
          wzp_connection_get_peer_fingerprint (conn));
  wzp_connection_close (conn, 0, "ping");
  g_clear_error (&p.error);
  return 0;
}

int
main (int argc, char **argv)
{
  if (argc < 2)
    return usage_error ("no command given");
  if (strcmp (argv[1], "identity") == 0)
    return cmd_identity (argc - 2, argv + 2);
  if (strcmp (argv[1], "signal") == 0)
    return cmd_signal (argc - 2, argv + 2);
  if (strcmp (argv[1], "media") == 0)
    return cmd_media (argc - 2, argv + 2);
  if (strcmp (argv[1], "featherchat") == 0)
    return cmd_featherchat (argc - 2, argv + 2);
  if (strcmp (argv[1], "version") == 0 && argc == 2) {
    printf ("wzp-tool %s (build %s)\n", WZP_VERSION, WZP_BUILD_ID);
    return 0;
  }
  if (strcmp (argv[1], "version") == 0)
    return cmd_probe (argc - 2, argv + 2, PROBE_VERSION);
  if (strcmp (argv[1], "ping") == 0)
    return cmd_probe (argc - 2, argv + 2, PROBE_PING);
  if (strcmp (argv[1], "reflect") == 0)
    return cmd_probe (argc - 2, argv + 2, PROBE_REFLECT);
  if (strcmp (argv[1], "call") == 0 || strcmp (argv[1], "answer") == 0) {
    return wzp_tool_call (argc - 2, argv + 2, strcmp (argv[1], "answer") == 0);
  }
  if (strcmp (argv[1], "--help") == 0 || strcmp (argv[1], "help") == 0) {
    fputs (usage, stdout);
    return 0;
  }
  return usage_error ("unknown command \"%s\"", argv[1]);
}
