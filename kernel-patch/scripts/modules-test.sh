#!/bin/sh
# kvmng with KVM=m: ENOSYS before kvm is loaded, the selftest after,
# unload, ENOSYS again.
# Paths: the KVM=m build tree and the built selftest (edit to taste).
M=${KVMNG_M_TREE:-/root/.cache/kvmng/kernel-work-m}
T=${KVMNG_TEST:-/root/.cache/kvmng/kernel-work/tools/testing/selftests/kvm/x86_64/kvmng_test}
python3 $(dirname "$0")/probe.py
$T; echo "MODTEST before load rc=$?"
for m in virt/lib/irqbypass.ko arch/x86/kvm/kvm.ko arch/x86/kvm/kvm-amd.ko; do
	[ -f $M/$m ] && insmod $M/$m && echo "MODTEST loaded $m"
done
python3 $(dirname "$0")/probe.py
$T; echo "MODTEST after load rc=$?"
rmmod kvm_amd && rmmod kvm && echo "MODTEST unloaded"
python3 $(dirname "$0")/probe.py
$T; echo "MODTEST after unload rc=$?"
