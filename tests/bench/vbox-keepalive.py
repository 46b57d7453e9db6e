#!/usr/bin/env python3
"""Hold one client reference to VBoxSVC until stdin closes, so that VBoxSVC
stays warm for the whole benchmark. Without it VBoxSVC's auto-shutdown timer
(it exits a few seconds after it last saw no client) now and then fires in the
gap between two calls and the next call waits ~10 s for a new VBoxSVC: seen
here as a 10 101 ms `list hdds`. Run inside the chroot:
  VBOX_WRAPPER_PROG=/usr/bin/python3 vboxmanage-chroot /tmp/…/vbox-keepalive.py"""
import sys

from vboxapi import VirtualBoxManager

mgr = VirtualBoxManager(None, None)
vbox = mgr.getVirtualBox()
print(f"holding VBoxSVC {vbox.version}", flush=True)
sys.stdin.read()
