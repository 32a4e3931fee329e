#!/usr/bin/env python3
"""The session API from Python, without GStreamer (GObject introspection).

Places a call (or answers one) through a relay with a Wzp.Session, prints
every call event as it happens, sends a few seconds of Opus-sized frames
once the call is up, and prints what arrived on which path.

    examples/session.py RELAY IDENTITY [FINGERPRINT] [--frames N]

Without FINGERPRINT it registers and answers the first incoming call. The
typelib comes with the build; from the source tree run it in the build's
environment, which finds libwzp and the typelib (or install with meson
install):

    meson devenv -C build -w . examples/session.py RELAY IDENTITY
"""
import sys
import threading
import time

import gi

gi.require_version("Wzp", "1.0")
from gi.repository import GLib, Wzp  # noqa: E402


def main():
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    frames = 150
    if "--frames" in sys.argv:
        frames = int(sys.argv[sys.argv.index("--frames") + 1])
        args.remove(str(frames))
    if len(args) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    relay, identity = args[0], args[1]
    target = args[2] if len(args) > 2 else None

    s = Wzp.Session.new()
    s.set_property("relay", relay)
    s.set_property("identity-file", identity)
    s.set_property("alias", "python")
    if target:
        s.set_property("call-target", target)
    else:
        s.set_property("auto-answer", True)

    lock = threading.Lock()
    errors = []

    # signals come from the session's own thread
    def on_event(session, step, data):
        with lock:
            print(f"event {step} {data.unpack()}", flush=True)

    def on_error(session, error):
        with lock:
            errors.append(error.message)

    s.connect("call-event", on_event)
    s.connect("error", on_error)
    s.start()

    deadline = time.monotonic() + 30
    while s.get_state() != Wzp.SessionState.ACTIVE:
        if s.get_state() == Wzp.SessionState.ENDED or time.monotonic() > deadline:
            print(f"no call: {errors}", flush=True)
            s.stop()
            return 1
        time.sleep(0.005)

    received = {"direct": 0, "relay": 0}
    sent = 0
    frame = bytes([0xF8]) + bytes(59)  # an Opus TOC byte (20 ms) and filler
    next_send = time.monotonic()
    end = None
    while True:
        now = time.monotonic()
        if sent < frames and now >= next_send:
            if s.send_media(frame, Wzp.CodecId.OPUS24K, sent * 20):
                sent += 1
            next_send += 0.02
            if sent == frames:
                end = now + (1.5 if target else 5.0)
        if end and now > end or s.get_state() == Wzp.SessionState.ENDED:
            break
        f = s.recv_media(GLib.get_monotonic_time() + 20000)
        while f is not None:
            received["direct" if f.path == Wzp.MediaPath.DIRECT else "relay"] += 1
            f = s.recv_media(0)

    stats = s.get_stats()
    path = Wzp.MediaPath(s.get_negotiated_path()).value_nick
    if target:
        s.hangup()
    s.stop()
    print(f"path {path} sent {sent} received {received['direct'] + received['relay']} "
          f"(direct {received['direct']}, relay {received['relay']}) "
          f"rtt {stats.rtt_us / 1000:.1f} ms setup {stats.setup_us / 1000:.1f} ms", flush=True)
    return 0 if sent == frames and sum(received.values()) > 0 else 1


if __name__ == "__main__":
    sys.exit(main())
