/* wzp-wire: §3.10 vectors, trailer encoding, room hashes, bad input. */
#include <string.h>
#include <glib.h>

#include "wzp-util.h"
#include "wzp-wire.h"
#include "wzp-quality.h"

static void
assert_hex (const guint8 *data, gsize len, const gchar *spaced_hex)
{
  g_autofree gchar *got = wzp_hex_encode (data, len);
  g_autofree gchar *want = g_strdup (spaced_hex);
  gchar *w = want;

  for (const gchar *p = spaced_hex; *p; p++)
    if (*p != ' ' && *p != '|')
      *w++ = *p;
  *w = '\0';
  g_assert_cmpstr (got, ==, want);
}

static gboolean
header_equal (const WzpMediaHeader *a, const WzpMediaHeader *b)
{
  return a->version == b->version && !a->repair == !b->repair && a->codec == b->codec &&
      !a->has_quality == !b->has_quality && a->fec_ratio == b->fec_ratio && a->seq == b->seq &&
      a->timestamp == b->timestamp && a->fec_block == b->fec_block &&
      a->fec_symbol == b->fec_symbol && a->reserved == b->reserved &&
      a->csrc_count == b->csrc_count;
}

static void
test_header_vectors (void)
{
  struct { WzpMediaHeader h; const gchar *hex; } cases[] = {
    { { .codec = WZP_CODEC_OPUS24K, .seq = 1, .timestamp = 20 }, "00 00 00 01 00 00 00 14 00 00 00 00" },
    { { .codec = WZP_CODEC_OPUS24K, .has_quality = TRUE, .fec_ratio = 42, .seq = 12345,
        .timestamp = 987654, .fec_block = 7, .fec_symbol = 3 }, "02 a8 30 39 00 0f 12 06 07 03 00 00" },
    { { .repair = TRUE, .codec = WZP_CODEC_CODEC2_1200, .fec_ratio = 127, .seq = 65535,
        .timestamp = 0xffffffff, .fec_block = 255, .fec_symbol = 255, .reserved = 255 },
      "51 fc ff ff ff ff ff ff ff ff ff 00" },
    { { .codec = WZP_CODEC_CODEC2_1200, .fec_ratio = 64, .seq = 7, .timestamp = 280,
        .fec_block = 1, .fec_symbol = 2 }, "11 00 00 07 00 00 01 18 01 02 00 00" },
    { { .codec = WZP_CODEC_COMFORT_NOISE, .seq = 42, .timestamp = 4000 }, "14 00 00 2a 00 00 0f a0 00 00 00 00" },
    { { .codec = WZP_CODEC_OPUS6K, .seq = 256, .timestamp = 40 }, "08 00 01 00 00 00 00 28 00 00 00 00" },
    { { .codec = WZP_CODEC_OPUS64K }, "20 00 00 00 00 00 00 00 00 00 00 00" },
  };

  for (guint i = 0; i < G_N_ELEMENTS (cases); i++) {
    guint8 out[WZP_MEDIA_HEADER_SIZE];
    WzpMediaHeader back;
    g_autoptr (GError) error = NULL;

    wzp_media_header_write (&cases[i].h, out);
    assert_hex (out, sizeof out, cases[i].hex);
    g_assert_true (wzp_media_header_read (out, sizeof out, &back, &error));
    g_assert_no_error (error);
    g_assert_true (header_equal (&back, &cases[i].h));
  }
}

static void
test_datagram_vector (void)
{
  static const guint8 payload[] = { 0xfc, 0xff, 0xfe };
  WzpMediaHeader h = { .codec = WZP_CODEC_OPUS24K, .seq = 100, .timestamp = 2000 };
  WzpQualityReport qr = wzp_quality_report_from_stats (10.0, 100, 20);
  guint8 out[64];
  WzpMediaPacket p;
  gsize n;

  /* "loss 25/255": 10 % → 25 */
  g_assert_cmpuint (qr.loss_pct, ==, 25);
  n = wzp_media_packet_write (&h, payload, sizeof payload, &qr, out, sizeof out);
  g_assert_cmpuint (n, ==, 19);
  assert_hex (out, n, "02 00 00 64 00 00 07 d0 00 00 00 00 fc ff fe 19 19 14 c8");
  g_assert_true (wzp_media_packet_parse (out, n, &p, NULL));
  g_assert_true (p.header.has_quality);
  g_assert_cmpuint (p.payload_len, ==, 3);
  g_assert_cmpmem (p.payload, 3, payload, 3);
  g_assert_cmpuint (p.quality.rtt_4ms, ==, 25);
  g_assert_cmpuint (wzp_quality_report_rtt_ms (&p.quality), ==, 100);
  g_assert_cmpfloat_with_epsilon (wzp_quality_report_loss_percent (&p.quality), 9.8, 0.1);
  /* too small a buffer */
  g_assert_cmpuint (wzp_media_packet_write (&h, payload, sizeof payload, &qr, out, 18), ==, 0);
  /* without a trailer the Q bit is cleared even if the header says otherwise */
  h.has_quality = TRUE;
  n = wzp_media_packet_write (&h, payload, sizeof payload, NULL, out, sizeof out);
  g_assert_cmpuint (n, ==, 15);
  g_assert_cmpuint (out[0] & 0x02, ==, 0);
}

static void
test_quality_report (void)
{
  WzpQualityReport a = wzp_quality_report_from_stats (10, 100, 20);
  WzpQualityReport b = wzp_quality_report_from_stats (100, 2000, 300);
  WzpQualityReport c = wzp_quality_report_from_stats (-5, 3, 0);

  assert_hex ((guint8 *) &a, 4, "19 19 14 c8");
  assert_hex ((guint8 *) &b, 4, "ff ff ff c8");
  assert_hex ((guint8 *) &c, 4, "00 00 00 c8");
}

static void
test_fec_ratio (void)
{
  g_assert_cmpuint (wzp_fec_ratio_encode (0.2), ==, 13);
  g_assert_cmpuint (wzp_fec_ratio_encode (0.5), ==, 32);
  g_assert_cmpuint (wzp_fec_ratio_encode (1.0), ==, 64);
  g_assert_cmpuint (wzp_fec_ratio_encode (0.1), ==, 6);
  g_assert_cmpuint (wzp_fec_ratio_encode (2.0), ==, 127);
  g_assert_cmpuint (wzp_fec_ratio_encode (10.0), ==, 127);
  g_assert_cmpuint (wzp_fec_ratio_encode (-1.0), ==, 0);
  g_assert_cmpfloat_with_epsilon (wzp_fec_ratio_decode (64), 1.0079, 0.001);
}

static void
test_room_hashes (void)
{
  struct { const gchar *name, *hash; } names[] = {
    { "general", "a47b63f7d5b511ba5bc4089a74446906" },
    { "android", "3f8466a8c694c38ccbe4ff7479015ae0" },
    { "my-group", "46de10172c0bd3222eea8f521ac04d59" },
  };
  struct { const gchar *name, *hex; } tags[] = {
    { "general", "0f ea e1 6d 55 36 5a cf" },
    { "android", "f6 0e d5 6a 9c 82 75 89" },
    { "call-18a2b3c4d5e6f708", "0c fc 00 51 44 b3 03 67" },
  };

  for (guint i = 0; i < G_N_ELEMENTS (names); i++) {
    gchar out[WZP_ROOM_NAME_HASH_LEN];
    wzp_hash_room_name (names[i].name, out);
    g_assert_cmpstr (out, ==, names[i].hash);
  }
  for (guint i = 0; i < G_N_ELEMENTS (tags); i++) {
    guint8 out[WZP_ROOM_HASH_SIZE];
    wzp_room_hash (tags[i].name, out);
    assert_hex (out, sizeof out, tags[i].hex);
  }
}

static void
test_federation_vector (void)
{
  static const guint8 payload[] = { 0xf8, 0xff, 0xfe };
  WzpMediaHeader h = { .codec = WZP_CODEC_OPUS24K, .seq = 1, .timestamp = 20 };
  guint8 out[64];
  gsize n;

  wzp_room_hash ("call-18a2b3c4d5e6f708", out);
  n = wzp_media_packet_write (&h, payload, sizeof payload, NULL, out + 8, sizeof out - 8);
  assert_hex (out, n + 8, "0c fc 00 51 44 b3 03 67 | 00 00 00 01 00 00 00 14 00 00 00 00 | f8 ff fe");
}

static void
test_bad_input (void)
{
  guint8 buf[32] = { 0 };
  WzpMediaPacket p;

  for (gsize len = 0; len < WZP_MEDIA_HEADER_SIZE; len++) {
    g_autoptr (GError) error = NULL;
    g_assert_false (wzp_media_packet_parse (buf, len, &p, &error));
    g_assert_error (error, WZP_WIRE_ERROR, WZP_WIRE_ERROR_TRUNCATED);
  }
  for (guint codec = 9; codec < 16; codec++) {
    g_autoptr (GError) error = NULL;
    buf[0] = (guint8) (codec << 2);
    g_assert_false (wzp_media_packet_parse (buf, 20, &p, &error));
    g_assert_error (error, WZP_WIRE_ERROR, WZP_WIRE_ERROR_INVALID_CODEC);
  }
  /* Q=1 needs 4 bytes after the header */
  buf[0] = 0x02;
  for (gsize len = 12; len < 16; len++) {
    g_autoptr (GError) error = NULL;
    g_assert_false (wzp_media_packet_parse (buf, len, &p, &error));
    g_assert_error (error, WZP_WIRE_ERROR, WZP_WIRE_ERROR_TRUNCATED);
  }
  g_assert_true (wzp_media_packet_parse (buf, 16, &p, NULL));
  g_assert_cmpuint (p.payload_len, ==, 0);
  g_assert_false (wzp_media_packet_parse (NULL, 0, &p, NULL));
}

/* Every 12-byte header whose codec is valid reads back to the same bytes,
 * except the two unused bits of byte 1, which are written as 0. */
static void
test_random_headers (void)
{
  g_autoptr (GRand) r = g_rand_new_with_seed (3);

  for (guint i = 0; i < 100000; i++) {
    guint8 in[WZP_MEDIA_HEADER_SIZE], out[WZP_MEDIA_HEADER_SIZE];
    WzpMediaHeader h;

    for (guint j = 0; j < sizeof in; j++)
      in[j] = (guint8) g_rand_int (r);
    if (!wzp_media_header_read (in, sizeof in, &h, NULL)) {
      g_assert_cmpuint ((in[0] >> 2) & 0xf, >=, WZP_CODEC_COUNT);
      continue;
    }
    wzp_media_header_write (&h, out);
    in[1] &= 0xfc;
    g_assert_cmpmem (in, sizeof in, out, sizeof out);
  }
}

static void
test_codec_names (void)
{
  for (guint i = 0; i < WZP_CODEC_COUNT; i++) {
    WzpCodecId c;
    g_assert_true (wzp_codec_id_from_string (wzp_codec_id_to_string (i), &c));
    g_assert_cmpuint (c, ==, i);
    g_assert_cmpuint (wzp_codec_id_frame_ms (i), >=, 20);
  }
  g_assert_cmpuint (wzp_codec_id_frame_ms (WZP_CODEC_OPUS6K), ==, 40);
  g_assert_null (wzp_codec_id_to_string (9));
  g_assert_false (wzp_codec_id_from_string ("opus24k", &(WzpCodecId) { 0 }));
}

/* RFC 6716 §3.1 TOC bytes: config (5 bits), stereo, frame-count code. */
static void
test_opus_duration (void)
{
  const struct { guint8 pkt[2]; gsize len; guint us; } cases[] = {
    { { 0xf8 }, 1, 20000 },          /* CELT FB 20 ms, one frame (opusenc's default) */
    { { 0xf9 }, 1, 40000 },          /* two equal 20 ms frames (frame-size=40) */
    { { 0xfa }, 1, 40000 },          /* two different-size frames */
    { { 0xfb, 0x03 }, 2, 60000 },    /* code 3, three frames */
    { { 0xfb, 0x87 }, 2, 0 },        /* 7 × 20 ms > 120 ms */
    { { 0xfb }, 1, 0 },              /* code 3 without its count byte */
    { { 0xfb, 0x00 }, 2, 0 },        /* zero frames */
    { { 0x08 }, 1, 20000 },          /* SILK NB 20 ms */
    { { 0x10 }, 1, 40000 },          /* SILK NB 40 ms */
    { { 0x18 }, 1, 60000 },          /* SILK NB 60 ms */
    { { 0x60 }, 1, 10000 },          /* hybrid SWB 10 ms */
    { { 0x68 }, 1, 20000 },          /* hybrid SWB 20 ms */
    { { 0xe0 }, 1, 2500 },           /* CELT FB 2.5 ms */
    { { 0x00 }, 0, 0 },              /* empty */
  };

  for (guint i = 0; i < G_N_ELEMENTS (cases); i++)
    g_assert_cmpuint (wzp_opus_packet_duration_us (cases[i].pkt, cases[i].len), ==, cases[i].us);
  g_assert_cmpint (wzp_codec_id_for_opus_duration (40000), ==, WZP_CODEC_OPUS6K);
  g_assert_cmpint (wzp_codec_id_for_opus_duration (20000), ==, WZP_CODEC_OPUS24K);
  g_assert_cmpuint (wzp_codec_id_frame_ms (wzp_codec_id_for_opus_duration (40000)), ==, 40);
}

static void
test_quality_tiers (void)
{
  WzpTierController c;

  g_assert_cmpint (wzp_tier_classify (15.0, 0), ==, WZP_TIER_CATASTROPHIC);
  g_assert_cmpint (wzp_tier_classify (0, 200), ==, WZP_TIER_CATASTROPHIC);
  g_assert_cmpint (wzp_tier_classify (5.0, 0), ==, WZP_TIER_DEGRADED);
  g_assert_cmpint (wzp_tier_classify (0, 100), ==, WZP_TIER_DEGRADED);
  g_assert_cmpint (wzp_tier_classify (2.0, 0), ==, WZP_TIER_GOOD);
  g_assert_cmpint (wzp_tier_classify (0, 80), ==, WZP_TIER_GOOD);
  g_assert_cmpint (wzp_tier_classify (1.0, 0), ==, WZP_TIER_STUDIO_32K);
  g_assert_cmpint (wzp_tier_classify (0, 50), ==, WZP_TIER_STUDIO_32K);
  g_assert_cmpint (wzp_tier_classify (0.9, 30), ==, WZP_TIER_STUDIO_48K);
  g_assert_cmpint (wzp_tier_classify (0.9, 29), ==, WZP_TIER_STUDIO_64K);
  /* a call's own tier: RTT alone stops at Good, loss goes all the way */
  g_assert_cmpint (wzp_tier_classify_call (0, 600), ==, WZP_TIER_GOOD);
  g_assert_cmpint (wzp_tier_classify_call (0.5, 120), ==, WZP_TIER_GOOD);
  g_assert_cmpint (wzp_tier_classify_call (0, 60), ==, WZP_TIER_STUDIO_32K);
  g_assert_cmpint (wzp_tier_classify_call (0, 29), ==, WZP_TIER_STUDIO_64K);
  g_assert_cmpint (wzp_tier_classify_call (1.0, 600), ==, WZP_TIER_GOOD);
  g_assert_cmpint (wzp_tier_classify_call (5.0, 600), ==, WZP_TIER_DEGRADED);
  g_assert_cmpint (wzp_tier_classify_call (5.0, 0), ==, WZP_TIER_DEGRADED);
  g_assert_cmpint (wzp_tier_classify_call (15.0, 0), ==, WZP_TIER_CATASTROPHIC);
  g_assert_cmpstr (wzp_tier_name (WZP_TIER_DEGRADED), ==, "Degraded");
  g_assert_cmpint (wzp_tier_profile (WZP_TIER_DEGRADED)->codec, ==, WZP_CODEC_OPUS6K);
  g_assert_cmpint (wzp_tier_profile (WZP_TIER_CATASTROPHIC)->codec, ==, WZP_CODEC_CODEC2_1200);

  /* three worse reports in a row jump; a good one in between resets */
  wzp_tier_controller_init (&c);
  g_assert_false (wzp_tier_controller_feed (&c, 20, 0));
  g_assert_false (wzp_tier_controller_feed (&c, 20, 0));
  g_assert_false (wzp_tier_controller_feed (&c, 3, 0));       /* Good: same tier, reset */
  g_assert_false (wzp_tier_controller_feed (&c, 20, 0));
  g_assert_false (wzp_tier_controller_feed (&c, 6, 0));
  g_assert_true (wzp_tier_controller_feed (&c, 20, 0));       /* jumps to the observed */
  g_assert_cmpint (c.tier, ==, WZP_TIER_CATASTROPHIC);
  /* up one step per 5 better reports below Good, per 10 at or above */
  for (guint i = 0; i < 4; i++)
    g_assert_false (wzp_tier_controller_feed (&c, 0, 0));
  g_assert_true (wzp_tier_controller_feed (&c, 0, 0));
  g_assert_cmpint (c.tier, ==, WZP_TIER_DEGRADED);
  for (guint i = 0; i < 5; i++)
    wzp_tier_controller_feed (&c, 0, 0);
  g_assert_cmpint (c.tier, ==, WZP_TIER_GOOD);
  for (guint i = 0; i < 9; i++)
    g_assert_false (wzp_tier_controller_feed (&c, 0, 0));
  g_assert_true (wzp_tier_controller_feed (&c, 0, 0));
  g_assert_cmpint (c.tier, ==, WZP_TIER_STUDIO_32K);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/wire/header-vectors", test_header_vectors);
  g_test_add_func ("/wire/datagram-vector", test_datagram_vector);
  g_test_add_func ("/wire/quality-report", test_quality_report);
  g_test_add_func ("/wire/fec-ratio", test_fec_ratio);
  g_test_add_func ("/wire/room-hashes", test_room_hashes);
  g_test_add_func ("/wire/federation-vector", test_federation_vector);
  g_test_add_func ("/wire/bad-input", test_bad_input);
  g_test_add_func ("/wire/random-headers", test_random_headers);
  g_test_add_func ("/wire/codec-names", test_codec_names);
  g_test_add_func ("/wire/opus-duration", test_opus_duration);
  g_test_add_func ("/wire/quality-tiers", test_quality_tiers);
  return g_test_run ();
}
