/* GstWzpEncoder: wzpsink's own encoder, for raw audio (48 kHz mono S16).
 *
 * Sends what upstream's profiles send (protocol §3.4, §5.3.4): Opus at 6
 * to 64 kbit/s in 20 ms frames (40 ms at 6 kbit/s), Codec2 1200 (40 ms) and
 * 3200 (20 ms), 8 kHz, down-sampled with GstAudioResampler. The codec
 * changes at a frame boundary. Opus is set as upstream sets it (VOIP, voice,
 * complexity 7), and its in-band FEC and expected-loss hint follow the loss
 * the path has: FEC on from 1 % loss. */
#pragma once

#include <gst/gst.h>
#include "wzp-wire.h"

G_BEGIN_DECLS

typedef struct {
  guint64 frames[WZP_CODEC_COUNT];  /* sent, by codec id */
  guint64 switches;                 /* codec changes */
  gboolean fec;                     /* Opus in-band FEC on now */
  guint loss_percent;               /* the loss hint Opus has now */
} GstWzpEncoderStats;

typedef struct _GstWzpEncoder GstWzpEncoder;

GstWzpEncoder *gst_wzp_encoder_new (void);
void gst_wzp_encoder_free (GstWzpEncoder *encoder);
/* The codec of the frames from the next one on (Opus*, Codec2*). */
void gst_wzp_encoder_set_codec (GstWzpEncoder *encoder, WzpCodecId codec);
WzpCodecId gst_wzp_encoder_get_codec (GstWzpEncoder *encoder);
/* The loss of the path, in percent: Opus's FEC and loss hint follow it. */
void gst_wzp_encoder_set_loss (GstWzpEncoder *encoder, guint percent);
/* Takes @samples of audio. */
void gst_wzp_encoder_push (GstWzpEncoder *encoder, const gint16 *pcm, gsize samples);
/* The next frame, once a whole one has been pushed: its codec id and
 * duration; NULL when there is none yet. */
GBytes *gst_wzp_encoder_pull (GstWzpEncoder *encoder, WzpCodecId *codec, guint *duration_ms);
void gst_wzp_encoder_get_stats (GstWzpEncoder *encoder, GstWzpEncoderStats *stats);

G_END_DECLS
