# The network lab: network namespaces joined by veth pairs and a bridge.
# Source this file, then: lab_up TOPOLOGY; ...; lab_down. Needs root.
#
# A "public" segment (namespace ${LAB}pub, bridge br0; 198.51.100.0/24 and
# 2001:db8::/64, documentation ranges) holds the relay (${LAB}relay,
# 198.51.100.1). Each peer X in a, b runs in namespace ${LAB}X, either on
# the public segment itself or on a private LAN behind a NAT namespace
# ${LAB}nX:
#   public     X on the segment: a 198.51.100.10, b .20 (+ 2001:db8::10/::20)
#   cone       MASQUERADE (port-preserving, one mapping per inside socket);
#              inbound NEW flows dropped on the WAN side: only flows the
#              inside opened (hole punching) get in
#   symmetric  MASQUERADE --random-fully: a new port for every destination
#   blocked    public, but UDP between the two peers' addresses dropped
#   v6only     public, IPv4 UDP between the peers dropped, IPv6 open
#   samelan    a and b on one LAN (10.0.0.0/24) behind one cone NAT ${LAB}n
# Topology names: public, cone, symmetric-cone, symmetric, blocked, v6only,
# samelan. lab_loss P drops each UDP packet entering a peer with probability
# P (iptables statistic). Everything lab_up creates, lab_down removes; the
# caller traps EXIT/INT/TERM to lab_down.

LAB=${LAB:-wz$$}
LAB_NS=()

lab_ns () {           # lab_ns NAME: create namespace ${LAB}NAME with lo up
  ip netns add "$LAB$1" || return 1
  LAB_NS+=("$LAB$1")
  ip -n "$LAB$1" link set lo up
  ip netns exec "$LAB$1" sysctl -qw net.ipv6.conf.all.accept_dad=0 net.ipv6.conf.default.accept_dad=0
}

lab_link () {         # lab_link NS1 IF1 NS2 IF2: a veth pair between two namespaces
  ip link add "$2" netns "$LAB$1" type veth peer name "$4" netns "$LAB$3" || return 1
  ip -n "$LAB$1" link set "$2" up
  ip -n "$LAB$3" link set "$4" up
}

# lab_wan_link NS1 IF1 NS2 IF2 UP DOWN: like lab_link, through the WAN
# emulator (wzp-wanem, $LAB_WANEM) in a namespace of its own: NS1→NS2 impaired
# by profile UP, NS2→NS1 by DOWN. Each side is a two-port bridge with one of
# the emulator's TAPs, so the link stays one Ethernet segment.
lab_wan_link () {
  local w="w$1$2"
  lab_ns "$w" || return 1
  lab_link "$1" "$2" "$w" vwa || return 1
  lab_link "$3" "$4" "$w" vwb || return 1
  ip netns exec "$LAB$w" "${LAB_WANEM:?set LAB_WANEM to the wzp-wanem binary}" --tap-a tapwa --tap-b tapwb \
      --up "$5" --down "$6" --seed "${LAB_WAN_SEED:-1}" >"${LAB_WAN_LOG:-/dev/null}" 2>&1 &
  for _ in $(seq 100); do ip -n "$LAB$w" link show tapwb >/dev/null 2>&1 && break; sleep 0.02; done
  for side in wa wb; do
    ip -n "$LAB$w" link add "br$side" type bridge || return 1
    ip -n "$LAB$w" link set dev "v$side" master "br$side" || return 1
    ip -n "$LAB$w" link set dev "tap$side" master "br$side" || return 1
    ip -n "$LAB$w" link set dev "tap$side" up
    ip -n "$LAB$w" link set dev "br$side" up
  done
}

lab_on_segment () {   # lab_on_segment NS IF ADDR4 [ADDR6]: attach NS to the public bridge
  # with $LAB_WAN set (a wzp-wanem profile), every peer-side link to the
  # segment goes through the WAN emulator (the relay's does not)
  if [ -n "${LAB_WAN:-}" ] && [ "$1" != relay ]; then
    lab_wan_link "$1" "$2" pub "p-$1" "$LAB_WAN" "${LAB_WAN_DOWN:-$LAB_WAN}" || return 1
  else
    lab_link pub "p-$1" "$1" "$2" || return 1
  fi
  ip -n "${LAB}pub" link set "p-$1" master br0
  ip -n "$LAB$1" addr add "$3/24" dev "$2"
  [ -n "${4:-}" ] && ip -n "$LAB$1" addr add "$4/64" dev "$2" nodad
  return 0
}

lab_nat () {          # lab_nat NS KIND LANIF LANNET: NAT rules for KIND cone|symmetric
  local ns=$LAB$1
  ip netns exec "$ns" sysctl -qw net.ipv4.ip_forward=1
  if [ "$2" = symmetric ]; then
    ip netns exec "$ns" iptables -t nat -A POSTROUTING -o wan -j MASQUERADE --random-fully
  else
    ip netns exec "$ns" iptables -t nat -A POSTROUTING -o wan -j MASQUERADE
  fi
  # like a home router's firewall: nothing new gets in from the WAN side,
  # neither through (FORWARD) nor to the NAT itself (INPUT; an accepted
  # stray packet would leave a conntrack entry that moves the next mapping)
  ip netns exec "$ns" iptables -A FORWARD -i wan -m conntrack --ctstate NEW,INVALID -j DROP
  ip netns exec "$ns" iptables -A INPUT -i wan -m conntrack --ctstate NEW,INVALID -j DROP
}

lab_private_peer () { # lab_private_peer X KIND N ADDR4: peer X on 10.N.0.0/24 behind NAT nX (WAN ADDR4)
  local x=$1 kind=$2 n=$3 pub4=$4
  lab_ns "n$x" && lab_ns "$x" || return 1
  lab_on_segment "n$x" wan "$pub4" || return 1
  lab_link "n$x" lan "$x" eth0 || return 1
  ip -n "${LAB}n$x" addr add "10.$n.0.1/24" dev lan
  ip -n "$LAB$x" addr add "10.$n.0.2/24" dev eth0
  ip -n "$LAB$x" route add default via "10.$n.0.1"
  lab_nat "n$x" "$kind"
}

lab_block_udp () {    # lab_block_udp X FAMILY ADDR: peer X drops UDP to/from ADDR
  local cmd=iptables
  [ "$2" = 6 ] && cmd=ip6tables
  ip netns exec "$LAB$1" $cmd -A OUTPUT -p udp -d "$3" -j DROP
  ip netns exec "$LAB$1" $cmd -A INPUT -p udp -s "$3" -j DROP
}

lab_up () {           # lab_up TOPOLOGY
  lab_ns pub || return 1
  ip -n "${LAB}pub" link add br0 type bridge
  ip -n "${LAB}pub" link set br0 up
  lab_ns relay && lab_on_segment relay eth0 198.51.100.1 2001:db8::1 || return 1
  case $1 in
    public|blocked|v6only)
      lab_ns a && lab_on_segment a eth0 198.51.100.10 2001:db8::10 || return 1
      lab_ns b && lab_on_segment b eth0 198.51.100.20 2001:db8::20 || return 1
      if [ "$1" != public ]; then
        lab_block_udp a 4 198.51.100.20
        lab_block_udp b 4 198.51.100.10
      fi
      if [ "$1" = blocked ]; then
        lab_block_udp a 6 2001:db8::20
        lab_block_udp b 6 2001:db8::10
      fi ;;
    cone)
      lab_private_peer a cone 1 198.51.100.10 && lab_private_peer b cone 2 198.51.100.20 ;;
    symmetric-cone)
      lab_private_peer a symmetric 1 198.51.100.10 && lab_private_peer b cone 2 198.51.100.20 ;;
    symmetric)
      lab_private_peer a symmetric 1 198.51.100.10 &&
        lab_private_peer b symmetric 2 198.51.100.20 ;;
    samelan)
      lab_ns n && lab_ns a && lab_ns b || return 1
      lab_on_segment n wan 198.51.100.10 || return 1
      ip -n "${LAB}n" link add lanbr type bridge
      ip -n "${LAB}n" link set lanbr up
      ip -n "${LAB}n" addr add 10.0.0.1/24 dev lanbr
      for x in a b; do
        lab_link n "l-$x" "$x" eth0 || return 1
        ip -n "${LAB}n" link set "l-$x" master lanbr
      done
      ip -n "${LAB}a" addr add 10.0.0.2/24 dev eth0
      ip -n "${LAB}b" addr add 10.0.0.3/24 dev eth0
      ip -n "${LAB}a" route add default via 10.0.0.1
      ip -n "${LAB}b" route add default via 10.0.0.1
      lab_nat n cone ;;
    *) echo "lab: unknown topology $1" >&2; return 1 ;;
  esac
}

lab_loss () {         # lab_loss P: every peer drops incoming UDP with probability P
  for x in a b; do
    ip netns exec "$LAB$x" iptables -I INPUT -p udp -m statistic --mode random \
      --probability "$1" -j DROP
    ip netns exec "$LAB$x" ip6tables -I INPUT -p udp -m statistic --mode random \
      --probability "$1" -j DROP
  done
}

lab_flush_nat () {    # lab_flush_nat X: forget every NAT mapping of peer X's NAT
  ip netns exec "${LAB}n$1" conntrack -F >/dev/null 2>&1
}

lab_exec () {         # lab_exec X CMD...: run CMD in peer X's namespace
  local x=$1; shift
  ip netns exec "$LAB$x" "$@"
}

lab_down () {         # removes every namespace lab_up created (their links go with them)
  local ns pids
  for ns in "${LAB_NS[@]}"; do
    pids=$(ip netns pids "$ns" 2>/dev/null)
    [ -n "$pids" ] && kill $pids 2>/dev/null
  done
  for ns in "${LAB_NS[@]}"; do
    ip netns del "$ns" 2>/dev/null
  done
  LAB_NS=()
}

lab_can_run () {      # prints why the lab cannot run here, or nothing
  if [ "$(id -u)" != 0 ]; then echo "needs root (network namespaces)"; return; fi
  if ! command -v iptables >/dev/null; then echo "iptables is not installed"; return; fi
  if ! ip netns add "${LAB}probe" 2>/dev/null; then echo "cannot create network namespaces"; return; fi
  if ! ip netns exec "${LAB}probe" iptables -t nat -L >/dev/null 2>&1; then
    ip netns del "${LAB}probe"; echo "iptables NAT does not work in a namespace"; return
  fi
  ip netns del "${LAB}probe"
}
