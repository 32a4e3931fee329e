#!/bin/sh
# Answer any call and play it.   answer-and-play.sh RELAY IDENTITY
exec gst-launch-1.0 wzpsrc relay="$1" identity="$2" auto-answer=true \
    ! opusdec plc=true ! audioconvert ! audioresample ! autoaudiosink
