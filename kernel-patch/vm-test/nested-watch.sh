#!/bin/bash
# nested-watch.sh LOG MONITOR OUT [SILENCE]: what a nested QEMU and L1's
# KVM are doing when the nested guest's console goes quiet (guest.sh,
# qemu_nested; docs/kernel.md, Gaps: the nested Linux that stalls for
# minutes or prints nothing in 600 s).
#
# Polls LOG (the nested console) every 5 s. Once it has not grown for
# SILENCE seconds (default 60), writes OUT, once:
#   1. the nested QEMU's view through its HMP monitor (the unix socket
#      MONITOR): every vCPU's registers, the local APICs, the PIC and
#      I/O APIC, the interrupt counts;
#   2. L1's side for 5 s: KVM's interrupt injections, IRQ-line changes,
#      APIC deliveries and exits, in a tracing instance of its own (the
#      selftests' ring is left alone), and /proc/interrupts before and
#      after;
#   3. the registers once more, so two samples 5 s apart tell a vCPU that
#      spins from one that moves.
# Run it in the background next to the QEMU and kill it when QEMU is gone
# (a snapshot cut short by that leaves its tracing instance behind: the
# next snapshot removes it first).
set -u
log=$1 mon=$2 out=$3 silence=${4:-60}
TRI=/sys/kernel/debug/tracing/instances/nested-watch
EVENTS="kvm_inj_virq kvm_set_irq kvm_pic_set_irq kvm_ioapic_set_irq kvm_apic_accept_irq kvm_exit"
# hmp (staged beside this script, as in the repository)
# shellcheck source=kernel-patch/vm-test/lib.sh
. "$(dirname "$0")/lib.sh"

snapshot() {
	echo "=== $(date +%T): the nested console silent for ${silence} s or more; its last lines:"
	tail -5 "$log" | cat -v
	echo "=== the nested QEMU (monitor)"
	hmp "$mon" "info registers -a" "info lapic" "info pic" "info irq"
	echo "=== L1: /proc/interrupts"
	cat /proc/interrupts
	rmdir "$TRI" 2> /dev/null
	if mkdir "$TRI" 2> /dev/null; then
		echo 1024 > "$TRI/buffer_size_kb"
		for e in $EVENTS; do
			[ -e "$TRI/events/kvm/$e/enable" ] && echo 1 > "$TRI/events/kvm/$e/enable"
		done
		sleep 5
		echo 0 > "$TRI/tracing_on"
		echo "=== L1: KVM's injections, IRQ lines and exits for 5 s ($EVENTS), the last 2000 events"
		grep -v '^#' "$TRI/trace" | tail -2000
		echo "=== L1: events by kind"
		grep -v '^#' "$TRI/trace" | sed -n 's/.* \(kvm_[a-z_]*\):.*/\1/p' | sort | uniq -c
		rmdir "$TRI"
	else
		echo "=== L1: no tracing instance ($TRI): KVM not traced"
		sleep 5
	fi
	echo "=== L1: /proc/interrupts, 5 s later"
	cat /proc/interrupts
	echo "=== the nested QEMU's registers, 5 s after the first sample"
	hmp "$mon" "info registers -a"
}

last=-1 quiet=0
while sleep 5; do
	size=$(stat -c %s "$log" 2> /dev/null || echo 0)
	if [ "$size" != "$last" ]; then
		last=$size quiet=0
		continue
	fi
	quiet=$((quiet + 5))
	if [ "$quiet" -ge "$silence" ]; then
		snapshot > "$out" 2>&1
		exit 0
	fi
done
