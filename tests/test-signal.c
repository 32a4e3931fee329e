/* wzp-signal: upstream vectors byte for byte, random round trips, bad input,
 * framing in pieces. */
#include <math.h>
#include <string.h>
#include <gio/gio.h>

#include "wzp-featherchat.h"
#include "wzp-identity.h"
#include "wzp-signal-private.h"
#include "wzp-util.h"

static gchar *
encode_ok (const WzpSignal *msg)
{
  g_autoptr (GError) error = NULL;
  gchar *json = wzp_signal_to_json (msg, NULL, &error);

  g_assert_no_error (error);
  g_assert_nonnull (json);
  return json;
}

static WzpSignal *
decode_ok (const gchar *json)
{
  g_autoptr (GError) error = NULL;
  WzpSignal *msg = wzp_signal_from_json (json, strlen (json), &error);

  if (error)
    g_printerr ("decoding %s: %s\n", json, error->message);
  g_assert_no_error (error);
  g_assert_nonnull (msg);
  return msg;
}

static void
decode_fails (const gchar *json, gint code)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (WzpSignal) msg = wzp_signal_from_json (json, strlen (json), &error);

  if (msg)
    g_printerr ("unexpectedly accepted: %s\n", json);
  g_assert_null (msg);
  g_assert_error (error, WZP_SIGNAL_ERROR, code);
  g_assert_nonnull (error->message);
}

/* ---- §2.5 vectors ---------------------------------------------------------- */

static void
test_vectors_file (void)
{
  g_autofree gchar *path = g_test_build_filename (G_TEST_DIST, "data", "signal-vectors.txt", NULL);
  g_autofree gchar *text = NULL;
  g_auto (GStrv) lines = NULL;
  guint n = 0;

  g_assert_true (g_file_get_contents (path, &text, NULL, NULL));
  lines = g_strsplit (text, "\n", -1);
  for (guint i = 0; lines[i]; i++) {
    g_autoptr (WzpSignal) msg = NULL;
    g_autofree gchar *again = NULL;

    if (lines[i][0] == '\0' || lines[i][0] == '#')
      continue;
    msg = decode_ok (lines[i]);
    again = encode_ok (msg);
    g_assert_cmpstr (again, ==, lines[i]);
    n++;
  }
  g_assert_cmpuint (n, >=, 40);
}

static const gchar call_offer_json[] =
  "{\"CallOffer\":{\"identity_pub\":[211,53,48,24,86,220,95,118,63,183,31,190,201,114,136,64,"
  "211,254,176,120,133,94,24,77,206,91,7,105,252,218,4,188],\"ephemeral_pub\":[123,78,144,"
  "155,190,127,254,68,196,101,162,32,3,125,96,142,227,88,151,211,30,249,114,240,127,116,137,"
  "44,176,247,63,19],\"signature\":[132,129,162,22,23,34,18,40,219,240,200,16,226,240,211,20,"
  "210,121,208,68,154,159,149,122,15,202,151,77,110,182,201,58,101,226,106,5,130,201,126,176,"
  "1,30,75,116,84,32,3,180,148,128,184,190,183,168,196,251,248,59,214,159,22,231,208,1],"
  "\"supported_profiles\":[{\"codec\":\"Opus64k\",\"fec_ratio\":0.1,\"frame_duration_ms\":20,"
  "\"frames_per_block\":5},{\"codec\":\"Opus48k\",\"fec_ratio\":0.1,\"frame_duration_ms\":20,"
  "\"frames_per_block\":5},{\"codec\":\"Opus32k\",\"fec_ratio\":0.1,\"frame_duration_ms\":20,"
  "\"frames_per_block\":5},{\"codec\":\"Opus24k\",\"fec_ratio\":0.2,\"frame_duration_ms\":20,"
  "\"frames_per_block\":5},{\"codec\":\"Opus6k\",\"fec_ratio\":0.5,\"frame_duration_ms\":40,"
  "\"frames_per_block\":10},{\"codec\":\"Codec2_1200\",\"fec_ratio\":1.0,"
  "\"frame_duration_ms\":40,\"frames_per_block\":8}],\"alias\":\"Swift Wolf\"}}";

static WzpIdentity *
identity_a (void)
{
  guint8 seed[32];

  memset (seed, 0x2a, sizeof seed);
  return wzp_identity_new_from_seed (seed);
}

/* Built from typed values and a real signature, not from the text. */
static void
test_vector_call_offer_typed (void)
{
  g_autoptr (WzpIdentity) id = identity_a ();
  g_autoptr (WzpSignal) msg = wzp_signal_new (WZP_SIGNAL_CALL_OFFER);
  const WzpQualityProfile *profiles[] = {
    &WZP_PROFILE_STUDIO_64K, &WZP_PROFILE_STUDIO_48K, &WZP_PROFILE_STUDIO_32K,
    &WZP_PROFILE_GOOD, &WZP_PROFILE_DEGRADED, &WZP_PROFILE_CATASTROPHIC,
  };
  guint8 eph_secret[32], sig[64];
  g_autofree gchar *json = NULL;
  gsize len = 0;

  memset (eph_secret, 0x11, sizeof eph_secret);
  memcpy (msg->call_offer.identity_pub, wzp_identity_get_public_key (id), 32);
  wzp_x25519_public_key (eph_secret, msg->call_offer.ephemeral_pub);
  wzp_sign_call_offer (id, msg->call_offer.ephemeral_pub, sig);
  msg->call_offer.signature = g_bytes_new (sig, sizeof sig);
  msg->call_offer.supported_profiles = g_array_new (FALSE, FALSE, sizeof (WzpQualityProfile));
  for (guint i = 0; i < G_N_ELEMENTS (profiles); i++)
    g_array_append_val (msg->call_offer.supported_profiles, *profiles[i]);
  msg->call_offer.alias = g_strdup ("Swift Wolf");
  json = wzp_signal_to_json (msg, &len, NULL);
  g_assert_cmpstr (json, ==, call_offer_json);
  g_assert_cmpuint (len, ==, 1052);
  g_assert_true (wzp_verify_call_offer (msg->call_offer.identity_pub, msg->call_offer.ephemeral_pub,
                                        sig, sizeof sig));
}

static void
test_vector_lengths (void)
{
  g_autoptr (WzpIdentity) id = identity_a ();
  struct { WzpSignal *msg; const gchar *json; gsize len; } cases[6];
  WzpSignal *m;

  m = wzp_signal_new (WZP_SIGNAL_REGISTER_PRESENCE);
  memcpy (m->register_presence.identity_pub, wzp_identity_get_public_key (id), 32);
  cases[0].msg = m;
  cases[0].json = NULL;
  cases[0].len = 179;

  m = wzp_signal_new (WZP_SIGNAL_REGISTER_PRESENCE_ACK);
  m->register_presence_ack.success = TRUE;
  m->register_presence_ack.relay_build = g_strdup ("9377a90");
  cases[1].msg = m;
  cases[1].json = "{\"RegisterPresenceAck\":{\"success\":true,\"relay_build\":\"9377a90\"}}";
  cases[1].len = 64;

  cases[2].msg = wzp_signal_new_media_path_report ("18a2b3c4d5e6f708", TRUE, "Direct");
  cases[2].json = "{\"MediaPathReport\":{\"call_id\":\"18a2b3c4d5e6f708\",\"direct_ok\":true,"
      "\"race_winner\":\"Direct\"}}";
  cases[2].len = 90;

  m = wzp_signal_new (WZP_SIGNAL_CALL_RINGING);
  m->call_ringing.call_id = g_strdup ("18a2b3c4d5e6f708");
  cases[3].msg = m;
  cases[3].json = "{\"CallRinging\":{\"call_id\":\"18a2b3c4d5e6f708\"}}";
  cases[3].len = 46;

  m = wzp_signal_new (WZP_SIGNAL_AUTH_TOKEN);
  m->auth_token.token = g_strdup ("3f2a9c");
  cases[4].msg = m;
  cases[4].json = "{\"AuthToken\":{\"token\":\"3f2a9c\"}}";
  cases[4].len = 32;

  m = wzp_signal_new (WZP_SIGNAL_FEDERATED_SIGNAL_FORWARD);
  m->federated_signal_forward.inner = wzp_signal_new_media_path_report ("18a2b3c4d5e6f708", TRUE,
                                                                         "Direct");
  m->federated_signal_forward.origin_relay_fp = g_strdup ("3a:9f");
  cases[5].msg = m;
  cases[5].json = NULL;
  cases[5].len = 153;

  for (guint i = 0; i < G_N_ELEMENTS (cases); i++) {
    gsize len = 0;
    g_autofree gchar *json = wzp_signal_to_json (cases[i].msg, &len, NULL);
    g_autoptr (GBytes) frame = wzp_signal_to_frame (cases[i].msg, NULL);
    const guint8 *f = g_bytes_get_data (frame, NULL);

    g_assert_cmpuint (len, ==, cases[i].len);
    if (cases[i].json)
      g_assert_cmpstr (json, ==, cases[i].json);
    g_assert_cmpuint (g_bytes_get_size (frame), ==, len + 4);
    g_assert_cmpuint (((guint) f[2] << 8) | f[3], ==, len);
    g_assert_cmpuint (f[0] | f[1], ==, 0);
    wzp_signal_free (cases[i].msg);
  }
}

static void
test_frame_reflect (void)
{
  g_autoptr (WzpSignal) msg = wzp_signal_new (WZP_SIGNAL_REFLECT);
  g_autoptr (GBytes) frame = wzp_signal_to_frame (msg, NULL);
  static const guint8 expect[] = { 0, 0, 0, 9, 0x22, 0x52, 0x65, 0x66, 0x6c, 0x65, 0x63, 0x74, 0x22 };
  g_autoptr (GBytes) want = g_bytes_new_static (expect, sizeof expect);

  g_assert_true (g_bytes_equal (frame, want));
}

/* §2.5 "Parser edge cases", plus the tolerant-input rules of §2.2. */
static void
test_edge_cases (void)
{
  g_autoptr (GString) zeros = g_string_new ("[");
  WzpSignal *m;
  gchar *s;

  for (guint i = 0; i < 32; i++)
    g_string_append (zeros, i ? ",0" : "0");
  g_string_append_c (zeros, ']');

  decode_fails ("{\"Hangup\":{\"reason\":\"Normal\"},\"Extra\":1}", WZP_SIGNAL_ERROR_INVALID_MESSAGE);

  m = decode_ok ("{\"Ping\":{\"timestamp_ms\":1,\"extra\":5}}");
  g_assert_cmpuint (m->ping.timestamp_ms, ==, 1);
  wzp_signal_free (m);

  decode_fails ("{\"RegisterPresence\":{\"identity_pub\":[0,0,0],\"signature\":[]}}",
                WZP_SIGNAL_ERROR_INVALID_MESSAGE);

  s = g_strdup_printf ("{\"RegisterPresence\":{\"identity_pub\":%s,\"signature\":[]}}", zeros->str);
  m = decode_ok (s);
  g_assert_null (m->register_presence.alias);
  g_assert_cmpuint (g_bytes_get_size (m->register_presence.signature), ==, 0);
  wzp_signal_free (m);
  g_free (s);

  m = decode_ok ("{\"MediaPathReport\":{\"call_id\":\"x\",\"direct_ok\":false}}");
  g_assert_cmpstr (m->media_path_report.race_winner, ==, "");
  g_assert_false (m->media_path_report.direct_ok);
  s = encode_ok (m);
  g_assert_cmpstr (s, ==, "{\"MediaPathReport\":{\"call_id\":\"x\",\"direct_ok\":false,\"race_winner\":\"\"}}");
  g_free (s);
  wzp_signal_free (m);

  decode_fails ("{\"MediaPathReport\":{\"call_id\":\"x\",\"direct_ok\":\"true\"}}",
                WZP_SIGNAL_ERROR_INVALID_MESSAGE);

  m = decode_ok ("{\"RoomUpdate\":{\"count\":1,\"participants\":[{\"fingerprint\":\"f\"}]}}");
  g_assert_cmpuint (m->room_update.participants->len, ==, 1);
  s = encode_ok (m);
  g_assert_cmpstr (s, ==, "{\"RoomUpdate\":{\"count\":1,\"participants\":[{\"fingerprint\":\"f\","
                   "\"alias\":null,\"relay_label\":null}]}}");
  g_free (s);
  wzp_signal_free (m);

  decode_fails ("{\"Unknown\":{}}", WZP_SIGNAL_ERROR_UNKNOWN_VARIANT);
  decode_fails ("\"Bogus\"", WZP_SIGNAL_ERROR_UNKNOWN_VARIANT);

  /* unit variants in both forms; any field order; whitespace */
  m = decode_ok ("{\"Reflect\":null}");
  g_assert_cmpint (m->type, ==, WZP_SIGNAL_REFLECT);
  wzp_signal_free (m);
  m = decode_ok (" { \"Hangup\" : { \"call_id\" : \"c\" , \"reason\" : \"Busy\" } } ");
  g_assert_cmpint (m->hangup.reason, ==, WZP_HANGUP_BUSY);
  s = encode_ok (m);
  g_assert_cmpstr (s, ==, "{\"Hangup\":{\"reason\":\"Busy\",\"call_id\":\"c\"}}");
  g_free (s);
  wzp_signal_free (m);

  /* fec_ratio accepts an integer and prints with a fraction */
  m = decode_ok ("{\"QualityDirective\":{\"recommended_profile\":{\"codec\":\"Opus6k\","
                 "\"fec_ratio\":1,\"frame_duration_ms\":40,\"frames_per_block\":10},\"reason\":null}}");
  g_assert_cmpfloat (m->quality_directive.recommended_profile.fec_ratio, ==, 1.0f);
  g_assert_null (m->quality_directive.reason);
  s = encode_ok (m);
  g_assert_nonnull (strstr (s, "\"fec_ratio\":1.0,"));
  g_free (s);
  wzp_signal_free (m);

  /* optional lists: null and missing both mean empty, and empty is omitted */
  m = decode_ok ("{\"CallSetup\":{\"call_id\":\"c\",\"room\":\"call-c\",\"relay_addr\":\"a:1\","
                 "\"peer_direct_addr\":null,\"peer_local_addrs\":null}}");
  g_assert_cmpuint (m->call_setup.peer_local_addrs->len, ==, 0);
  s = encode_ok (m);
  g_assert_cmpstr (s, ==, "{\"CallSetup\":{\"call_id\":\"c\",\"room\":\"call-c\",\"relay_addr\":\"a:1\"}}");
  g_free (s);
  wzp_signal_free (m);

  /* GlobalRoomActive participants default to [] and are always emitted */
  m = decode_ok ("{\"GlobalRoomActive\":{\"room\":\"g\"}}");
  s = encode_ok (m);
  g_assert_cmpstr (s, ==, "{\"GlobalRoomActive\":{\"room\":\"g\",\"participants\":[]}}");
  g_free (s);
  wzp_signal_free (m);

  /* LossRecoveryUpdate counters default to 0 */
  m = decode_ok ("{\"LossRecoveryUpdate\":{}}");
  s = encode_ok (m);
  g_assert_cmpstr (s, ==, "{\"LossRecoveryUpdate\":{\"dred_reconstructions\":0,"
                   "\"classical_plc_invocations\":0,\"frames_decoded\":0}}");
  g_free (s);
  wzp_signal_free (m);

  /* nested FederatedSignalForward carries any message, including a unit one */
  m = decode_ok ("{\"FederatedSignalForward\":{\"origin_relay_fp\":\"ab\",\"inner\":\"Reflect\"}}");
  g_assert_cmpint (m->federated_signal_forward.inner->type, ==, WZP_SIGNAL_REFLECT);
  wzp_signal_free (m);
  /* ... and an unknown inner variant is still reported as unknown */
  decode_fails ("{\"FederatedSignalForward\":{\"inner\":{\"Nope\":{}},\"origin_relay_fp\":\"ab\"}}",
                WZP_SIGNAL_ERROR_UNKNOWN_VARIANT);

  /* non-ASCII is raw UTF-8, control characters are escaped like serde_json */
  m = wzp_signal_new (WZP_SIGNAL_ICE_CANDIDATE);
  m->ice_candidate.candidate = g_strdup ("\xc3\xa9\"\\/\x01\x1f\x7f\n\t\b\f\r");
  s = encode_ok (m);
  g_assert_cmpstr (s, ==, "{\"IceCandidate\":{\"candidate\":\"\xc3\xa9\\\"\\\\/\\u0001\\u001f\x7f"
                   "\\n\\t\\b\\f\\r\"}}");
  wzp_signal_free (m);
  m = decode_ok (s);
  g_assert_cmpstr (m->ice_candidate.candidate, ==, "\xc3\xa9\"\\/\x01\x1f\x7f\n\t\b\f\r");
  wzp_signal_free (m);
  g_free (s);
}

static void
test_f32_format (void)
{
  struct { gfloat v; const gchar *s; } cases[] = {
    { 0.1f, "0.1" }, { 0.2f, "0.2" }, { 0.5f, "0.5" }, { 1.0f, "1.0" }, { 2.0f, "2.0" },
    { 0.0f, "0.0" }, { -1.5f, "-1.5" }, { 0.333f, "0.333" }, { 100.0f, "100.0" },
    { 1e-7f, "1e-7" }, { 1.5e-7f, "1.5e-7" }, { 0.00001f, "0.00001" }, { 3.4028235e38f, "3.4028235e38" },
    { 1e13f, "1e13" }, { 123456.79f, "123456.79" },
  };

  for (guint i = 0; i < G_N_ELEMENTS (cases); i++) {
    g_autoptr (WzpSignal) m = wzp_signal_new (WZP_SIGNAL_QUALITY_DIRECTIVE);
    g_autofree gchar *json = NULL, *want = NULL;

    m->quality_directive.recommended_profile.fec_ratio = cases[i].v;
    json = encode_ok (m);
    want = g_strdup_printf ("\"fec_ratio\":%s,", cases[i].s);
    if (!strstr (json, want))
      g_printerr ("%g: %s\n", (double) cases[i].v, json);
    g_assert_nonnull (strstr (json, want));
  }
}

/* ---- random round trips ---------------------------------------------------- */

static gchar *
random_string (GRand *r)
{
  static const gchar *const pieces[] = {
    "a", "Z", "0", " ", "-", ":", "_", ".", "\"", "\\", "/", "\n", "\t", "\x01", "\x1f",
    "\x7f", "\xc3\xa9", "\xe4\xb8\xad", "\xf0\x9f\x98\x80", "call-", "9983:c2ce",
  };
  GString *s = g_string_new (NULL);
  guint n = g_rand_int_range (r, 0, 24);

  for (guint i = 0; i < n; i++)
    g_string_append (s, pieces[g_rand_int_range (r, 0, G_N_ELEMENTS (pieces))]);
  return g_string_free (s, FALSE);
}

static gfloat
random_f32 (GRand *r)
{
  static const gfloat nice[] = { 0.0f, 0.1f, 0.2f, 0.5f, 1.0f, 2.0f, 0.75f };
  union { guint32 u; gfloat f; } v;

  if (g_rand_boolean (r))
    return nice[g_rand_int_range (r, 0, G_N_ELEMENTS (nice))];
  do
    v.u = g_rand_int (r);
  while (!isfinite (v.f));
  return v.f;
}

static void
random_profile (GRand *r, WzpQualityProfile *p)
{
  p->codec = (WzpCodecId) g_rand_int_range (r, 0, WZP_CODEC_COUNT);
  p->fec_ratio = random_f32 (r);
  p->frame_duration_ms = (guint8) g_rand_int (r);
  p->frames_per_block = (guint8) g_rand_int (r);
}

static GBytes *
random_bytes (GRand *r, guint max)
{
  guint n = g_rand_int_range (r, 0, max + 1);
  guint8 *d = g_malloc (n + 1);

  for (guint i = 0; i < n; i++)
    d[i] = (guint8) g_rand_int (r);
  return g_bytes_new_take (d, n);
}

static WzpSignal *random_signal (GRand *r, WzpSignalType type, guint depth);

static void
random_field (GRand *r, WzpSignal *msg, const WzpFieldDesc *fd, guint depth)
{
  gpointer p = WZP_FIELD_PTR (msg, fd);
  /* Optional values are absent a third of the time. */
  gboolean absent = fd->flavour != WZP_FF_REQUIRED && fd->flavour != WZP_FF_DEFAULT &&
      g_rand_int_range (r, 0, 3) == 0;
  guint n;

  if (absent)
    return;
  switch (fd->kind) {
    case WZP_FK_STR:
      *(gchar **) p = random_string (r);
      break;
    case WZP_FK_U64:
      /* json-glib holds integers as gint64 (docs/decisions.md) */
      *(guint64 *) p = (((guint64) g_rand_int (r) << 32) | g_rand_int (r)) >>
          g_rand_int_range (r, 1, 64);
      break;
    case WZP_FK_U32:
      *(guint32 *) p = g_rand_int (r);
      break;
    case WZP_FK_U8:
      *(guint8 *) p = (guint8) g_rand_int (r);
      break;
    case WZP_FK_BOOL:
      *(gboolean *) p = g_rand_boolean (r);
      break;
    case WZP_FK_KEY:
      for (guint i = 0; i < 32; i++)
        ((guint8 *) p)[i] = (guint8) g_rand_int (r);
      break;
    case WZP_FK_KEY_OPT:
      *(guint8 **) p = g_malloc (32);
      for (guint i = 0; i < 32; i++)
        (*(guint8 **) p)[i] = (guint8) g_rand_int (r);
      break;
    case WZP_FK_BYTES:
      *(GBytes **) p = random_bytes (r, 80);
      break;
    case WZP_FK_ACCEPT_MODE:
      *(gint *) p = g_rand_int_range (r, 0, 3);
      break;
    case WZP_FK_HANGUP_REASON:
      *(gint *) p = g_rand_int_range (r, 0, 5);
      break;
    case WZP_FK_PROFILE:
      random_profile (r, p);
      break;
    case WZP_FK_PROFILE_OPT:
      *(WzpQualityProfile **) p = g_new (WzpQualityProfile, 1);
      random_profile (r, *(WzpQualityProfile **) p);
      break;
    case WZP_FK_PROFILES:
      *(GArray **) p = g_array_new (FALSE, TRUE, sizeof (WzpQualityProfile));
      n = g_rand_int_range (r, 0, 7);
      for (guint i = 0; i < n; i++) {
        WzpQualityProfile prof;
        random_profile (r, &prof);
        g_array_append_val (*(GArray **) p, prof);
      }
      break;
    case WZP_FK_STRS:
      *(GPtrArray **) p = g_ptr_array_new_with_free_func (g_free);
      n = g_rand_int_range (r, 0, 5);
      for (guint i = 0; i < n; i++)
        g_ptr_array_add (*(GPtrArray **) p, random_string (r));
      break;
    case WZP_FK_PARTICIPANTS:
      *(GPtrArray **) p = g_ptr_array_new_with_free_func ((GDestroyNotify) wzp_room_participant_free);
      n = g_rand_int_range (r, 0, 5);
      for (guint i = 0; i < n; i++) {
        g_autofree gchar *fp = random_string (r), *alias = random_string (r), *label = random_string (r);
        g_ptr_array_add (*(GPtrArray **) p,
                         wzp_room_participant_new (fp, g_rand_boolean (r) ? alias : NULL,
                                                   g_rand_boolean (r) ? label : NULL));
      }
      break;
    case WZP_FK_REPORT:
      for (guint i = 0; i < sizeof (WzpQualityReport); i++)
        ((guint8 *) p)[i] = (guint8) g_rand_int (r);
      break;
    case WZP_FK_SIGNAL:
      *(WzpSignal **) p = random_signal (r, (WzpSignalType) g_rand_int_range (
          r, 0, depth < 3 ? WZP_SIGNAL_N_TYPES : WZP_SIGNAL_FEDERATED_SIGNAL_FORWARD), depth + 1);
      break;
    default:
      g_assert_not_reached ();
  }
}

static WzpSignal *
random_signal (GRand *r, WzpSignalType type, guint depth)
{
  const WzpVariantDesc *vd = wzp_signal_variant_desc (type);
  WzpSignal *msg = wzp_signal_new (type);

  for (guint i = 0; i < vd->n_fields; i++)
    random_field (r, msg, &vd->fields[i], depth);
  return msg;
}

static void
test_round_trip (gconstpointer data)
{
  WzpSignalType type = GPOINTER_TO_INT (data);
  g_autoptr (GRand) r = g_rand_new_with_seed (0x5eed + type);
  const gchar *env = g_getenv ("WZP_TEST_ITERATIONS");
  guint iterations = env ? (guint) g_ascii_strtoull (env, NULL, 10) :
      g_test_thorough () ? 100000 : 10000;

  for (guint i = 0; i < iterations; i++) {
    g_autoptr (WzpSignal) msg = random_signal (r, type, 0);
    g_autoptr (WzpSignal) back = NULL, copy = NULL;
    g_autoptr (GBytes) frame = NULL;
    g_autoptr (GError) error = NULL;
    g_autofree gchar *json = encode_ok (msg), *again = NULL;
    const guint8 *f;
    gsize flen;

    back = wzp_signal_from_json (json, strlen (json), &error);
    if (error)
      g_printerr ("round trip failed for %s: %s\n", json, error->message);
    g_assert_no_error (error);
    g_assert_true (wzp_signal_equal (msg, back));
    again = encode_ok (back);
    g_assert_cmpstr (json, ==, again);

    copy = wzp_signal_copy (back);
    g_assert_true (wzp_signal_equal (copy, msg));

    frame = wzp_signal_to_frame (msg, &error);
    g_assert_no_error (error);
    f = g_bytes_get_data (frame, &flen);
    g_clear_pointer (&back, wzp_signal_free);
    back = wzp_signal_from_frame (f, flen, &error);
    g_assert_no_error (error);
    g_assert_true (wzp_signal_equal (msg, back));
  }
}

/* ---- bad input ----------------------------------------------------------- */

static void
test_bad_input (void)
{
  static const gchar *const invalid_json[] = {
    "", "   ", "{", "{\"Ping\":", "[1,2", "nul", "{\"Ping\":{\"timestamp_ms\":1}} x",
    "{\"a\":\"\xff\"}", "\"\xc3\"", "{\"Ping\":{\"timestamp_ms\":1}}}",
  };
  static const gchar *const invalid_msg[] = {
    "1", "true", "null", "[]", "[\"Ping\"]", "{}",
    "{\"Ping\":{\"timestamp_ms\":1},\"Pong\":{\"timestamp_ms\":1}}",
    "\"Ping\"", "{\"Ping\":null}", "{\"Ping\":[]}", "{\"Ping\":{}}",
    "{\"Reflect\":{}}", "{\"Reflect\":1}",
    "{\"Ping\":{\"timestamp_ms\":-1}}", "{\"Ping\":{\"timestamp_ms\":1.5}}",
    "{\"Ping\":{\"timestamp_ms\":1e3}}", "{\"Ping\":{\"timestamp_ms\":\"1\"}}",
    "{\"Ping\":{\"timestamp_ms\":18446744073709551616}}",
    "{\"Ping\":{\"timestamp_ms\":null}}",
    "{\"RouteQuery\":{\"fingerprint\":\"f\",\"ttl\":256}}",
    "{\"RouteQuery\":{\"fingerprint\":\"f\",\"ttl\":-1}}",
    "{\"RouteQuery\":{\"fingerprint\":1,\"ttl\":1}}",
    "{\"RoomUpdate\":{\"count\":4294967296,\"participants\":[]}}",
    "{\"RoomUpdate\":{\"count\":1,\"participants\":{}}}",
    "{\"RoomUpdate\":{\"count\":1,\"participants\":[{\"alias\":\"x\"}]}}",
    "{\"RoomUpdate\":{\"count\":1,\"participants\":[1]}}",
    "{\"RoomUpdate\":{\"count\":1}}",
    "{\"Hangup\":{\"reason\":\"Angry\"}}", "{\"Hangup\":{\"reason\":0}}",
    "{\"Hangup\":{\"reason\":\"Normal\",\"call_id\":5}}",
    "{\"DirectCallAnswer\":{\"call_id\":\"c\",\"accept_mode\":\"Maybe\"}}",
    "{\"DirectCallAnswer\":{\"call_id\":\"c\",\"accept_mode\":\"Reject\",\"identity_pub\":[1]}}",
    "{\"DirectCallAnswer\":{\"call_id\":\"c\",\"accept_mode\":\"Reject\",\"chosen_profile\":{}}}",
    "{\"CallSetup\":{\"call_id\":\"c\",\"room\":\"r\",\"relay_addr\":\"a\",\"peer_local_addrs\":[1]}}",
    "{\"CallAnswer\":{\"identity_pub\":[],\"ephemeral_pub\":[],\"signature\":[],\"chosen_profile\":null}}",
    "{\"QualityDirective\":{\"recommended_profile\":{\"codec\":\"Opus99k\",\"fec_ratio\":0.1,"
        "\"frame_duration_ms\":20,\"frames_per_block\":5}}}",
    "{\"QualityDirective\":{\"recommended_profile\":{\"codec\":\"Opus24k\",\"fec_ratio\":1e39,"
        "\"frame_duration_ms\":20,\"frames_per_block\":5}}}",
    "{\"QualityDirective\":{\"recommended_profile\":{\"codec\":\"Opus24k\",\"fec_ratio\":\"x\","
        "\"frame_duration_ms\":20,\"frames_per_block\":5}}}",
    "{\"QualityDirective\":{\"recommended_profile\":{\"codec\":\"Opus24k\",\"fec_ratio\":0.1,"
        "\"frame_duration_ms\":300,\"frames_per_block\":5}}}",
    "{\"QualityUpdate\":{\"report\":{\"loss_pct\":1,\"rtt_4ms\":1,\"jitter_ms\":1},"
        "\"recommended_profile\":{\"codec\":\"Opus24k\",\"fec_ratio\":0.1,"
        "\"frame_duration_ms\":20,\"frames_per_block\":5}}}",
    "{\"MediaPathReport\":{\"call_id\":\"x\",\"direct_ok\":1}}",
    "{\"FederatedSignalForward\":{\"inner\":null,\"origin_relay_fp\":\"a\"}}",
    /* found by fuzzing: json-glib turns the octal escape into a lone 0x96 */
    "{\"RoomUpdate\":{\"count\":2,\"participants\":[{\"fingerprint\":\"9983\\\\\\226,240\"}]}}",
    "{\"IceCandidate\":{\"candidate\":\"\\377\"}}",
    "{\"FederatedSignalForward\":{\"inner\":{\"Ping\":{}},\"origin_relay_fp\":\"a\"}}",
  };
  GString *key = g_string_new (NULL);

  for (guint i = 0; i < G_N_ELEMENTS (invalid_json); i++)
    decode_fails (invalid_json[i], WZP_SIGNAL_ERROR_INVALID_JSON);
  for (guint i = 0; i < G_N_ELEMENTS (invalid_msg); i++)
    decode_fails (invalid_msg[i], WZP_SIGNAL_ERROR_INVALID_MESSAGE);

  /* key arrays of 31 and 33 elements, a value over 255, a negative value */
  for (guint variant = 0; variant < 4; variant++) {
    guint n = variant == 0 ? 31 : variant == 1 ? 33 : 32;
    g_autofree gchar *json = NULL;

    g_string_assign (key, "[");
    for (guint i = 0; i < n; i++)
      g_string_append_printf (key, "%s%d", i ? "," : "",
                              i == 5 && variant == 2 ? 256 : i == 5 && variant == 3 ? -1 : 7);
    g_string_append_c (key, ']');
    json = g_strdup_printf ("{\"RegisterPresence\":{\"identity_pub\":%s,\"signature\":[]}}", key->str);
    decode_fails (json, WZP_SIGNAL_ERROR_INVALID_MESSAGE);
  }
  g_string_free (key, TRUE);

  /* an embedded NUL */
  {
    g_autoptr (GError) error = NULL;
    g_assert_null (wzp_signal_from_json ("\"Reflect\"\0x", 11, &error));
    g_assert_error (error, WZP_SIGNAL_ERROR, WZP_SIGNAL_ERROR_INVALID_JSON);
  }
}

static void
test_deep_nesting (void)
{
  const guint depth = 200000;
  GString *s = g_string_new ("{\"Ping\":{\"timestamp_ms\":1,\"x\":");
  g_autoptr (GError) error = NULL;
  WzpSignal *msg;
  g_autofree gchar *ok = NULL;

  for (guint i = 0; i < depth; i++)
    g_string_append_c (s, '[');
  for (guint i = 0; i < depth; i++)
    g_string_append_c (s, ']');
  g_string_append (s, "}}");
  msg = wzp_signal_from_json (s->str, s->len, &error);
  g_assert_null (msg);
  g_assert_error (error, WZP_SIGNAL_ERROR, WZP_SIGNAL_ERROR_INVALID_JSON);
  g_string_free (s, TRUE);

  /* brackets inside strings do not count; moderate nesting is fine */
  ok = g_strdup ("{\"Ping\":{\"timestamp_ms\":1,\"x\":\"[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[\","
                 "\"y\":[[[[[[[[[[]]]]]]]]]]}}");
  msg = decode_ok (ok);
  wzp_signal_free (msg);
}

static void
test_encode_errors (void)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (WzpSignal) m = wzp_signal_new (WZP_SIGNAL_CALL_RINGING);
  g_autoptr (WzpSignal) h = wzp_signal_new_hangup (WZP_HANGUP_NORMAL, NULL);
  g_autoptr (WzpSignal) f = wzp_signal_new (WZP_SIGNAL_FEDERATED_SIGNAL_FORWARD);
  gchar *json;

  json = wzp_signal_to_json (m, NULL, &error);         /* call_id missing */
  g_assert_null (json);
  g_assert_error (error, WZP_SIGNAL_ERROR, WZP_SIGNAL_ERROR_INVALID_MESSAGE);
  g_clear_error (&error);

  m->call_ringing.call_id = g_strdup ("bad \xff utf8");
  g_assert_null (wzp_signal_to_json (m, NULL, &error));
  g_assert_error (error, WZP_SIGNAL_ERROR, WZP_SIGNAL_ERROR_INVALID_MESSAGE);
  g_clear_error (&error);

  h->hangup.reason = 99;
  g_assert_null (wzp_signal_to_json (h, NULL, &error));
  g_assert_error (error, WZP_SIGNAL_ERROR, WZP_SIGNAL_ERROR_INVALID_MESSAGE);
  g_clear_error (&error);

  f->federated_signal_forward.origin_relay_fp = g_strdup ("x");
  g_assert_null (wzp_signal_to_json (f, NULL, &error));
  g_assert_error (error, WZP_SIGNAL_ERROR, WZP_SIGNAL_ERROR_INVALID_MESSAGE);
}

/* Random corruption of valid messages: every result is a message or a clean
 * error (the sanitizer build checks for memory errors and leaks). */
static void
test_mutations (void)
{
  g_autoptr (GRand) r = g_rand_new_with_seed (42);
  guint accepted = 0, rejected = 0;

  for (guint i = 0; i < 20000; i++) {
    g_autoptr (WzpSignal) msg = random_signal (r, (WzpSignalType) g_rand_int_range (r, 0, WZP_SIGNAL_N_TYPES), 0);
    g_autofree gchar *json = encode_ok (msg);
    gsize len = strlen (json);
    g_autoptr (GError) error = NULL;
    g_autoptr (WzpSignal) back = NULL;
    guint edits = g_rand_int_range (r, 1, 4);

    for (guint e = 0; e < edits && len > 0; e++) {
      gsize at = g_rand_int_range (r, 0, (gint32) len);
      switch (g_rand_int_range (r, 0, 3)) {
        case 0: json[at] = (gchar) g_rand_int_range (r, 1, 256); break;
        case 1: len = at; break;                                   /* truncate */
        default: json[at] = "{}[]\",:0-"[g_rand_int_range (r, 0, 9)]; break;
      }
    }
    back = wzp_signal_from_json (json, len, &error);
    if (back) {
      g_autofree gchar *again = encode_ok (back);
      accepted++;
    } else {
      g_assert_nonnull (error);
      g_assert_true (error->domain == WZP_SIGNAL_ERROR);
      rejected++;
    }
  }
  g_assert_cmpuint (rejected, >, 0);
  g_test_message ("mutations: %u accepted, %u rejected", accepted, rejected);
}

/* ---- framing ------------------------------------------------------------- */

static void
test_reader_pieces (void)
{
  g_autoptr (GRand) r = g_rand_new_with_seed (7);
  g_autoptr (GByteArray) stream = g_byte_array_new ();
  g_autoptr (GPtrArray) sent = g_ptr_array_new_with_free_func ((GDestroyNotify) wzp_signal_free);
  g_autoptr (WzpFrameReader) reader = wzp_frame_reader_new (0);
  guint received = 0;
  gsize pos = 0;

  for (guint i = 0; i < 200; i++) {
    WzpSignal *m = random_signal (r, (WzpSignalType) g_rand_int_range (r, 0, WZP_SIGNAL_N_TYPES), 0);
    g_autoptr (GBytes) f = wzp_signal_to_frame (m, NULL);
    gsize len;
    const guint8 *d = g_bytes_get_data (f, &len);

    g_byte_array_append (stream, d, (guint) len);
    g_ptr_array_add (sent, m);
  }
  while (pos < stream->len) {
    gsize want = (gsize) g_rand_int_range (r, 1, 9);
    gsize piece = MIN (want, stream->len - pos), consumed = 0;
    g_autoptr (GError) error = NULL;

    while (piece > 0) {
      WzpFrameStatus st = wzp_frame_reader_feed (reader, stream->data + pos, piece, &consumed, &error);

      g_assert_no_error (error);
      g_assert_cmpint (st, !=, WZP_FRAME_ERROR);
      pos += consumed;
      piece -= consumed;
      if (st == WZP_FRAME_READY) {
        g_autoptr (GBytes) body = wzp_frame_reader_take (reader);
        gsize blen;
        const gchar *b = g_bytes_get_data (body, &blen);
        g_autoptr (WzpSignal) m = wzp_signal_from_json (b, blen, &error);

        g_assert_no_error (error);
        g_assert_true (wzp_signal_equal (m, g_ptr_array_index (sent, received)));
        received++;
      }
    }
  }
  g_assert_cmpuint (received, ==, sent->len);
  g_assert_false (wzp_frame_reader_in_frame (reader));
}

static void
test_reader_limits (void)
{
  static const guint8 over[] = { 0x00, 0x10, 0x00, 0x01 };      /* 1 MiB + 1 */
  static const guint8 at[] = { 0x00, 0x10, 0x00, 0x00 };        /* exactly 1 MiB */
  static const guint8 huge[] = { 0xff, 0xff, 0xff, 0xff };
  g_autoptr (GError) error = NULL;
  gsize consumed;
  WzpFrameReader *r;

  r = wzp_frame_reader_new (0);
  g_assert_cmpint (wzp_frame_reader_feed (r, over, 4, &consumed, &error), ==, WZP_FRAME_ERROR);
  g_assert_error (error, WZP_SIGNAL_ERROR, WZP_SIGNAL_ERROR_TOO_LARGE);
  g_clear_error (&error);
  /* stays in error */
  g_assert_cmpint (wzp_frame_reader_feed (r, at, 4, &consumed, &error), ==, WZP_FRAME_ERROR);
  g_clear_error (&error);
  wzp_frame_reader_free (r);

  r = wzp_frame_reader_new (0);
  g_assert_cmpint (wzp_frame_reader_feed (r, at, 4, &consumed, &error), ==, WZP_FRAME_NEED_MORE);
  g_assert_no_error (error);
  g_assert_cmpuint (consumed, ==, 4);
  g_assert_true (wzp_frame_reader_in_frame (r));
  wzp_frame_reader_free (r);

  g_assert_null (wzp_signal_from_frame (huge, 4, &error));
  g_assert_error (error, WZP_SIGNAL_ERROR, WZP_SIGNAL_ERROR_TOO_LARGE);
  g_clear_error (&error);
  g_assert_null (wzp_signal_from_frame (huge, 3, &error));
  g_assert_error (error, WZP_SIGNAL_ERROR, WZP_SIGNAL_ERROR_TRUNCATED);
  g_clear_error (&error);
  {
    static const guint8 trunc[] = { 0, 0, 0, 9, '"', 'R', 'e' };
    static const guint8 extra[] = { 0, 0, 0, 9, '"', 'R', 'e', 'f', 'l', 'e', 'c', 't', '"', 'x', 'y' };
    g_autoptr (WzpSignal) m = NULL;

    g_assert_null (wzp_signal_from_frame (trunc, sizeof trunc, &error));
    g_assert_error (error, WZP_SIGNAL_ERROR, WZP_SIGNAL_ERROR_TRUNCATED);
    g_clear_error (&error);
    /* bytes after the frame are ignored, as upstream does */
    m = wzp_signal_from_frame (extra, sizeof extra, &error);
    g_assert_no_error (error);
    g_assert_cmpint (m->type, ==, WZP_SIGNAL_REFLECT);
  }
  /* a message over the limit is refused by the encoder too */
  {
    g_autoptr (WzpSignal) m = wzp_signal_new (WZP_SIGNAL_ICE_CANDIDATE);
    m->ice_candidate.candidate = g_malloc (WZP_SIGNAL_MAX_FRAME + 1);
    memset (m->ice_candidate.candidate, 'x', WZP_SIGNAL_MAX_FRAME);
    m->ice_candidate.candidate[WZP_SIGNAL_MAX_FRAME] = '\0';
    g_assert_null (wzp_signal_to_frame (m, &error));
    g_assert_error (error, WZP_SIGNAL_ERROR, WZP_SIGNAL_ERROR_TOO_LARGE);
  }
}

static void
test_names (void)
{
  for (guint i = 0; i < WZP_SIGNAL_N_TYPES; i++) {
    WzpSignalType t;
    g_assert_true (wzp_signal_type_from_name (wzp_signal_type_name (i), &t));
    g_assert_cmpint (t, ==, i);
  }
  g_assert_null (wzp_signal_type_name (WZP_SIGNAL_N_TYPES));
}

/* ---- the featherChat bridge (§4.6) ------------------------------------------ */

static void
test_featherchat (void)
{
  g_autofree gchar *path = g_test_build_filename (G_TEST_DIST, "data", "signal-vectors.txt", NULL);
  g_autofree gchar *text = NULL, *payload = NULL, *ra = NULL, *room = NULL;
  g_auto (GStrv) lines = NULL;
  g_autoptr (WzpSignal) report = wzp_signal_new_media_path_report ("18a2b3c4d5e6f708", TRUE, "Direct");
  g_autoptr (GError) error = NULL;
  const gchar *bad[] = {
    "[]", "{}", "{\"signal\":1}", "{\"signal\":{\"Bogus\":{}}}",
    "{\"signal\":\"Reflect\",\"relay_addr\":7,\"room\":null}",
    "{\"signal\":\"Reflect\",\"relay_addr\":null,\"room\":[]}", "not json",
  };
  guint n = 0;

  /* the exact payload: serde's field order, both extra members present */
  payload = wzp_featherchat_encode (report, "198.51.100.9:4433", "call-18a2b3c4d5e6f708", &error);
  g_assert_no_error (error);
  g_assert_cmpstr (payload, ==, "{\"signal\":{\"MediaPathReport\":{\"call_id\":\"18a2b3c4d5e6f708\","
                   "\"direct_ok\":true,\"race_winner\":\"Direct\"}},\"relay_addr\":\"198.51.100.9:4433\","
                   "\"room\":\"call-18a2b3c4d5e6f708\"}");
  g_clear_pointer (&payload, g_free);
  payload = wzp_featherchat_encode (report, NULL, NULL, &error);
  g_assert_cmpstr (payload, ==, "{\"signal\":{\"MediaPathReport\":{\"call_id\":\"18a2b3c4d5e6f708\","
                   "\"direct_ok\":true,\"race_winner\":\"Direct\"}},\"relay_addr\":null,\"room\":null}");

  /* every §2.5 vector round-trips through a payload */
  g_assert_true (g_file_get_contents (path, &text, NULL, NULL));
  lines = g_strsplit (text, "\n", -1);
  for (guint i = 0; lines[i]; i++) {
    g_autoptr (WzpSignal) msg = NULL, back = NULL;
    g_autofree gchar *p = NULL, *again = NULL, *r2 = NULL, *m2 = NULL;

    if (lines[i][0] == '\0' || lines[i][0] == '#')
      continue;
    msg = decode_ok (lines[i]);
    p = wzp_featherchat_encode (msg, "[2001:db8::1]:4433", "room \"x\"", &error);
    g_assert_no_error (error);
    back = wzp_featherchat_decode (p, strlen (p), &r2, &m2, &error);
    g_assert_no_error (error);
    g_assert_true (wzp_signal_equal (msg, back));
    g_assert_cmpstr (r2, ==, "[2001:db8::1]:4433");
    g_assert_cmpstr (m2, ==, "room \"x\"");
    again = encode_ok (back);
    g_assert_cmpstr (again, ==, lines[i]);
    n++;
  }
  g_assert_cmpuint (n, >=, 40);

  /* null and absent extras */
  {
    g_autoptr (WzpSignal) m = wzp_featherchat_decode ("{\"signal\":\"Reflect\"}", 20, &ra, &room, &error);
    g_assert_no_error (error);
    g_assert_nonnull (m);
    g_assert_cmpint (m->type, ==, WZP_SIGNAL_REFLECT);
    g_assert_null (ra);
    g_assert_null (room);
  }
  for (guint i = 0; i < G_N_ELEMENTS (bad); i++) {
    g_autoptr (WzpSignal) m = wzp_featherchat_decode (bad[i], strlen (bad[i]), NULL, NULL, &error);
    g_assert_null (m);
    g_assert_nonnull (error);
    g_clear_error (&error);
  }
  {
    /* 100,000 levels: refused before the JSON parser sees them */
    GString *deep = g_string_new ("{\"signal\":");
    g_autoptr (WzpSignal) m = NULL;
    for (guint i = 0; i < 100000; i++)
      g_string_append_c (deep, '[');
    m = wzp_featherchat_decode (deep->str, deep->len, NULL, NULL, &error);
    g_assert_null (m);
    g_assert_nonnull (error);
    g_clear_error (&error);
    g_string_free (deep, TRUE);
  }

  /* the CallSignalType table */
  g_assert_cmpstr (wzp_call_signal_type_name (wzp_featherchat_signal_type (WZP_SIGNAL_CALL_OFFER)), ==, "Offer");
  g_assert_cmpstr (wzp_call_signal_type_name (wzp_featherchat_signal_type (WZP_SIGNAL_DIRECT_CALL_OFFER)), ==, "Offer");
  g_assert_cmpstr (wzp_call_signal_type_name (wzp_featherchat_signal_type (WZP_SIGNAL_CALL_ANSWER)), ==, "Answer");
  g_assert_cmpstr (wzp_call_signal_type_name (wzp_featherchat_signal_type (WZP_SIGNAL_DIRECT_CALL_ANSWER)), ==, "Answer");
  g_assert_cmpstr (wzp_call_signal_type_name (wzp_featherchat_signal_type (WZP_SIGNAL_ICE_CANDIDATE)), ==, "IceCandidate");
  g_assert_cmpstr (wzp_call_signal_type_name (wzp_featherchat_signal_type (WZP_SIGNAL_HANGUP)), ==, "Hangup");
  g_assert_cmpstr (wzp_call_signal_type_name (wzp_featherchat_signal_type (WZP_SIGNAL_CALL_RINGING)), ==, "Ringing");
  g_assert_cmpstr (wzp_call_signal_type_name (wzp_featherchat_signal_type (WZP_SIGNAL_HOLD)), ==, "Hold");
  g_assert_cmpstr (wzp_call_signal_type_name (wzp_featherchat_signal_type (WZP_SIGNAL_UNHOLD)), ==, "Unhold");
  g_assert_cmpstr (wzp_call_signal_type_name (wzp_featherchat_signal_type (WZP_SIGNAL_MUTE)), ==, "Mute");
  g_assert_cmpstr (wzp_call_signal_type_name (wzp_featherchat_signal_type (WZP_SIGNAL_UNMUTE)), ==, "Unmute");
  g_assert_cmpstr (wzp_call_signal_type_name (wzp_featherchat_signal_type (WZP_SIGNAL_TRANSFER)), ==, "Transfer");
  g_assert_cmpstr (wzp_call_signal_type_name (wzp_featherchat_signal_type (WZP_SIGNAL_MEDIA_PATH_REPORT)), ==, "Offer");
  g_assert_cmpstr (wzp_call_signal_type_name (wzp_featherchat_signal_type (WZP_SIGNAL_REFLECT)), ==, "Offer");
  g_assert_cmpstr (wzp_call_signal_type_name (WZP_CALL_SIGNAL_BUSY), ==, "Busy");
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/signal/vectors/file", test_vectors_file);
  g_test_add_func ("/signal/vectors/call-offer-typed", test_vector_call_offer_typed);
  g_test_add_func ("/signal/vectors/lengths", test_vector_lengths);
  g_test_add_func ("/signal/vectors/frame-reflect", test_frame_reflect);
  g_test_add_func ("/signal/edge-cases", test_edge_cases);
  g_test_add_func ("/signal/f32-format", test_f32_format);
  g_test_add_func ("/signal/names", test_names);
  for (guint i = 0; i < WZP_SIGNAL_N_TYPES; i++) {
    g_autofree gchar *path = g_strdup_printf ("/signal/round-trip/%s", wzp_signal_type_name (i));
    g_test_add_data_func (path, GINT_TO_POINTER (i), test_round_trip);
  }
  g_test_add_func ("/signal/bad-input", test_bad_input);
  g_test_add_func ("/signal/deep-nesting", test_deep_nesting);
  g_test_add_func ("/signal/encode-errors", test_encode_errors);
  g_test_add_func ("/signal/mutations", test_mutations);
  g_test_add_func ("/signal/featherchat", test_featherchat);
  g_test_add_func ("/signal/reader/pieces", test_reader_pieces);
  g_test_add_func ("/signal/reader/limits", test_reader_limits);
  return g_test_run ();
}
