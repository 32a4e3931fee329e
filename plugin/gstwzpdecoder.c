/* GstWzpDecoder: see gstwzpdecoder.h. */
#include "gstwzpdecoder.h"

#include <math.h>
#include <string.h>
#include <codec2/codec2.h>
#include <opus.h>

/* the cross-fade at a codec change, and the Opus concealment step */
#define XFADE_SAMPLES 240
#define OPUS_PLC_STEP 120
#define C2_RATE 8000
#define C2_UP (GST_WZP_RATE / C2_RATE)
/* the level of a ComfortNoise packet without a payload (§3.4) */
#define CN_DEFAULT_LEVEL 50
/* a lost Codec2 frame repeats the last one at this fraction of its gain */
#define C2_REPEAT_DECAY 0.5

typedef enum { FAM_NONE, FAM_OPUS, FAM_C2_3200, FAM_C2_1200, FAM_CN } Family;

typedef struct {
  struct CODEC2 *codec2;
  GstAudioResampler *up;        /* 8 -> 48 kHz */
  guint samples, bytes;         /* per frame, at 8 kHz */
  guint8 last[16];              /* the last frame's bits, for concealment */
  gboolean have_last;
  gdouble gain;                 /* of the next repeat */
} C2;

struct _GstWzpDecoder {
  OpusDecoder *opus;
  C2 c2[2];                     /* 3200, 1200 */
  Family last;
  guint32 noise_seed;
  gdouble noise_lp, noise_gain, noise_target;
  GstWzpDecoderStats stats;
};

static Family
family_of (WzpCodecId codec)
{
  if (wzp_codec_id_is_opus (codec))
    return FAM_OPUS;
  switch (codec) {
    case WZP_CODEC_CODEC2_3200:
      return FAM_C2_3200;
    case WZP_CODEC_CODEC2_1200:
      return FAM_C2_1200;
    case WZP_CODEC_COMFORT_NOISE:
      return FAM_CN;
    default:
      return FAM_NONE;
  }
}

GstAudioResampler *
gst_wzp_resampler_new (gint in_rate, gint out_rate)
{
  GstStructure *opts = gst_structure_new_empty ("options");
  GstAudioResampler *r;

  gst_audio_resampler_options_set_quality (GST_AUDIO_RESAMPLER_METHOD_KAISER,
                                           GST_AUDIO_RESAMPLER_QUALITY_DEFAULT, in_rate, out_rate,
                                           opts);
  r = gst_audio_resampler_new (GST_AUDIO_RESAMPLER_METHOD_KAISER, GST_AUDIO_RESAMPLER_FLAG_NONE,
                               GST_AUDIO_FORMAT_S16, 1, in_rate, out_rate, opts);
  gst_structure_free (opts);
  gst_wzp_resampler_prime (r);
  return r;
}

/* Resamplers start with their filter empty: what the filter holds back
 * (its latency, in input samples) is fed as silence once. */
void
gst_wzp_resampler_prime (GstAudioResampler *r)
{
  gint16 zeros[256] = { 0 }, sink[256 * C2_UP];
  gsize latency = gst_audio_resampler_get_max_latency (r);

  gst_audio_resampler_reset (r);
  while (latency > 0) {
    gsize in = MIN (latency, G_N_ELEMENTS (zeros));
    gsize out = gst_audio_resampler_get_out_frames (r, in);
    gpointer ip[1] = { zeros }, op[1] = { sink };

    gst_audio_resampler_resample (r, ip, in, op, MIN (out, G_N_ELEMENTS (sink)));
    latency -= in;
  }
}

void
gst_wzp_resample (GstAudioResampler *r, gint16 *in, gsize in_samples, gint16 *out,
                  gsize out_samples)
{
  gsize got = MIN (gst_audio_resampler_get_out_frames (r, in_samples), out_samples);
  gpointer ip[1] = { in }, op[1] = { out };

  gst_audio_resampler_resample (r, ip, in_samples, op, got);
  for (gsize i = got; i < out_samples; i++)
    out[i] = i ? out[i - 1] : 0;
}

static void
c2_init (C2 *c, int mode)
{
  c->codec2 = codec2_create (mode);
  c->samples = (guint) codec2_samples_per_frame (c->codec2);
  c->bytes = (guint) codec2_bytes_per_frame (c->codec2);
  g_assert (c->bytes <= sizeof c->last && c->samples * C2_UP <= GST_WZP_MAX_FRAME_SAMPLES);
  c->up = gst_wzp_resampler_new (C2_RATE, GST_WZP_RATE);
}

/* One frame of @bits at @gain, up-sampled into @out: 6 × samples. */
static guint
c2_run (C2 *c, const guint8 *bits, gdouble gain, gint16 *out)
{
  gint16 pcm[640];
  guint n = c->samples * C2_UP;

  codec2_decode (c->codec2, pcm, bits);
  if (gain != 1.0)
    for (guint i = 0; i < c->samples; i++)
      pcm[i] = (gint16) lrint (pcm[i] * gain);
  gst_wzp_resample (c->up, pcm, c->samples, out, n);
  return n;
}

GstWzpDecoder *
gst_wzp_decoder_new (void)
{
  GstWzpDecoder *d = g_new0 (GstWzpDecoder, 1);
  int err = 0;

  d->opus = opus_decoder_create (GST_WZP_RATE, 1, &err);
  g_assert (d->opus != NULL && err == OPUS_OK);
  c2_init (&d->c2[0], CODEC2_MODE_3200);
  c2_init (&d->c2[1], CODEC2_MODE_1200);
  d->noise_seed = 0x2545f491;
  return d;
}

void
gst_wzp_decoder_free (GstWzpDecoder *d)
{
  if (d == NULL)
    return;
  opus_decoder_destroy (d->opus);
  for (guint i = 0; i < G_N_ELEMENTS (d->c2); i++) {
    codec2_destroy (d->c2[i].codec2);
    gst_audio_resampler_free (d->c2[i].up);
  }
  g_free (d);
}

/* Comfort noise: white noise through a gentle low-pass, its RMS moving
 * to the target within the block. A level is −dBov, as RFC 3389's. */
static void
noise (GstWzpDecoder *d, guint n, gint16 *out)
{
  /* the RMS of the filtered noise per unit of amplitude */
  const gdouble filtered_rms = 0.3 / sqrt (1.0 - 0.49) / sqrt (3.0);

  for (guint i = 0; i < n; i++) {
    gdouble x;

    d->noise_seed = d->noise_seed * 1664525u + 1013904223u;
    x = (gdouble) (d->noise_seed >> 8) / (gdouble) (1u << 24) * 2.0 - 1.0;
    d->noise_lp = 0.7 * d->noise_lp + 0.3 * x;
    d->noise_gain += (d->noise_target - d->noise_gain) / 480.0;
    out[i] = (gint16) CLAMP (lrint (d->noise_lp * d->noise_gain / filtered_rms), -32768, 32767);
  }
}

static void
noise_level (GstWzpDecoder *d, guint level)
{
  d->noise_target = 32767.0 * pow (10.0, -(gdouble) MIN (level, 127u) / 20.0);
}

static C2 *
c2_of (GstWzpDecoder *d, Family f)
{
  return f == FAM_C2_3200 ? &d->c2[0] : f == FAM_C2_1200 ? &d->c2[1] : NULL;
}

/* @n samples of what @f would play next, with nothing new to play: the
 * concealment of that family (also the old side of a cross-fade). */
static void
continuation (GstWzpDecoder *d, Family f, guint n, gint16 *out)
{
  C2 *c = c2_of (d, f);

  if (f == FAM_OPUS) {
    for (guint done = 0; done < n;) {
      /* whole 2.5 ms steps; less than one left: a whole one, cut */
      guint want = MIN (n - done, (guint) GST_WZP_MAX_FRAME_SAMPLES) / OPUS_PLC_STEP * OPUS_PLC_STEP;
      gint16 tmp[OPUS_PLC_STEP];
      gint16 *dst = want ? out + done : tmp;
      int got = opus_decode (d->opus, NULL, 0, dst, want ? (int) want : OPUS_PLC_STEP, 0);
      guint take;

      if (got <= 0) {
        memset (out + done, 0, (n - done) * sizeof (gint16));
        break;
      }
      take = MIN ((guint) got, n - done);
      if (dst == tmp)
        memcpy (out + done, tmp, take * sizeof (gint16));
      done += take;
    }
  } else if (c != NULL && c->have_last) {
    gint16 frame[GST_WZP_MAX_FRAME_SAMPLES];

    for (guint done = 0; done < n;) {
      guint got = c2_run (c, c->last, c->gain, frame);
      guint take = MIN (got, n - done);

      /* fade within the frame from this gain to the next */
      for (guint i = 0; i < take; i++) {
        gdouble w = 1.0 - (1.0 - C2_REPEAT_DECAY) * (gdouble) i / got;
        out[done + i] = (gint16) lrint (frame[i] * w);
      }
      c->gain *= C2_REPEAT_DECAY;
      done += take;
    }
  } else if (f == FAM_CN) {
    noise (d, n, out);
  } else {
    memset (out, 0, n * sizeof (gint16));
  }
}

static guint
decode_family (GstWzpDecoder *d, Family f, const guint8 *data, gsize len, gint16 *out)
{
  C2 *c = c2_of (d, f);

  if (f == FAM_OPUS) {
    int n = len ? opus_decode (d->opus, data, (opus_int32) len, out, GST_WZP_MAX_FRAME_SAMPLES, 0) : 0;
    return n > 0 ? (guint) n : 0;
  }
  if (c != NULL) {
    if (len != c->bytes)
      return 0;
    memcpy (c->last, data, len);
    c->have_last = TRUE;
    c->gain = 1.0;
    return c2_run (c, data, 1.0, out);
  }
  if (f == FAM_CN) {
    noise_level (d, len ? data[0] : CN_DEFAULT_LEVEL);
    noise (d, GST_WZP_RATE / 50, out);
    return GST_WZP_RATE / 50;
  }
  return 0;
}

/* entering a family anew: its state is from long ago */
static void
enter (GstWzpDecoder *d, Family f)
{
  C2 *c = c2_of (d, f);

  if (f == FAM_OPUS)
    opus_decoder_ctl (d->opus, OPUS_RESET_STATE);
  else if (c)
    gst_wzp_resampler_prime (c->up);
  else if (f == FAM_CN)
    d->noise_gain = 0.0;        /* noise fades in */
}

guint
gst_wzp_decoder_decode (GstWzpDecoder *d, WzpCodecId codec, const guint8 *data, gsize len,
                        guint fallback_samples, gint16 *out)
{
  Family f = family_of (codec);
  gint16 old[XFADE_SAMPLES];
  gboolean fade = f != FAM_NONE && f != d->last && d->last != FAM_NONE;
  guint n;

  if (fade) {
    continuation (d, d->last, XFADE_SAMPLES, old);
    enter (d, f);
  } else if (f != FAM_NONE && d->last == FAM_NONE) {
    enter (d, f);
  }
  n = f == FAM_NONE ? 0 : decode_family (d, f, data, len, out);
  if (n == 0) {
    d->stats.undecodable++;
    n = MIN (fallback_samples, (guint) GST_WZP_MAX_FRAME_SAMPLES);
    if (fade) {
      /* the old family goes on concealing */
      memcpy (out, old, MIN (n, (guint) XFADE_SAMPLES) * sizeof (gint16));
      if (n > XFADE_SAMPLES)
        continuation (d, d->last, n - XFADE_SAMPLES, out + XFADE_SAMPLES);
    } else {
      continuation (d, d->last, n, out);
    }
    d->stats.concealed_ms += n * 1000 / GST_WZP_RATE;
    return n;
  }
  if (fade) {
    for (guint i = 0; i < MIN (n, (guint) XFADE_SAMPLES); i++) {
      gdouble w = (i + 0.5) / XFADE_SAMPLES;
      out[i] = (gint16) lrint (old[i] * (1.0 - w) + out[i] * w);
    }
    d->stats.switches++;
  }
  d->last = f;
  d->stats.decoded[codec]++;
  return n;
}

void
gst_wzp_decoder_conceal (GstWzpDecoder *d, guint samples, gint16 *out)
{
  continuation (d, d->last, samples, out);
  d->stats.concealed_ms += samples * 1000 / GST_WZP_RATE;
}

gboolean
gst_wzp_decoder_conceal_fec (GstWzpDecoder *d, guint samples, guint frame_samples,
                             WzpCodecId next_codec, const guint8 *next, gsize next_len, gint16 *out)
{
  int n;

  if (d->last != FAM_OPUS || !wzp_codec_id_is_opus (next_codec) || next_len == 0 ||
      frame_samples == 0 || frame_samples > samples || frame_samples % OPUS_PLC_STEP != 0) {
    gst_wzp_decoder_conceal (d, samples, out);
    return FALSE;
  }
  if (samples > frame_samples)
    continuation (d, FAM_OPUS, samples - frame_samples, out);
  n = opus_decode (d->opus, next, (opus_int32) next_len, out + samples - frame_samples,
                   (int) frame_samples, 1);
  if (n != (int) frame_samples) {
    continuation (d, FAM_OPUS, frame_samples, out + samples - frame_samples);
    d->stats.concealed_ms += samples * 1000 / GST_WZP_RATE;
    return FALSE;
  }
  d->stats.concealed_ms += (samples - frame_samples) * 1000 / GST_WZP_RATE;
  d->stats.fec++;
  return TRUE;
}

void
gst_wzp_decoder_get_stats (GstWzpDecoder *d, GstWzpDecoderStats *stats)
{
  *stats = d->stats;
}

/* ---- back to Opus ------------------------------------------------------ */

/* frames the re-encoder keeps the passed-through stream's bandwidth */
#define REENCODE_PINNED_FRAMES 5

struct _GstWzpReencoder {
  OpusEncoder *opus;
  guint bitrate;
  guint pinned;                 /* frames left at the bandwidth of the stream before */
};

GstWzpReencoder *
gst_wzp_reencoder_new (void)
{
  GstWzpReencoder *r = g_new0 (GstWzpReencoder, 1);
  int err = 0;

  r->opus = opus_encoder_create (GST_WZP_RATE, 1, OPUS_APPLICATION_VOIP, &err);
  g_assert (r->opus != NULL && err == OPUS_OK);
  /* what upstream's GOOD profile sends: Codec2 and comfort noise carry no
   * more than that */
  opus_encoder_ctl (r->opus, OPUS_SET_BITRATE (24000));
  r->bitrate = 24000;
  opus_encoder_ctl (r->opus, OPUS_SET_SIGNAL (OPUS_SIGNAL_VOICE));
  return r;
}

void
gst_wzp_reencoder_free (GstWzpReencoder *r)
{
  if (r == NULL)
    return;
  opus_encoder_destroy (r->opus);
  g_free (r);
}

static const guint opus_bitrate[WZP_CODEC_COUNT] = {
  [WZP_CODEC_OPUS24K] = 24000, [WZP_CODEC_OPUS16K] = 16000, [WZP_CODEC_OPUS6K] = 6000,
  [WZP_CODEC_OPUS32K] = 32000, [WZP_CODEC_OPUS48K] = 48000, [WZP_CODEC_OPUS64K] = 64000,
};

GBytes *
gst_wzp_reencoder_encode (GstWzpReencoder *r, const gint16 *pcm, guint samples, WzpCodecId codec)
{
  guint8 buf[1276];
  guint bitrate = codec < WZP_CODEC_COUNT && opus_bitrate[codec] ? opus_bitrate[codec] : 24000;
  opus_int32 n;

  if (bitrate != r->bitrate) {
    opus_encoder_ctl (r->opus, OPUS_SET_BITRATE ((opus_int32) bitrate));
    r->bitrate = bitrate;
  }
  n = opus_encode (r->opus, pcm, (int) samples, buf, sizeof buf);
  if (r->pinned > 0 && --r->pinned == 0)
    opus_encoder_ctl (r->opus, OPUS_SET_BANDWIDTH (OPUS_AUTO));
  return n > 0 ? g_bytes_new (buf, (gsize) n) : NULL;
}

void
gst_wzp_reencoder_prime (GstWzpReencoder *r, const gint16 *pcm, guint samples, guint8 last_toc)
{
  guint8 buf[1276];
  int bw = opus_packet_get_bandwidth (&last_toc);

  /* a decoder that meets a new bandwidth (SILK's internal rate) without the
   * transition an encoder signals restarts from silence: a click. So the
   * first packets keep the bandwidth of the last ones passed through, and
   * the encoder, free again after a few, changes it as encoders do. */
  if (bw > 0) {
    opus_encoder_ctl (r->opus, OPUS_SET_BANDWIDTH (bw));
    r->pinned = REENCODE_PINNED_FRAMES;
  }

  for (guint at = 0; at + GST_WZP_RATE / 50 <= samples; at += GST_WZP_RATE / 50)
    if (opus_encode (r->opus, pcm + at, GST_WZP_RATE / 50, buf, sizeof buf) < 0)
      break;
}
