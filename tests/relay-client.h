/* A test client of the relay built on wzp-quic: connects with an SNI,
 * sends and collects signal messages, registers on _signal, joins rooms,
 * counts (and optionally keeps) the datagrams it receives. Everything runs
 * in the thread-default main context, driven by spin(). */
#pragma once

#include <gio/gio.h>

#include "relay-fixture.h"
#include "wzp-identity.h"
#include "wzp-quic.h"
#include "wzp-wire.h"

typedef struct {
  WzpEndpoint *ep;
  WzpIdentity *id;
  WzpConnection *conn;
  GPtrArray *msgs;          /* WzpSignal* not yet taken */
  gboolean established, closed;
  GError *close_error;
  guint datagrams;
  GHashTable *datagram_from; /* first payload byte -> count */
  GPtrArray *datagram_log;   /* GBytes of every datagram when keep_datagrams */
  gboolean keep_datagrams;
} Client;

/* Iterates the main context until @pred is true or @ms pass. */
gboolean spin (gboolean (*pred) (gpointer), gpointer data, guint ms);
void settle (guint ms);
gboolean c_is_closed (gpointer data);

Client *client_new (guint8 seed_byte);
void client_drop_conn (Client *c);
void client_free (Client *c);
void client_connect (Client *c, Relay *r, const gchar *sni);
/* Sends and frees @m. */
void client_send (Client *c, WzpSignal *m);
/* The first message of @type, removed from the inbox; NULL on timeout. */
WzpSignal *client_take (Client *c, WzpSignalType type, guint ms);
/* As client_take with 5 s, failing the test when nothing comes. */
WzpSignal *client_expect (Client *c, WzpSignalType type);
WzpSignal *register_msg (Client *c, gboolean sign, gboolean forge);
void client_register (Client *c, Relay *r);
WzpSignal *call_offer_msg (Client *c);
/* Spins until @c has kept @n datagrams (keep_datagrams), at most @ms. */
gboolean client_wait_datagrams (Client *c, guint n, guint ms);
/* Joins @room, checking the relay's signed CallAnswer. */
void join_room (Client *c, Relay *r, const gchar *room);
