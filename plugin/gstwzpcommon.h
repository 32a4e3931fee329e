/* Shared by wzpsrc and wzpsink: the properties both install, and the
 * process-wide registry that makes a src and a sink with one `session` name
 * one WzpSession (one identity, one socket, one call). */
#pragma once

#include <gst/gst.h>

#include "wzp-session.h"
#include "wzp-jitter.h"

G_BEGIN_DECLS

#define GST_WZP_MEDIA_TIMEOUT_DEFAULT_MS 10000
/* wzpsrc's playout delay adapts between these (ms) */
#define GST_WZP_MIN_LATENCY_DEFAULT_MS 20
#define GST_WZP_MAX_LATENCY_DEFAULT_MS 400

typedef struct {
  gchar *relay, *identity, *alias, *call, *room, *relay_fingerprint, *session, *token;
  gboolean auto_answer, direct, create_identity;
  guint media_timeout_ms, handshake_timeout_ms, ring_timeout_ms;
  gint encryption;            /* GstWzpEncryption */
} GstWzpSettings;

/* End-to-end media encryption: "auto" seals media when the peer can (both
 * sides gst-wzp), "required" refuses a peer that cannot, "off" never. */
typedef enum {
  GST_WZP_ENCRYPTION_AUTO,
  GST_WZP_ENCRYPTION_OFF,
  GST_WZP_ENCRYPTION_REQUIRED,
} GstWzpEncryption;
GType gst_wzp_encryption_get_type (void);

enum {
  GST_WZP_PROP_0,
  GST_WZP_PROP_RELAY,
  GST_WZP_PROP_IDENTITY,
  GST_WZP_PROP_ALIAS,
  GST_WZP_PROP_CALL,
  GST_WZP_PROP_AUTO_ANSWER,
  GST_WZP_PROP_ROOM,
  GST_WZP_PROP_RELAY_FINGERPRINT,
  GST_WZP_PROP_DIRECT,
  GST_WZP_PROP_SESSION,
  GST_WZP_PROP_URI,
  GST_WZP_PROP_TOKEN,
  GST_WZP_PROP_MEDIA_TIMEOUT,
  GST_WZP_PROP_FINGERPRINT,
  GST_WZP_PROP_CREATE_IDENTITY,
  GST_WZP_PROP_HANDSHAKE_TIMEOUT,
  GST_WZP_PROP_RING_TIMEOUT,
  GST_WZP_PROP_ENCRYPTION,
  GST_WZP_PROP_LAST,
};

void gst_wzp_install_properties (GObjectClass *klass);
/* wzp://host:port/call/<fingerprint>, wzp://host:port/room/<name> or
 * wzp://host:port/ (answer), with query parameters named like the
 * properties (identity, alias, auto-answer, relay-fingerprint, direct,
 * session). */
gboolean gst_wzp_settings_set_uri (GstWzpSettings *s, const gchar *uri, GError **error);
gchar *gst_wzp_settings_get_uri (GstWzpSettings *s);
/* GstURIHandler for both elements. */
void gst_wzp_uri_handler_init (gpointer iface, gpointer data);
/* Installs the "answer" and "reject" action signals; @offset is the class
 * offset of a WzpSession* field of the instance. */
void gst_wzp_install_actions (GObjectClass *klass, gsize session_offset);
void gst_wzp_settings_init (GstWzpSettings *s);
void gst_wzp_settings_clear (GstWzpSettings *s);
gboolean gst_wzp_set_property (GstWzpSettings *s, guint id, const GValue *value);
gboolean gst_wzp_get_property (GstWzpSettings *s, guint id, GValue *value);

/* The session named by @s (created on first use, not started). Every
 * element's settings are merged into it: a string set on any element counts,
 * auto-answer if any element says so, direct unless any element says not.
 * The element that creates it posts the call's events on the bus
 * ("wzp-call-event", "wzp-incoming-call") and its errors (GST_ELEMENT_ERROR).
 * Unref with gst_wzp_session_release(). */
WzpSession *gst_wzp_session_acquire (GstElement *element, GstWzpSettings *s, GError **error);
/* Starts the call with the merged settings, once (PAUSED→PLAYING). */
gboolean gst_wzp_session_activate (WzpSession *session, GError **error);
/* The elements' common part of change_state: the call starts in PLAYING
 * (READY→PAUSED never touches the network). FALSE after posting an error. */
gboolean gst_wzp_element_change_state (GstElement *element, WzpSession *session,
                                       GstStateChange transition);
void gst_wzp_session_release (WzpSession *session);
/* GST_FLOW_EOS once the call has ended (however it ended: an error is
 * posted on the bus as it happens), else GST_FLOW_OK. */
GstFlowReturn gst_wzp_session_end_flow (WzpSession *session);
void gst_wzp_debug_init (void);
/* Our fingerprint: the session's once the call started, else worked out from
 * the identity setting (hex, or an existing seed file); NULL for a fresh
 * identity not made yet. */
gchar *gst_wzp_fingerprint (WzpSession *session, const GstWzpSettings *s);
GST_DEBUG_CATEGORY_EXTERN (gst_wzp_session_debug);

/* The `stats` property both elements install (@id is the element's own
 * property id), and its value: the session's figures plus, for wzpsrc, the
 * jitter buffer's (@jitter may be NULL). */
void gst_wzp_install_stats (GObjectClass *klass, guint id);
GstStructure *gst_wzp_stats_new (WzpSession *session, const WzpJitterStats *jitter);

G_END_DECLS
