/*
 * A library whose constructor calls ioctl() before the shim's constructor
 * has run: a terminal ioctl on fd 0 (the fast path) and KVM ioctls (which
 * set the shim up early). It prints what it got to stderr.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <stdio.h>
#include <sys/ioctl.h>
#include <termios.h>
#include <unistd.h>

__attribute__((constructor)) static void early(void)
{
	struct termios t;
	int r = ioctl(0, TCGETS, &t);
	fprintf(stderr, "ctor TCGETS %s\n", r == 0 ? "ok" : (errno == ENOTTY ? "ENOTTY" : "other error"));
	int kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	fprintf(stderr, "ctor KVM_GET_API_VERSION %d\n", ioctl(kvm, KVM_GET_API_VERSION, 0));
	int vm = ioctl(kvm, KVM_CREATE_VM, 0);
	fprintf(stderr, "ctor KVM_CREATE_VM %s\n", vm >= 0 ? "ok" : "failed");
	fprintf(stderr, "ctor KVM_CHECK_EXTENSION %d\n", ioctl(vm, KVM_CHECK_EXTENSION, KVM_CAP_USER_MEMORY));
	close(vm);
	close(kvm);
}
