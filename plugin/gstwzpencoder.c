/* GstWzpEncoder: see gstwzpencoder.h. */
#include "gstwzpencoder.h"
#include "gstwzpdecoder.h"

#include <string.h>
#include <codec2/codec2.h>
#include <opus.h>

#define RATE 48000
#define C2_RATE 8000
#define C2_DOWN (RATE / C2_RATE)
/* upstream's Opus complexity (protocol §3.4) */
#define OPUS_COMPLEXITY 7
/* in-band FEC from this loss on (percent) */
#define FEC_MIN_LOSS 1

typedef struct {
  struct CODEC2 *codec2;
  guint samples, bytes;         /* per frame, at 8 kHz */
} C2;

struct _GstWzpEncoder {
  OpusEncoder *opus;
  C2 c2[2];                     /* 3200, 1200 */
  GstAudioResampler *down;      /* 48 -> 8 kHz */
  WzpCodecId codec, last;
  gboolean started;
  guint bitrate;
  GArray *pending;              /* samples not yet in a frame */
  GstWzpEncoderStats stats;
};

static const guint opus_bitrate[WZP_CODEC_COUNT] = {
  [WZP_CODEC_OPUS24K] = 24000, [WZP_CODEC_OPUS16K] = 16000, [WZP_CODEC_OPUS6K] = 6000,
  [WZP_CODEC_OPUS32K] = 32000, [WZP_CODEC_OPUS48K] = 48000, [WZP_CODEC_OPUS64K] = 64000,
};

static C2 *
c2_of (GstWzpEncoder *e, WzpCodecId codec)
{
  return codec == WZP_CODEC_CODEC2_3200 ? &e->c2[0] :
      codec == WZP_CODEC_CODEC2_1200 ? &e->c2[1] : NULL;
}

GstWzpEncoder *
gst_wzp_encoder_new (void)
{
  GstWzpEncoder *e = g_new0 (GstWzpEncoder, 1);
  const int modes[2] = { CODEC2_MODE_3200, CODEC2_MODE_1200 };
  int err = 0;

  e->opus = opus_encoder_create (RATE, 1, OPUS_APPLICATION_VOIP, &err);
  g_assert (e->opus != NULL && err == OPUS_OK);
  opus_encoder_ctl (e->opus, OPUS_SET_SIGNAL (OPUS_SIGNAL_VOICE));
  opus_encoder_ctl (e->opus, OPUS_SET_COMPLEXITY (OPUS_COMPLEXITY));
  for (guint i = 0; i < 2; i++) {
    e->c2[i].codec2 = codec2_create (modes[i]);
    e->c2[i].samples = (guint) codec2_samples_per_frame (e->c2[i].codec2);
    e->c2[i].bytes = (guint) codec2_bytes_per_frame (e->c2[i].codec2);
  }
  e->down = gst_wzp_resampler_new (RATE, C2_RATE);
  e->pending = g_array_new (FALSE, FALSE, sizeof (gint16));
  e->codec = e->last = WZP_CODEC_OPUS24K;
  return e;
}

void
gst_wzp_encoder_free (GstWzpEncoder *e)
{
  if (e == NULL)
    return;
  opus_encoder_destroy (e->opus);
  for (guint i = 0; i < 2; i++)
    codec2_destroy (e->c2[i].codec2);
  gst_audio_resampler_free (e->down);
  g_array_unref (e->pending);
  g_free (e);
}

void
gst_wzp_encoder_set_codec (GstWzpEncoder *e, WzpCodecId codec)
{
  if (codec < WZP_CODEC_COUNT && (opus_bitrate[codec] || c2_of (e, codec)))
    e->codec = codec;
}

WzpCodecId
gst_wzp_encoder_get_codec (GstWzpEncoder *e)
{
  return e->codec;
}

void
gst_wzp_encoder_set_loss (GstWzpEncoder *e, guint percent)
{
  gboolean fec = percent >= FEC_MIN_LOSS;

  percent = MIN (percent, 100u);
  if (percent != e->stats.loss_percent)
    opus_encoder_ctl (e->opus, OPUS_SET_PACKET_LOSS_PERC ((opus_int32) percent));
  if (fec != e->stats.fec)
    opus_encoder_ctl (e->opus, OPUS_SET_INBAND_FEC (fec ? 1 : 0));
  e->stats.loss_percent = percent;
  e->stats.fec = fec;
}

void
gst_wzp_encoder_push (GstWzpEncoder *e, const gint16 *pcm, gsize samples)
{
  g_array_append_vals (e->pending, pcm, (guint) samples);
}

static GBytes *
encode_c2 (GstWzpEncoder *e, C2 *c, gint16 *pcm, guint samples)
{
  gint16 speech[640];
  guint8 bits[16];

  g_assert (c->samples <= G_N_ELEMENTS (speech) && c->bytes <= sizeof bits);
  gst_wzp_resample (e->down, pcm, samples, speech, c->samples);
  codec2_encode (c->codec2, bits, speech);
  return g_bytes_new (bits, c->bytes);
}

GBytes *
gst_wzp_encoder_pull (GstWzpEncoder *e, WzpCodecId *codec, guint *duration_ms)
{
  WzpCodecId id = e->codec;
  guint ms = wzp_codec_id_frame_ms (id);
  guint samples = ms * (RATE / 1000);
  gint16 *pcm = (gint16 *) e->pending->data;
  C2 *c = c2_of (e, id);
  GBytes *out;

  if (e->pending->len < samples)
    return NULL;
  if (e->started && id != e->last) {
    e->stats.switches++;
    /* Codec2 from a standstill: its down-sampler starts afresh */
    if (c && !c2_of (e, e->last))
      gst_wzp_resampler_prime (e->down);
  }
  if (c) {
    out = encode_c2 (e, c, pcm, samples);
  } else {
    guint8 buf[1276];
    opus_int32 n;

    if (opus_bitrate[id] != e->bitrate) {
      opus_encoder_ctl (e->opus, OPUS_SET_BITRATE ((opus_int32) opus_bitrate[id]));
      e->bitrate = opus_bitrate[id];
    }
    n = opus_encode (e->opus, pcm, (int) samples, buf, sizeof buf);
    out = n > 0 ? g_bytes_new (buf, (gsize) n) : NULL;
  }
  g_array_remove_range (e->pending, 0, samples);
  e->started = TRUE;
  e->last = id;
  if (out == NULL)
    return NULL;
  e->stats.frames[id]++;
  *codec = id;
  *duration_ms = ms;
  return out;
}

void
gst_wzp_encoder_get_stats (GstWzpEncoder *e, GstWzpEncoderStats *stats)
{
  *stats = e->stats;
}
