/* Benchmarks what the plugin's codecs cost per 20 ms of a call, on one
 * core: wzpsrc decoding each codec (Opus 24k, Opus 6k/40 ms, Codec2 3200
 * and 1200, comfort noise) and concealing a frame, re-encoding to Opus (the
 * Opus output after a codec switch), and wzpsink encoding each profile.
 * Input is 440 Hz plus noise. Prints a table (µs per 20 ms of audio, and
 * the share of a core one call's direction takes) and one JSON line. */
#include <math.h>
#include <glib.h>
#include <gst/gst.h>

#include "gstwzpdecoder.h"
#include "gstwzpencoder.h"

#define RATE 48000
#define SECONDS 20              /* of audio per row */

typedef struct {
  const gchar *name;
  gdouble us_per_20ms;
} Row;

static gint16 pcm[RATE * SECONDS];

/* The frames wzpsink makes of the test signal with @codec */
static GPtrArray *
encode_all (WzpCodecId codec, gdouble *us)
{
  GstWzpEncoder *e = gst_wzp_encoder_new ();
  GPtrArray *frames = g_ptr_array_new_with_free_func ((GDestroyNotify) g_bytes_unref);
  gint64 t0 = g_get_monotonic_time ();
  WzpCodecId got;
  guint ms;
  GBytes *b;

  gst_wzp_encoder_set_codec (e, codec);
  for (guint at = 0; at < G_N_ELEMENTS (pcm); at += RATE / 50) {
    gst_wzp_encoder_push (e, pcm + at, RATE / 50);
    while ((b = gst_wzp_encoder_pull (e, &got, &ms)) != NULL)
      g_ptr_array_add (frames, b);
  }
  *us = (gdouble) (g_get_monotonic_time () - t0) / (SECONDS * 50);
  gst_wzp_encoder_free (e);
  return frames;
}

static gdouble
decode_all (WzpCodecId codec, GPtrArray *frames)
{
  GstWzpDecoder *d = gst_wzp_decoder_new ();
  gint16 out[GST_WZP_MAX_FRAME_SAMPLES];
  gint64 t0 = g_get_monotonic_time ();

  for (guint i = 0; i < frames->len; i++) {
    gsize len;
    const guint8 *data = g_bytes_get_data (g_ptr_array_index (frames, i), &len);
    gst_wzp_decoder_decode (d, codec, data, len, RATE / 50, out);
  }
  gst_wzp_decoder_free (d);
  return (gdouble) (g_get_monotonic_time () - t0) / (SECONDS * 50);
}

int
main (int argc, char **argv)
{
  static const struct { const gchar *name; WzpCodecId codec; } codecs[] = {
    { "Opus24k (20 ms)", WZP_CODEC_OPUS24K }, { "Opus6k (40 ms)", WZP_CODEC_OPUS6K },
    { "Opus64k (20 ms)", WZP_CODEC_OPUS64K }, { "Codec2 3200 (20 ms)", WZP_CODEC_CODEC2_3200 },
    { "Codec2 1200 (40 ms)", WZP_CODEC_CODEC2_1200 },
  };
  GArray *rows = g_array_new (FALSE, FALSE, sizeof (Row));
  GString *json = g_string_new ("{\"bench\":\"codecs\"");
  guint32 seed = 1;

  gst_init (&argc, &argv);
  for (guint i = 0; i < G_N_ELEMENTS (pcm); i++) {
    seed = seed * 1664525u + 1013904223u;
    pcm[i] = (gint16) (6000 * sin (2 * G_PI * 440 * i / RATE) + (gint32) (seed >> 20) - 2048);
  }
  for (guint c = 0; c < G_N_ELEMENTS (codecs); c++) {
    gdouble enc_us, dec_us;
    GPtrArray *frames = encode_all (codecs[c].codec, &enc_us);
    Row r;

    dec_us = decode_all (codecs[c].codec, frames);
    r = (Row) { g_strdup_printf ("wzpsink encode %s", codecs[c].name), enc_us };
    g_array_append_val (rows, r);
    r = (Row) { g_strdup_printf ("wzpsrc decode %s", codecs[c].name), dec_us };
    g_array_append_val (rows, r);
    g_ptr_array_unref (frames);
  }
  {
    /* comfort noise, concealment, and making Opus again */
    GstWzpDecoder *d = gst_wzp_decoder_new ();
    GstWzpReencoder *re = gst_wzp_reencoder_new ();
    gint16 out[GST_WZP_MAX_FRAME_SAMPLES];
    guint8 level = 50;
    gint64 t0 = g_get_monotonic_time ();
    Row r;

    for (guint i = 0; i < SECONDS * 50; i++)
      gst_wzp_decoder_decode (d, WZP_CODEC_COMFORT_NOISE, &level, 1, RATE / 50, out);
    r = (Row) { "wzpsrc comfort noise", (gdouble) (g_get_monotonic_time () - t0) / (SECONDS * 50) };
    g_array_append_val (rows, r);
    {
      GPtrArray *frames;
      gdouble ignored;

      frames = encode_all (WZP_CODEC_OPUS24K, &ignored);
      gst_wzp_decoder_decode (d, WZP_CODEC_OPUS24K, g_bytes_get_data (frames->pdata[0], NULL),
                              g_bytes_get_size (frames->pdata[0]), RATE / 50, out);
      t0 = g_get_monotonic_time ();
      for (guint i = 0; i < SECONDS * 50; i++)
        gst_wzp_decoder_conceal (d, RATE / 50, out);
      r = (Row) { "wzpsrc Opus concealment (a lost frame)",
                  (gdouble) (g_get_monotonic_time () - t0) / (SECONDS * 50) };
      g_array_append_val (rows, r);
      g_ptr_array_unref (frames);
    }
    t0 = g_get_monotonic_time ();
    for (guint at = 0; at < G_N_ELEMENTS (pcm); at += RATE / 50) {
      GBytes *b = gst_wzp_reencoder_encode (re, pcm + at, RATE / 50, WZP_CODEC_CODEC2_1200);
      g_bytes_unref (b);
    }
    r = (Row) { "wzpsrc re-encode to Opus (Opus output after a switch)",
                (gdouble) (g_get_monotonic_time () - t0) / (SECONDS * 50) };
    g_array_append_val (rows, r);
    gst_wzp_reencoder_free (re);
    gst_wzp_decoder_free (d);
  }
  g_print ("| operation | us per 20 ms of audio | share of a core |\n|---|---|---|\n");
  for (guint i = 0; i < rows->len; i++) {
    Row *r = &g_array_index (rows, Row, i);
    g_print ("| %s | %.1f | %.2f %% |\n", r->name, r->us_per_20ms, r->us_per_20ms / 200.0);
    g_string_append_printf (json, ",\"%s\":%.1f", r->name, r->us_per_20ms);
  }
  g_string_append (json, "}");
  g_print ("%s\n", json->str);
  return 0;
}
