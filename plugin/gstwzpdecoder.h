/* GstWzpDecoder: every codec a WZP peer sends (§3.4), decoded to one
 * continuous stream of 48 kHz mono S16 audio.
 *
 * One decoder per codec family keeps its state across the call: Opus (every
 * bitrate and frame size; libopus), Codec2 3200 and 1200 (libcodec2, 8 kHz,
 * up-sampled with GstAudioResampler) and comfort noise (synthesised at the
 * level the packet carries). Gaps are concealed by the family that played
 * last: Opus's own concealment, the last Codec2 frame again fading out, or
 * more comfort noise. When the codec changes, the first 5 ms of the new
 * codec's frame are cross-faded with the old decoder's continuation, so a
 * switch neither clicks nor leaves a gap.
 *
 * GstWzpReencoder turns such audio back into Opus, for wzpsrc's encoded
 * output when the peer sends something other than Opus. */
#pragma once

#include <gst/gst.h>
#include "wzp-wire.h"

G_BEGIN_DECLS

#define GST_WZP_RATE 48000
/* the longest frame: a 120 ms Opus packet */
#define GST_WZP_MAX_FRAME_SAMPLES 5760

typedef struct {
  guint64 decoded[WZP_CODEC_COUNT];  /* frames, by codec id */
  guint64 undecodable;               /* frames no decoder took (concealed instead) */
  guint64 concealed_ms;              /* audio made up for gaps */
  guint64 switches;                  /* codec changes, each cross-faded */
  guint64 fec;                       /* lost frames decoded from the next one's in-band FEC */
} GstWzpDecoderStats;

typedef struct _GstWzpDecoder GstWzpDecoder;

GstWzpDecoder *gst_wzp_decoder_new (void);
void gst_wzp_decoder_free (GstWzpDecoder *decoder);
/* Decodes one frame into @out (room for GST_WZP_MAX_FRAME_SAMPLES); returns
 * its samples. A frame no decoder takes is concealed for @fallback_samples
 * and counted. */
guint gst_wzp_decoder_decode (GstWzpDecoder *decoder, WzpCodecId codec, const guint8 *data,
                              gsize len, guint fallback_samples, gint16 *out);
/* @samples (at most GST_WZP_MAX_FRAME_SAMPLES) of concealment after what was
 * decoded last. */
void gst_wzp_decoder_conceal (GstWzpDecoder *decoder, guint samples, gint16 *out);
/* As gst_wzp_decoder_conceal(), for a gap whose next frame is here: when
 * both are Opus, the last @frame_samples of the gap come from that frame's
 * in-band FEC (LBRR; Opus conceals instead when the frame carries none).
 * Returns whether it was used. */
gboolean gst_wzp_decoder_conceal_fec (GstWzpDecoder *decoder, guint samples, guint frame_samples,
                                      WzpCodecId next_codec, const guint8 *next, gsize next_len,
                                      gint16 *out);
void gst_wzp_decoder_get_stats (GstWzpDecoder *decoder, GstWzpDecoderStats *stats);

/* A mono S16 resampler whose filter is primed with its latency of silence,
 * so that from the start every n samples in give n × out/in out; and one
 * run of it that always writes exactly @out_samples (the last repeated,
 * should the filter give one short). Shared by the Codec2 coders. */
#include <gst/audio/audio.h>
GstAudioResampler *gst_wzp_resampler_new (gint in_rate, gint out_rate);
void gst_wzp_resampler_prime (GstAudioResampler *resampler);
void gst_wzp_resample (GstAudioResampler *resampler, gint16 *in, gsize in_samples, gint16 *out,
                       gsize out_samples);

typedef struct _GstWzpReencoder GstWzpReencoder;

GstWzpReencoder *gst_wzp_reencoder_new (void);
void gst_wzp_reencoder_free (GstWzpReencoder *reencoder);
/* Encodes @samples (a 10, 20 or 40 ms frame) to one Opus packet, at the
 * bitrate of @codec's Opus profile (24 kbit/s for the others). */
GBytes *gst_wzp_reencoder_encode (GstWzpReencoder *reencoder, const gint16 *pcm, guint samples,
                                  WzpCodecId codec);
/* Runs @samples of what came before through the encoder, output dropped,
 * at the bandwidth of the Opus packet before (@last_toc): its first packet
 * then continues that audio in a decoder that played it. */
void gst_wzp_reencoder_prime (GstWzpReencoder *reencoder, const gint16 *pcm, guint samples,
                              guint8 last_toc);

G_END_DECLS
