#!/usr/bin/env python3
"""Turns shim.c's record into the prefetch tables of gst/wzp/wzp-quic-conn.c.

Usage: tables.py SIZEOF-NGTCP2_CONN [CONN-SHARE [BLOCK-SHARE]] < record

The ngtcp2_conn blocks are those of exactly that size; the words of theirs
used in at least a fifth of the packet calls become hot_ranges. Every other
size of block that each connection has at least one of (blocks that belong to
no connection, such as the endpoint's buffers, are fewer) gets one range in
hot_blocks: from the first to the last word used in at least a tenth of the
calls that reached one such block. Those shares (0.2 and 0.1) can be given.
"""
import collections
import sys

CONN_SHARE, BLOCK_SHARE = 0.2, 0.1


def ranges(offsets, gap=8):
    out = []
    for o in sorted(offsets):
        if out and o <= out[-1][1] + gap - 8:
            out[-1][1] = o + 8
        else:
            out.append([o, o + 8])
    return out


def c_list(items, indent="  ", width=92):
    lines, cur = [], indent
    for it in items:
        if len(cur) + len(it) + 1 > width:
            lines.append(cur.rstrip())
            cur = indent
        cur += it + " "
    lines.append(cur.rstrip().rstrip(","))
    return "\n".join(lines)


def main():
    global CONN_SHARE, BLOCK_SHARE
    conn_size = int(sys.argv[1])
    if len(sys.argv) > 2:
        CONN_SHARE = float(sys.argv[2])
    if len(sys.argv) > 3:
        BLOCK_SHARE = float(sys.argv[3])
    calls = None
    words = collections.defaultdict(collections.Counter)
    count = collections.Counter()
    for line in sys.stdin:
        f = line.split()
        if f[0] == "calls":
            calls = int(f[1])
            continue
        size = int(f[1])
        count[size] += 1
        for w in f[2:]:
            off, n = w.split(":")
            words[size][int(off)] += int(n)
    if not calls or not count[conn_size]:
        sys.exit("no packet calls, or no ngtcp2_conn among the blocks: nothing recorded")
    conns = count[conn_size]
    hot = [o for o, n in words[conn_size].items() if n / calls >= CONN_SHARE]
    print(f"/* {calls} packet calls over {conns} connections; "
          f"sizeof (ngtcp2_conn) = {conn_size} */")
    print("hot_ranges[] = {")
    print(c_list([f"{{ {a}, {b} }}," for a, b in ranges(hot)]))
    print("};")
    blocks = []
    for size in sorted(words):
        if size == conn_size or count[size] < conns:
            continue
        per_call = calls * count[size] / conns
        used = [o for o, n in words[size].items() if n / per_call >= BLOCK_SHARE]
        if used:
            blocks.append(f"{{ {size}, {min(used)}, {max(used) + 8} }},")
    print("hot_blocks[] = {\n  { 0, 0, PREFETCH_BLOCK },")
    print(c_list(blocks) + ",")
    print("};")


if __name__ == "__main__":
    main()
