#!/usr/bin/env python3
"""Write N MiB of pseudo-random bytes into a VirtualBox medium (the VM's current
differencing image, usually) through the Main API (IMedium.openForIO ->
IMediumIO.write, 1 MiB per call), without booting a guest: the diff then holds
N MiB of allocated blocks for the next fold to merge. Adapted from
.ci/vbox-write-bytes.py. Run inside the real-VirtualBox chroot, e.g.
  VBOX_WRAPPER_PROG=/usr/bin/python3 vboxmanage-chroot /tmp/…/vbox-fill.py <medium> <MiB> [<start MiB>]
<medium> is a path or UUID of a registered medium; all paths must be under /tmp.
Prints "wrote <bytes> bytes in <s> s" on success."""
import os
import sys
import time

from vboxapi import VirtualBoxManager

CHUNK = 1024 * 1024

medium, mib = sys.argv[1], int(sys.argv[2])
start = int(sys.argv[3]) if len(sys.argv) > 3 else 0
mgr = VirtualBoxManager(None, None)
vbox = mgr.getVirtualBox()
c = mgr.constants
m = vbox.openMedium(medium, c.DeviceType_HardDisk, c.AccessMode_ReadWrite, False)
io = m.openForIO(True, "")
t0 = time.monotonic()
total = 0
try:
    # Fresh random bytes per run (so no block is all-zero or equal to the
    # base's), cheap per chunk: one 1 MiB random buffer rotated by the chunk index.
    base = os.urandom(CHUNK)
    for i in range(mib):
        k = (i * 4099) % CHUNK
        data = base[k:] + base[:k]
        off = (start + i) * CHUNK
        n = io.write(off, data)
        if n != CHUNK:
            sys.exit(f"short write at {off}: {n} of {CHUNK} bytes")
        total += n
finally:
    io.close()
print(f"wrote {total} bytes in {time.monotonic() - t0:.2f} s into {m.location}")
