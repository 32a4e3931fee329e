#!/bin/sh
# Join a group room and play it.   join-room.sh RELAY ROOM
exec gst-launch-1.0 wzpsrc relay="$1" room="$2" ! opusdec plc=true ! audioconvert ! autoaudiosink
