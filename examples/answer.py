#!/usr/bin/env python3
"""Answer WarzonePhone calls from a Python GStreamer application.

Registers on a relay, waits for a call, answers it through the bus
(`wzp-incoming-call` message → the element's "answer" action), plays or
records the caller's audio, and prints the call's statistics every second.

    meson devenv -C build -w . examples/answer.py --relay 127.0.0.1:4433 \
        --identity bob.seed [--seconds 10] [--wav out.wav]

(`meson devenv` puts the build's plugin on GST_PLUGIN_PATH; after meson
install it runs as examples/answer.py.)
"""
import argparse
import sys

import gi
gi.require_version("Gst", "1.0")
from gi.repository import GLib, Gst  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--relay", required=True)
    ap.add_argument("--identity", required=True)
    ap.add_argument("--seconds", type=float, default=10)
    ap.add_argument("--wav", help="record to this WAV file instead of playing")
    args = ap.parse_args()

    Gst.init(None)
    out = (f"wavenc ! filesink location={args.wav}" if args.wav
           else "autoaudiosink")
    pipeline = Gst.parse_launch(
        f"wzpsrc name=src relay={args.relay} identity={args.identity} create-identity=true "
        f"! opusdec plc=true ! audioconvert ! audioresample ! {out}")
    src = pipeline.get_by_name("src")
    loop = GLib.MainLoop()

    def on_message(bus, msg):
        if msg.type == Gst.MessageType.ELEMENT:
            st = msg.get_structure()
            if st.get_name() == "wzp-incoming-call":
                print(f"incoming call from {st.get_string('fingerprint')}, answering",
                      flush=True)
                src.emit("answer")
            elif st.get_name() == "wzp-call-event":
                print(f"event {st.get_string('step')}", flush=True)
        elif msg.type == Gst.MessageType.ERROR:
            err, debug = msg.parse_error()
            print(f"error: {err.message} ({debug})", file=sys.stderr, flush=True)
            loop.quit()
        elif msg.type == Gst.MessageType.EOS:
            print("call ended", flush=True)
            loop.quit()

    def print_stats():
        st = src.get_property("stats")
        print("stats " + ", ".join(
            f"{k}={st.get_value(k)}" for k in
            ("path", "packets-received", "packets-lost", "jitter-buffer-level")), flush=True)
        return True

    bus = pipeline.get_bus()
    bus.add_signal_watch()
    bus.connect("message", on_message)
    GLib.timeout_add_seconds(1, print_stats)
    GLib.timeout_add(int(args.seconds * 1000), loop.quit)
    pipeline.set_state(Gst.State.PLAYING)
    loop.run()
    print_stats()  # the final figures
    pipeline.send_event(Gst.Event.new_eos())
    pipeline.get_bus().timed_pop_filtered(2 * Gst.SECOND, Gst.MessageType.EOS)
    pipeline.set_state(Gst.State.NULL)


if __name__ == "__main__":
    main()
