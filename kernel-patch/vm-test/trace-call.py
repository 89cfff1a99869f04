# gdb -x trace-call.py (trace.sh): steps one call of a kernel function in
# the guest of the outer QEMU's gdbstub, one instruction at a time, from its
# entry to its return, and counts the instructions per kernel function.
# Environment: TRACE_MAP (System.map of a kernel booted with nokaslr),
# TRACE_FUNC (the function), TRACE_COND (a gdb condition on the
# breakpoint, optional), TRACE_SKIP (calls let by first, to trace a warm
# one), TRACE_PORT, TRACE_OUT (writes OUT, one "address function" line per
# instruction, and OUT.sum, "count function" lines, total first).
import bisect
import collections
import os

import gdb

env = os.environ
text = []
with open(env["TRACE_MAP"]) as f:
    for line in f:
        addr, kind, name = line.split()[:3]
        if kind in "tTwW":
            text.append((int(addr, 16), name))
text.sort()
starts = [a for a, _ in text]


def function_of(pc):
    i = bisect.bisect_right(starts, pc) - 1
    return text[i][1] if i >= 0 else "?"


entry = [a for a, n in text if n == env["TRACE_FUNC"]]
if not entry:
    raise gdb.GdbError("%s is not in %s" % (env["TRACE_FUNC"], env["TRACE_MAP"]))
for cmd in ("maint set target-async off", "set architecture i386:x86-64",
            "set pagination off", "set confirm off",
            "target remote :%s" % env.get("TRACE_PORT", "1234")):
    gdb.execute(cmd, to_string=True)


class EntryBreakpoint(gdb.Breakpoint):
    """The function's entry; stops where TRACE_COND holds, if it is set.

    The condition is evaluated by stop(), at the hit: gdb cannot parse a
    breakpoint condition with a cast, such as '*(unsigned int *)($rdi +
    0x68) == 8', at an address without a symbol table ("No symbol table
    is loaded"). gdb applies the ignore count to the hits stop() accepts,
    as it does for a condition.
    """

    def stop(self):
        cond = env.get("TRACE_COND")
        return not cond or int(gdb.parse_and_eval(cond)) != 0


bp = EntryBreakpoint("*0x%x" % entry[0], type=gdb.BP_HARDWARE_BREAKPOINT)
bp.ignore_count = int(env.get("TRACE_SKIP", "20"))


def trace_one():
    """Steps the next call that hits the breakpoint; its instructions."""
    bp.enabled = True
    gdb.execute("continue", to_string=True)
    bp.enabled = False
    sp = int(gdb.parse_and_eval("$rsp"))
    ret = int(gdb.parse_and_eval("*(unsigned long *)$rsp"))
    # QEMU's single step keeps interrupts and timers off (its default
    # sstep flags), so the trace is the call's own path; a rep-prefixed
    # instruction is stepped once per iteration, as -icount counts it.
    pcs = []
    while True:
        pc = int(gdb.parse_and_eval("$pc"))
        if pc == ret and int(gdb.parse_and_eval("$rsp")) > sp:
            return pcs
        pcs.append(pc)
        if len(pcs) > 1000000:
            raise gdb.GdbError("no return after a million instructions")
        gdb.execute("stepi", to_string=True)


# A call that reschedules (a need_resched set before the step began, met
# at a cond_resched()) carries the scheduler's work: the next one is
# traced instead, at most 5 times, and the log says so.
for attempt in range(5):
    pcs = trace_one()
    names = [function_of(pc) for pc in pcs]
    if "__schedule" not in names:
        break
    print("trace-call: call %d was scheduled out, tracing the next one" % (attempt + 1))
else:
    raise gdb.GdbError("5 calls in a row were scheduled out")
gdb.execute("detach", to_string=True)
out = env["TRACE_OUT"]
with open(out, "w") as f:
    f.writelines("%x %s\n" % pn for pn in zip(pcs, names))
counts = collections.Counter(names)
with open(out + ".sum", "w") as f:
    f.write("%d total\n" % len(pcs))
    f.writelines("%d %s\n" % (n, name) for name, n in counts.most_common())
