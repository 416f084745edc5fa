#!/usr/bin/env python3
"""Writes the link order of sandboxrun's warm path (runner/link-order.txt).

Reads `perf script -F pid,addr --show-mmap-events` of a warm `sandboxrun` run recorded with
the page cache dropped and readahead off (link_order.sh does both), so that every page of
code the run touched faulted once. Prints the symbols of the binary's `.text` that overlap a
touched page: per process in order of appearance, each in address order. The linker places
them first and together (`--symbol-ordering-file`), so the kernel's fault-around (64 KiB a
fault) maps warm code instead of its neighbours. Input after a line `--- cold` is a cold run:
its extra code follows the warm runs', and the markers of runner/warm_text.rs enclose the
warm runs' code.

usage: link_order.py BINARY < perf-script-output > runner/link-order.txt
"""
import bisect
import re
import subprocess
import sys

PAGE = 4096


def text_symbols(binary):
    """(start, end, name) of every sized function symbol, by address."""
    out = subprocess.run(["nm", "--defined-only", "-S", binary], capture_output=True, text=True, check=True).stdout
    symbols = []
    for line in out.splitlines():
        parts = line.split()
        if len(parts) == 4 and parts[2] in "tTwW":
            start, size = int(parts[0], 16), int(parts[1], 16)
            if size:
                symbols.append((start, start + size, parts[3]))
    symbols.sort()
    return symbols


MARKERS = ("sandboxrun_warm_text_begin", "sandboxrun_warm_text_end")


def touched_pages(lines, binary_name):
    """Per pid in order of appearance, the pages (by ELF virtual address) of the executable
    mapping of `binary_name` that faulted. Runs may follow one another: each run's mapping
    events come before its faults."""
    base = text = None
    pages = {}
    mmap = re.compile(r"PERF_RECORD_MMAP2 \d+/\d+: \[(0x[0-9a-f]+)\((0x[0-9a-f]+)\) @ (\S+) .*\]: (\S+) (\S+)$")
    for line in lines:
        m = mmap.search(line)
        if m:
            start, length, offset, prot, path = m.groups()
            if path.endswith("/" + binary_name) or path == binary_name:
                if int(offset, 16) == 0:
                    base = int(start, 16)  # a new run: its own load address
                if "x" in prot:
                    text = (int(start, 16), int(start, 16) + int(length, 16))
            continue
        parts = line.split()
        if len(parts) != 2 or text is None:
            continue
        pid, addr = parts[0], int(parts[1], 16)
        if text[0] <= addr < text[1]:
            pages.setdefault(pid, set()).add((addr - base) // PAGE)
    return pages


def names_of(pages, symbols, starts, written):
    """The symbols overlapping `pages` not yet written, in address order."""
    names = []
    for page in sorted(pages):
        lo, hi = page * PAGE, (page + 1) * PAGE
        i = max(bisect.bisect_right(starts, lo) - 1, 0)
        while i < len(symbols) and symbols[i][0] < hi:
            if symbols[i][1] > lo and symbols[i][2] not in written and symbols[i][2] not in MARKERS:
                written.add(symbols[i][2])
                names.append(symbols[i][2])
            i += 1
    return names


def main():
    binary = sys.argv[1]
    symbols = text_symbols(binary)
    starts = [s[0] for s in symbols]
    lines = sys.stdin.read().split("\n--- cold\n")
    warm, cold = lines[0].splitlines(), (lines[1].splitlines() if len(lines) > 1 else [])
    name = binary.rsplit("/", 1)[-1]
    written = set()
    out = [MARKERS[0]]
    for pid_pages in touched_pages(warm, name).values():
        out += names_of(pid_pages, symbols, starts, written)
    out.append(MARKERS[1])
    for pid_pages in touched_pages(cold, name).values():
        out += names_of(pid_pages, symbols, starts, written)
    sys.stdout.write("".join(n + "\n" for n in out))


if __name__ == "__main__":
    main()
