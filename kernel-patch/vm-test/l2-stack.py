#!/usr/bin/env python3
"""Read a hung nested guest's (L2's) stack from a dump of L1's memory.

usage: l2-stack.py L1MEM.bin SYSTEM.MAP L2_CR3 L2_RSP

A debugging aid for docs/reliability.md, section 8. With the outer QEMU
started with -gdb and L2 booted with nokaslr, when L2 hangs:
  gdb -batch -ex 'target remote :1234' -ex 'monitor info registers'
gives L2's CR3 and RSP (the CPU is in SVM guest mode), and
  gdb -batch -ex 'target remote :1234' \
      -ex 'monitor pmemsave 0 2147483648 "/tmp/l1mem.bin"'
dumps L1's physical memory (here 2 GiB, from 0).

Finds the VMCB whose save area holds L2_CR3, walks its nested page table
(nCR3) to turn L2 guest-physical addresses into L1 physical ones, walks
L2's own page tables (5 or 4 levels), and prints the L2 stack from RSP:
every word that is a kernel text address (symbolized with SYSTEM.MAP, L2
booted with nokaslr), and every interrupt/exception frame (RIP, CS 0x10,
RFLAGS, RSP, SS 0x18) with the RFLAGS.IF it interrupted.
"""
import bisect, mmap, struct, sys

mem_path, map_path = sys.argv[1], sys.argv[2]
cr3, rsp = int(sys.argv[3], 16), int(sys.argv[4], 16)
f = open(mem_path, 'rb'); M = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
q = lambda pa: struct.unpack_from('<Q', M, pa)[0]

syms = []
for l in open(map_path):
    a, t, n = l.split()[:3]
    if t in 'tTwW':
        syms.append((int(a, 16), n))
syms.sort(); addrs = [a for a, _ in syms]
def sym(a):
    i = bisect.bisect_right(addrs, a) - 1
    return '%s+%#x' % (syms[i][1], a - syms[i][0]) if i >= 0 and a - syms[i][0] < 0x10000 else None
text_lo, text_hi = 0xffffffff81000000, 0xffffffff83000000

PA = 0x000ffffffffff000
def walk(root, va, levels, tr):
    """va -> pa through a 4K/2M/1G x86 page table whose tables are at tr(pa)."""
    t = root & PA
    for lvl in range(levels, 0, -1):
        shift = 12 + 9 * (lvl - 1)
        e = q(tr(t) + ((va >> shift) & 511) * 8)
        if not e & 1:
            return None
        if lvl in (2, 3) and e & 0x80:
            return (e & PA & ~((1 << shift) - 1)) | (va & ((1 << shift) - 1))
        t = e & PA
    return t | (va & 0xfff)

# The VMCB: a page whose save area has L2's CR3, NP enabled.
cands = []
for pa in range(0, len(M), 4096):
    if q(pa + 0x550) == cr3 and q(pa + 0x90) & 1:
        cands.append(pa)
print('VMCB candidates:', [hex(c) for c in cands])
for v in cands:
    ncr3 = q(v + 0xb0)
    rfl, rip, vrsp = q(v + 0x570), q(v + 0x578), q(v + 0x5d8)
    print('VMCB %#x: nCR3 %#x int_ctl %#x int_state %#x exit_code %#x exit_int_info %#x event_inj %#x '
          'save: rflags %#x rip %#x (%s) rsp %#x' % (v, ncr3, q(v + 0x60), q(v + 0x68), q(v + 0x70),
          q(v + 0x88), q(v + 0xa8), rfl, rip, sym(rip), vrsp))
    for nl in (5, 4):
        gpa2pa = lambda g, nl=nl: walk(ncr3, g, nl, lambda x: x)
        def tr(g):
            p = gpa2pa(g)
            if p is None:
                raise KeyError(g)
            return p
        try:
            for l2l in (5, 4):
                pa = walk(cr3, rsp, l2l, tr)
                if pa is None:
                    continue
                print('NPT %d levels, L2 paging %d levels: rsp %#x -> L1 pa %#x' % (nl, l2l, rsp, gpa2pa(pa)))
                def rd(va):
                    g = walk(cr3, va, l2l, tr)
                    return None if g is None else q(gpa2pa(g))
                words = [rd(rsp + 8 * i) for i in range(0, 2048)]
                for i, w in enumerate(words):
                    if w is None:
                        print('  [%#x] unmapped: end' % (rsp + 8 * i)); break
                    s = sym(w) if text_lo <= w < text_hi else None
                    if s:
                        frame = ''
                        if i + 4 < len(words) and words[i + 1] == 0x10 and words[i + 4] == 0x18:
                            frame = '   <- FRAME rflags %#x (IF=%d) rsp %#x' % (words[i + 2], (words[i + 2] >> 9) & 1, words[i + 3])
                        print('  [%#x] %#x %s%s' % (rsp + 8 * i, w, s, frame))
                raise SystemExit(0)
        except KeyError as e:
            print('NPT %d levels: unmapped L2 gpa %#x' % (nl, e.args[0]))
