/* Benchmarks the per-message costs of libwzp's wire formats: media datagram
 * parse/write (per packet on the relay's hot path) and signal JSON
 * encode/decode. Prints a table and one JSON line. */
#include <string.h>
#include <glib.h>

#include "wzp-identity.h"
#include "wzp-signal.h"
#include "wzp-wire.h"

typedef struct {
  const gchar *name;
  guint64 iterations;
  gdouble seconds;
} Result;

static volatile guint64 sink;

static Result
bench_media_parse (void)
{
  static guint8 pkt[12 + 80 + 4];
  WzpMediaHeader h = { .codec = WZP_CODEC_OPUS24K, .seq = 1, .timestamp = 20 };
  WzpQualityReport qr = wzp_quality_report_from_stats (1, 40, 3);
  guint8 payload[80] = { 0 };
  const guint64 n = 50000000;
  gint64 t0;
  WzpMediaPacket p;

  wzp_media_packet_write (&h, payload, sizeof payload, &qr, pkt, sizeof pkt);
  t0 = g_get_monotonic_time ();
  for (guint64 i = 0; i < n; i++) {
    pkt[3] = (guint8) i;
    wzp_media_packet_parse (pkt, sizeof pkt, &p, NULL);
    sink += p.header.seq;
  }
  return (Result) { "media_parse", n, (g_get_monotonic_time () - t0) / 1e6 };
}

static Result
bench_media_write (void)
{
  static guint8 pkt[12 + 80 + 4];
  WzpMediaHeader h = { .codec = WZP_CODEC_OPUS24K };
  guint8 payload[80] = { 0 };
  const guint64 n = 50000000;
  gint64 t0 = g_get_monotonic_time ();

  for (guint64 i = 0; i < n; i++) {
    h.seq = (guint16) i;
    sink += wzp_media_packet_write (&h, payload, sizeof payload, NULL, pkt, sizeof pkt);
  }
  return (Result) { "media_write", n, (g_get_monotonic_time () - t0) / 1e6 };
}

static WzpSignal *
sample_offer (void)
{
  guint8 seed[32];
  g_autoptr (WzpIdentity) id = NULL;
  WzpSignal *m = wzp_signal_new (WZP_SIGNAL_DIRECT_CALL_OFFER);
  WzpDirectCallOffer *o = &m->direct_call_offer;

  memset (seed, 0x2a, sizeof seed);
  id = wzp_identity_new_from_seed (seed);
  o->caller_fingerprint = g_strdup (wzp_identity_get_fingerprint (id));
  o->target_fingerprint = g_strdup ("6871:1211:0e91:ecb3:09f6:6f51:d257:ccaa");
  o->call_id = g_strdup ("18a2b3c4d5e6f708");
  memcpy (o->identity_pub, wzp_identity_get_public_key (id), 32);
  o->signature = g_bytes_new (NULL, 0);
  o->supported_profiles = g_array_new (FALSE, FALSE, sizeof (WzpQualityProfile));
  g_array_append_val (o->supported_profiles, WZP_PROFILE_GOOD);
  o->caller_reflexive_addr = g_strdup ("203.0.113.7:40001");
  o->caller_local_addrs = g_ptr_array_new_with_free_func (g_free);
  g_ptr_array_add (o->caller_local_addrs, g_strdup ("192.168.1.20:40001"));
  o->caller_build_version = g_strdup ("9377a90");
  return m;
}

static Result
bench_signal_encode (void)
{
  g_autoptr (WzpSignal) m = sample_offer ();
  const guint64 n = 200000;
  gint64 t0 = g_get_monotonic_time ();

  for (guint64 i = 0; i < n; i++) {
    gsize len;
    g_free (wzp_signal_to_json (m, &len, NULL));
    sink += len;
  }
  return (Result) { "signal_encode_direct_call_offer", n, (g_get_monotonic_time () - t0) / 1e6 };
}

static Result
bench_signal_decode (void)
{
  g_autoptr (WzpSignal) m = sample_offer ();
  gsize len;
  g_autofree gchar *json = wzp_signal_to_json (m, &len, NULL);
  const guint64 n = 50000;
  gint64 t0 = g_get_monotonic_time ();

  for (guint64 i = 0; i < n; i++) {
    WzpSignal *back = wzp_signal_from_json (json, len, NULL);
    sink += back->type;
    wzp_signal_free (back);
  }
  return (Result) { "signal_decode_direct_call_offer", n, (g_get_monotonic_time () - t0) / 1e6 };
}

int
main (void)
{
  Result r[] = { bench_media_parse (), bench_media_write (), bench_signal_encode (),
                 bench_signal_decode () };
  GString *json = g_string_new ("{\"bench\":\"wire\"");

  g_print ("%-34s %12s %12s %14s\n", "operation", "iterations", "ns/op", "ops/s");
  for (guint i = 0; i < G_N_ELEMENTS (r); i++) {
    gdouble ns = r[i].seconds * 1e9 / r[i].iterations;
    g_print ("%-34s %12" G_GUINT64_FORMAT " %12.1f %14.0f\n", r[i].name, r[i].iterations, ns,
             r[i].iterations / r[i].seconds);
    g_string_append_printf (json, ",\"%s_ns\":%.1f", r[i].name, ns);
  }
  g_string_append_c (json, '}');
  g_print ("%s\n", json->str);
  g_string_free (json, TRUE);
  return 0;
}
