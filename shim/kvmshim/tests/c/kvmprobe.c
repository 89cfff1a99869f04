/*
 * kvmprobe: a legacy KVM program, as QEMU and the selftests are: it calls
 * glibc's ioctl(). The shim's tests run each scenario natively and with
 * libkvmshim.so preloaded and compare the output, which is deterministic.
 *
 *   kvmprobe guest FILE real|long    run a guest to HLT, then state ioctls
 *   kvmprobe threads N               vCPUs made and set up on the main
 *                                    thread, each run on its own thread
 *   kvmprobe fork FILE               fork after a run; the child's ioctls
 *                                    on inherited fds, then its own VM
 *   kvmprobe exec FILE PROBE [off]   run a guest, then exec PROBE guest
 *                                    (with KVMNG_SHIM=off if "off")
 *   kvmprobe reuse FILE              fds closed and reused, dup'd fds,
 *                                    a VM after the first one is gone
 *   kvmprobe signal                  signals interrupting KVM_RUN,
 *                                    immediate_exit
 *   kvmprobe efault                  bad pointers and bad counts
 *   kvmprobe twovms FILE             a second live VM, both run
 *   kvmprobe loop N                  N cheap KVM ioctls (for timing)
 *   kvmprobe nokvm                   ordinary ioctls and fd calls only
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

/* Debian 12's headers (Linux 6.1) predate these. */
#ifndef KVM_SET_USER_MEMORY_REGION2
struct kvm_userspace_memory_region2 {
	__u32 slot;
	__u32 flags;
	__u64 guest_phys_addr;
	__u64 memory_size;
	__u64 userspace_addr;
	__u64 guest_memfd_offset;
	__u32 guest_memfd;
	__u32 pad1;
	__u64 pad2[14];
};
#define KVM_SET_USER_MEMORY_REGION2 _IOW(KVMIO, 0x49, struct kvm_userspace_memory_region2)
#endif

#define MEM_SIZE 0x10000
#define LOAD_ADDR 0x1000
#define CONSOLE_PORT 0xE9
#define REPORT_PORT 0x10
#define MMIO_ANSWER 0xCAFEBABEull

static const char *ename(int e)
{
	switch (e) {
	case EPERM: return "EPERM"; case ENOENT: return "ENOENT";
	case EINTR: return "EINTR"; case EIO: return "EIO";
	case ENXIO: return "ENXIO"; case E2BIG: return "E2BIG";
	case EBADF: return "EBADF"; case EAGAIN: return "EAGAIN";
	case ENOMEM: return "ENOMEM"; case EACCES: return "EACCES";
	case EFAULT: return "EFAULT"; case EBUSY: return "EBUSY";
	case EEXIST: return "EEXIST"; case ENODEV: return "ENODEV";
	case EINVAL: return "EINVAL"; case ENOTTY: return "ENOTTY";
	case ENOSYS: return "ENOSYS"; case EOPNOTSUPP: return "EOPNOTSUPP";
	case ESRCH: return "ESRCH"; case EUNATCH: return "EUNATCH";
	default: return "E?";
	}
}

/* Prints "what = value" or "what = -1 ERRNO". */
static long show(const char *what, long r)
{
	if (r < 0)
		printf("%s = -1 %s\n", what, ename(errno));
	else
		printf("%s = %ld\n", what, r);
	return r;
}

static void die(const char *what)
{
	printf("FATAL %s: %s\n", what, ename(errno));
	fflush(stdout);
	exit(2);
}

static size_t read_file(const char *path, uint8_t *buf, size_t max)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		die("open guest file");
	size_t n = fread(buf, 1, max, f);
	fclose(f);
	return n;
}

struct vm {
	int kvm, fd;
	uint8_t *mem;
};

struct vcpu {
	int fd;
	struct kvm_run *run;
};

static int open_kvm(void)
{
	int kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	if (kvm < 0)
		die("open /dev/kvm");
	return kvm;
}

static void vm_create(struct vm *vm, int kvm, const uint8_t *code, size_t len, int long_mode)
{
	vm->kvm = kvm;
	vm->fd = ioctl(kvm, KVM_CREATE_VM, 0);
	if (vm->fd < 0)
		die("KVM_CREATE_VM");
	vm->mem = mmap(NULL, MEM_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (vm->mem == MAP_FAILED)
		die("mmap guest memory");
	memcpy(vm->mem + LOAD_ADDR, code, len);
	if (long_mode) {
		uint64_t *pml4 = (uint64_t *)(vm->mem + 0x9000);
		uint64_t *pdpt = (uint64_t *)(vm->mem + 0xA000);
		uint64_t *pd = (uint64_t *)(vm->mem + 0xB000);
		uint64_t *gdt = (uint64_t *)(vm->mem + 0xC000);
		pml4[0] = 0xA000 | 3;
		pdpt[0] = 0xB000 | 3;
		for (uint64_t i = 0; i < 512; i++)
			pd[i] = (i << 21) | 0x83;
		gdt[0] = 0;
		gdt[1] = 0x00AF9B000000FFFFull;
		gdt[2] = 0x00CF93000000FFFFull;
	}
	struct kvm_userspace_memory_region region = {
		.slot = 0, .guest_phys_addr = 0, .memory_size = MEM_SIZE,
		.userspace_addr = (uint64_t)vm->mem,
	};
	if (ioctl(vm->fd, KVM_SET_USER_MEMORY_REGION, &region) < 0)
		die("KVM_SET_USER_MEMORY_REGION");
}

static void vcpu_create(struct vcpu *v, struct vm *vm, int id)
{
	v->fd = ioctl(vm->fd, KVM_CREATE_VCPU, id);
	if (v->fd < 0)
		die("KVM_CREATE_VCPU");
	int size = ioctl(vm->kvm, KVM_GET_VCPU_MMAP_SIZE, 0);
	if (size < 0)
		die("KVM_GET_VCPU_MMAP_SIZE");
	v->run = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, v->fd, 0);
	if (v->run == MAP_FAILED)
		die("mmap kvm_run");
}

static void seg(struct kvm_segment *s, uint16_t sel, uint8_t type, int lng)
{
	memset(s, 0, sizeof(*s));
	s->selector = sel;
	s->type = type;
	s->present = 1;
	s->s = 1;
	if (lng < 0) { /* real mode */
		s->limit = 0xFFFF;
		return;
	}
	s->limit = 0xFFFFFFFF;
	s->g = 1;
	s->l = lng;
	s->db = !lng;
}

static void vcpu_setup(struct vcpu *v, int long_mode)
{
	struct kvm_sregs sregs;
	if (ioctl(v->fd, KVM_GET_SREGS, &sregs) < 0)
		die("KVM_GET_SREGS");
	if (long_mode) {
		sregs.cr0 = 1 | 2 | 0x10 | 0x20 | (1u << 16) | (1u << 31);
		sregs.cr3 = 0x9000;
		sregs.cr4 |= 0x20;
		sregs.efer |= 0x500;
		seg(&sregs.cs, 8, 0xB, 1);
		seg(&sregs.ds, 0x10, 3, 0);
		sregs.es = sregs.fs = sregs.gs = sregs.ss = sregs.ds;
		sregs.gdt.base = 0xC000;
		sregs.gdt.limit = 23;
	} else {
		seg(&sregs.cs, 0, 0xB, -1);
		seg(&sregs.ds, 0, 3, -1);
		sregs.es = sregs.fs = sregs.gs = sregs.ss = sregs.ds;
		sregs.cr0 &= ~(1ull | (1ull << 31));
		sregs.cr4 &= ~0x20ull;
		sregs.efer &= ~0x500ull;
		sregs.idt.base = 0;
		sregs.idt.limit = 0x3FF;
	}
	if (ioctl(v->fd, KVM_SET_SREGS, &sregs) < 0)
		die("KVM_SET_SREGS");
	struct kvm_regs regs = { .rip = LOAD_ADDR, .rsp = 0x1000, .rflags = 2 };
	if (ioctl(v->fd, KVM_SET_REGS, &regs) < 0)
		die("KVM_SET_REGS");
}

/* Runs to HLT, appending what the guest did to `out`. Returns exits. */
static int run_to_halt(struct vcpu *v, char *out, size_t outlen)
{
	size_t used = strlen(out);
#define OUT(...) used += snprintf(out + used, used < outlen ? outlen - used : 0, __VA_ARGS__)
	for (int exits = 1; exits < 10000; exits++) {
		if (ioctl(v->fd, KVM_RUN, 0) < 0) {
			OUT("KVM_RUN = -1 %s\n", ename(errno));
			return exits;
		}
		struct kvm_run *r = v->run;
		switch (r->exit_reason) {
		case KVM_EXIT_HLT:
			OUT("hlt after %d exits\n", exits);
			return exits;
		case KVM_EXIT_IO: {
			uint8_t *data = (uint8_t *)r + r->io.data_offset;
			if (r->io.direction == KVM_EXIT_IO_OUT && r->io.port == CONSOLE_PORT) {
				OUT("console '%c'\n", data[0] == '\n' ? '$' : data[0]);
			} else if (r->io.direction == KVM_EXIT_IO_OUT) {
				uint32_t val = 0;
				memcpy(&val, data, r->io.size);
				OUT("out port %#x size %d value %#x\n", r->io.port, r->io.size, val);
			} else {
				memset(data, 0x5a, r->io.size);
				OUT("in port %#x\n", r->io.port);
			}
			break;
		}
		case KVM_EXIT_MMIO:
			if (r->mmio.is_write) {
				uint64_t val = 0;
				memcpy(&val, r->mmio.data, r->mmio.len);
				OUT("mmio write %#llx len %u value %#llx\n",
				    (unsigned long long)r->mmio.phys_addr, r->mmio.len,
				    (unsigned long long)val);
			} else {
				uint64_t answer = MMIO_ANSWER;
				memcpy(r->mmio.data, &answer, r->mmio.len);
				OUT("mmio read %#llx len %u\n", (unsigned long long)r->mmio.phys_addr,
				    r->mmio.len);
			}
			break;
		default:
			OUT("exit reason %u\n", r->exit_reason);
			return exits;
		}
	}
	OUT("no hlt\n");
	return 10000;
}

static void state_ioctls(struct vm *vm, struct vcpu *v)
{
	struct kvm_regs regs;
	if (show("KVM_GET_REGS", ioctl(v->fd, KVM_GET_REGS, &regs)) == 0)
		printf("rip %#llx rax %#llx\n", (unsigned long long)regs.rip,
		       (unsigned long long)regs.rax);
	struct kvm_sregs sregs;
	if (show("KVM_GET_SREGS", ioctl(v->fd, KVM_GET_SREGS, &sregs)) == 0)
		printf("cr0 %#llx efer %#llx\n", (unsigned long long)sregs.cr0,
		       (unsigned long long)sregs.efer);
	show("KVM_SET_SREGS", ioctl(v->fd, KVM_SET_SREGS, &sregs));
	struct { struct kvm_msrs h; struct kvm_msr_entry e[2]; } msrs = {
		.h = { .nmsrs = 2 },
		.e = { { .index = 0x174 }, { .index = 0x175 } },
	};
	show("KVM_GET_MSRS", ioctl(v->fd, KVM_GET_MSRS, &msrs));
	msrs.e[0].data = 0x10;
	show("KVM_SET_MSRS", ioctl(v->fd, KVM_SET_MSRS, &msrs));
	msrs.e[0].data = 0;
	show("KVM_GET_MSRS again", ioctl(v->fd, KVM_GET_MSRS, &msrs));
	printf("msr 0x174 = %#llx\n", (unsigned long long)msrs.e[0].data);
	struct kvm_fpu fpu;
	show("KVM_GET_FPU", ioctl(v->fd, KVM_GET_FPU, &fpu));
	struct kvm_mp_state mp;
	if (show("KVM_GET_MP_STATE", ioctl(v->fd, KVM_GET_MP_STATE, &mp)) == 0)
		printf("mp_state %u\n", mp.mp_state);
	struct kvm_vcpu_events ev;
	show("KVM_GET_VCPU_EVENTS", ioctl(v->fd, KVM_GET_VCPU_EVENTS, &ev));
	struct kvm_debugregs dr;
	show("KVM_GET_DEBUGREGS", ioctl(v->fd, KVM_GET_DEBUGREGS, &dr));
	static struct kvm_xsave xs;
	show("KVM_GET_XSAVE", ioctl(v->fd, KVM_GET_XSAVE, &xs));
	int xsave2 = ioctl(vm->fd, KVM_CHECK_EXTENSION, KVM_CAP_XSAVE2);
	printf("xsave2 size known = %d\n", xsave2 >= 4096);
	if (xsave2 >= 4096) {
		void *buf = calloc(1, xsave2);
		show("KVM_GET_XSAVE2", ioctl(v->fd, KVM_GET_XSAVE2, buf));
		show("KVM_SET_XSAVE", ioctl(v->fd, KVM_SET_XSAVE, buf));
		free(buf);
	}
	struct kvm_xcrs xcrs;
	show("KVM_GET_XCRS", ioctl(v->fd, KVM_GET_XCRS, &xcrs));
	struct kvm_lapic_state lapic;
	show("KVM_GET_LAPIC (no irqchip)", ioctl(v->fd, KVM_GET_LAPIC, &lapic));
	struct { struct kvm_cpuid2 h; struct kvm_cpuid_entry2 e[256]; } cpuid = { .h = { .nent = 256 } };
	long n = show("KVM_GET_SUPPORTED_CPUID", ioctl(vm->kvm, KVM_GET_SUPPORTED_CPUID, &cpuid));
	if (n == 0) {
		show("KVM_SET_CPUID2", ioctl(v->fd, KVM_SET_CPUID2, &cpuid));
		uint32_t want = cpuid.h.nent;
		cpuid.h.nent = 1;
		show("KVM_GET_CPUID2 (too small)", ioctl(v->fd, KVM_GET_CPUID2, &cpuid));
		cpuid.h.nent = 256;
		show("KVM_GET_CPUID2", ioctl(v->fd, KVM_GET_CPUID2, &cpuid));
		printf("cpuid entries back = %d\n", cpuid.h.nent == want);
	}
	show("KVM_NMI", ioctl(v->fd, KVM_NMI, 0));
	struct kvm_interrupt intr = { .irq = 0x20 };
	show("KVM_INTERRUPT", ioctl(v->fd, KVM_INTERRUPT, &intr));
	struct kvm_irq_level line = { .irq = 4, .level = 1 };
	show("KVM_IRQ_LINE (no irqchip)", ioctl(vm->fd, KVM_IRQ_LINE, &line));
	show("KVM_CHECK_EXTENSION vm", ioctl(vm->fd, KVM_CHECK_EXTENSION, KVM_CAP_USER_MEMORY));
	show("KVM_GET_API_VERSION", ioctl(vm->kvm, KVM_GET_API_VERSION, 0));
	show("KVM_GET_TSC_KHZ > 0", ioctl(v->fd, KVM_GET_TSC_KHZ, 0) > 0);
	struct kvm_clock_data clock = { 0 };
	show("KVM_GET_CLOCK", ioctl(vm->fd, KVM_GET_CLOCK, &clock));
	struct kvm_userspace_memory_region2 r2 = {
		.slot = 1, .guest_phys_addr = 0x100000, .memory_size = 0x10000,
		.userspace_addr = (uint64_t)mmap(NULL, 0x10000, PROT_READ | PROT_WRITE,
						 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0),
	};
	show("KVM_SET_USER_MEMORY_REGION2", ioctl(vm->fd, KVM_SET_USER_MEMORY_REGION2, &r2));
	r2.memory_size = 0;
	show("KVM_SET_USER_MEMORY_REGION2 delete", ioctl(vm->fd, KVM_SET_USER_MEMORY_REGION2, &r2));
}

static int cmd_guest(const char *file, int long_mode)
{
	static uint8_t code[0x7000];
	size_t len = read_file(file, code, sizeof(code));
	int kvm = open_kvm();
	show("KVM_GET_API_VERSION", ioctl(kvm, KVM_GET_API_VERSION, 0));
	show("KVM_CHECK_EXTENSION USER_MEMORY", ioctl(kvm, KVM_CHECK_EXTENSION, KVM_CAP_USER_MEMORY));
	struct vm vm;
	vm_create(&vm, kvm, code, len, long_mode);
	struct vcpu v;
	vcpu_create(&v, &vm, 0);
	vcpu_setup(&v, long_mode);
	char out[8192] = "";
	run_to_halt(&v, out, sizeof(out));
	fputs(out, stdout);
	state_ioctls(&vm, &v);
	return 0;
}

/* ---- threads ---- */

struct worker {
	pthread_t thread;
	struct vcpu v;
	char out[4096];
};

static void *worker_main(void *p)
{
	struct worker *w = p;
	run_to_halt(&w->v, w->out, sizeof(w->out));
	struct kvm_regs regs;
	if (ioctl(w->v.fd, KVM_GET_REGS, &regs) == 0) {
		size_t used = strlen(w->out);
		snprintf(w->out + used, sizeof(w->out) - used, "rip %#llx\n",
			 (unsigned long long)regs.rip);
	}
	return NULL;
}

static int cmd_threads(const char *file, int n)
{
	static uint8_t code[0x7000];
	size_t len = read_file(file, code, sizeof(code));
	struct vm vm;
	vm_create(&vm, open_kvm(), code, len, 0);
	struct worker *w = calloc(n, sizeof(*w));
	/* The selftests' way: the main thread makes and sets up every vCPU. */
	for (int i = 0; i < n; i++) {
		vcpu_create(&w[i].v, &vm, i);
		vcpu_setup(&w[i].v, 0);
	}
	for (int i = 0; i < n; i++)
		pthread_create(&w[i].thread, NULL, worker_main, &w[i]);
	for (int i = 0; i < n; i++) {
		pthread_join(w[i].thread, NULL);
		printf("vcpu %d:\n%s", i, w[i].out);
	}
	/* After the threads are gone, the main thread runs vCPU 0 again. */
	struct kvm_regs regs = { .rip = LOAD_ADDR, .rsp = 0x1000, .rflags = 2 };
	show("main KVM_SET_REGS vcpu 0", ioctl(w[0].v.fd, KVM_SET_REGS, &regs));
	char out[4096] = "";
	run_to_halt(&w[0].v, out, sizeof(out));
	printf("main runs vcpu 0:\n%s", out);
	return 0;
}

/* ---- fork ---- */

static int cmd_fork(const char *file)
{
	static uint8_t code[0x7000];
	size_t len = read_file(file, code, sizeof(code));
	int kvm = open_kvm();
	struct vm vm;
	vm_create(&vm, kvm, code, len, 0);
	struct vcpu v;
	vcpu_create(&v, &vm, 0);
	vcpu_setup(&v, 0);
	char out[4096] = "";
	run_to_halt(&v, out, sizeof(out));
	printf("parent:\n%s", out);
	fflush(stdout);
	pid_t pid = fork();
	if (pid == 0) {
		struct kvm_regs regs;
		show("child KVM_RUN inherited", ioctl(v.fd, KVM_RUN, 0));
		show("child KVM_GET_REGS inherited", ioctl(v.fd, KVM_GET_REGS, &regs));
		show("child KVM_CHECK_EXTENSION inherited vm",
		     ioctl(vm.fd, KVM_CHECK_EXTENSION, KVM_CAP_USER_MEMORY));
		show("child KVM_CREATE_VCPU inherited vm", ioctl(vm.fd, KVM_CREATE_VCPU, 1));
		show("child KVM_GET_API_VERSION", ioctl(kvm, KVM_GET_API_VERSION, 0));
		struct vm mine;
		vm_create(&mine, kvm, code, len, 0);
		struct vcpu cv;
		vcpu_create(&cv, &mine, 0);
		vcpu_setup(&cv, 0);
		char cout[4096] = "";
		run_to_halt(&cv, cout, sizeof(cout));
		printf("child's own VM:\n%s", cout);
		fflush(stdout);
		_exit(0);
	}
	int status;
	waitpid(pid, &status, 0);
	printf("child status %d\n", WEXITSTATUS(status));
	struct kvm_regs regs;
	if (show("parent KVM_GET_REGS", ioctl(v.fd, KVM_GET_REGS, &regs)) == 0)
		printf("parent rip %#llx\n", (unsigned long long)regs.rip);
	return 0;
}

/* ---- exec ---- */

static int cmd_exec(const char *file, const char *probe, int off)
{
	static uint8_t code[0x7000];
	size_t len = read_file(file, code, sizeof(code));
	struct vm vm;
	vm_create(&vm, open_kvm(), code, len, 0);
	struct vcpu v;
	vcpu_create(&v, &vm, 0);
	vcpu_setup(&v, 0);
	char out[4096] = "";
	run_to_halt(&v, out, sizeof(out));
	printf("before exec:\n%s", out);
	fflush(stdout);
	if (off)
		setenv("KVMNG_SHIM", "off", 1);
	char *argv[] = { (char *)probe, "guest", (char *)file, "real", NULL };
	extern char **environ;
	execve(probe, argv, environ);
	die("execve");
	return 1;
}

/* ---- fd reuse, dup ---- */

static int cmd_reuse(const char *file)
{
	static uint8_t code[0x7000];
	size_t len = read_file(file, code, sizeof(code));
	int kvm = open_kvm();
	struct vm vm;
	vm_create(&vm, kvm, code, len, 0);
	struct vcpu v;
	vcpu_create(&v, &vm, 0);
	vcpu_setup(&v, 0);
	/* Run through a dup of the vCPU fd, the original closed. */
	int copy = dup(v.fd);
	close(v.fd);
	int v_num = v.fd;
	v.fd = copy;
	char out[4096] = "";
	run_to_halt(&v, out, sizeof(out));
	printf("through dup:\n%s", out);
	/* dup2 onto a fixed number, and F_DUPFD_CLOEXEC. */
	int high = dup2(copy, 100);
	struct kvm_regs regs;
	show("KVM_GET_REGS via dup2", ioctl(high, KVM_GET_REGS, &regs));
	int cl = fcntl(high, F_DUPFD_CLOEXEC, 200);
	show("KVM_GET_REGS via F_DUPFD_CLOEXEC", ioctl(cl, KVM_GET_REGS, &regs));
	int vmcopy = fcntl(vm.fd, F_DUPFD, 0);
	show("KVM_CHECK_EXTENSION via vm dup", ioctl(vmcopy, KVM_CHECK_EXTENSION, KVM_CAP_USER_MEMORY));
	/* Close everything of the first VM; its fd numbers get new files. */
	close(copy);
	close(high);
	close(cl);
	close(vmcopy);
	int vm_num = vm.fd;
	close(vm.fd);
	munmap(v.run, ioctl(kvm, KVM_GET_VCPU_MMAP_SIZE, 0));
	int a = open("/dev/null", O_RDWR);
	int b = open("/dev/null", O_RDWR);
	printf("reused numbers: %d %d\n", a == v_num || a == vm_num, b == v_num || b == vm_num);
	show("KVM_RUN on reused fd", ioctl(a, KVM_RUN, 0));
	show("KVM_CHECK_EXTENSION on reused fd", ioctl(b, KVM_CHECK_EXTENSION, 0));
	close(a);
	close(b);
	/* A new VM after the first one is gone. */
	struct vm vm2;
	vm_create(&vm2, kvm, code, len, 0);
	struct vcpu v2;
	vcpu_create(&v2, &vm2, 0);
	vcpu_setup(&v2, 0);
	char out2[4096] = "";
	run_to_halt(&v2, out2, sizeof(out2));
	printf("second VM:\n%s", out2);
	return 0;
}

/* ---- signals ---- */

static volatile sig_atomic_t alarms;
static void on_alarm(int sig) { (void)sig; alarms++; }

static int cmd_signal(void)
{
	static const uint8_t spin[] = { 0xFA, 0xEB, 0xFE }; /* cli; jmp $ */
	struct vm vm;
	vm_create(&vm, open_kvm(), spin, sizeof(spin), 0);
	struct vcpu v;
	vcpu_create(&v, &vm, 0);
	vcpu_setup(&v, 0);
	struct sigaction sa = { .sa_handler = on_alarm };
	sigemptyset(&sa.sa_mask);
	sigaction(SIGALRM, &sa, NULL);
	for (int i = 0; i < 3; i++) {
		struct itimerval it = { .it_value = { .tv_usec = 30000 } };
		setitimer(ITIMER_REAL, &it, NULL);
		long r = ioctl(v.fd, KVM_RUN, 0);
		int e = errno;
		printf("run %d: %s exit_reason %u alarm seen %d\n", i,
		       r < 0 ? ename(e) : "ok", v.run->exit_reason, alarms > 0);
		alarms = 0;
	}
	v.run->immediate_exit = 1;
	show("KVM_RUN with immediate_exit", ioctl(v.fd, KVM_RUN, 0));
	v.run->immediate_exit = 0;
	return 0;
}

/* ---- bad pointers ---- */

static int cmd_efault(void)
{
	void *bad = (void *)8;
	int kvm = open_kvm();
	show("KVM_GET_SUPPORTED_CPUID bad", ioctl(kvm, KVM_GET_SUPPORTED_CPUID, bad));
	int vm = ioctl(kvm, KVM_CREATE_VM, 0);
	show("KVM_CREATE_VM", vm >= 0 ? 0 : -1);
	show("KVM_GET_SUPPORTED_CPUID bad (VM bound)", ioctl(kvm, KVM_GET_SUPPORTED_CPUID, bad));
	show("KVM_SET_USER_MEMORY_REGION bad", ioctl(vm, KVM_SET_USER_MEMORY_REGION, bad));
	show("KVM_SET_USER_MEMORY_REGION2 bad", ioctl(vm, KVM_SET_USER_MEMORY_REGION2, bad));
	struct kvm_userspace_memory_region v1 = { .slot = 0, .flags = 1u << 2, .memory_size = 0x1000 };
	show("KVM_SET_USER_MEMORY_REGION guest_memfd flag", ioctl(vm, KVM_SET_USER_MEMORY_REGION, &v1));
	show("KVM_IRQ_LINE bad", ioctl(vm, KVM_IRQ_LINE, bad));
	show("KVM_GET_CLOCK bad", ioctl(vm, KVM_GET_CLOCK, bad));
	show("KVM_CREATE_VCPU id 100000", ioctl(vm, KVM_CREATE_VCPU, 100000));
	int vcpu = ioctl(vm, KVM_CREATE_VCPU, 0);
	show("KVM_CREATE_VCPU", vcpu >= 0 ? 0 : -1);
	show("KVM_CREATE_VCPU same id", ioctl(vm, KVM_CREATE_VCPU, 0));
	/* A run that returns at once: through the shim, it binds this thread
	 * to the vCPU, so the calls below are translated. */
	struct kvm_run *run = mmap(NULL, ioctl(kvm, KVM_GET_VCPU_MMAP_SIZE, 0),
				   PROT_READ | PROT_WRITE, MAP_SHARED, vcpu, 0);
	run->immediate_exit = 1;
	show("KVM_RUN with immediate_exit", ioctl(vcpu, KVM_RUN, 0));
	run->immediate_exit = 0;
	/* MSRs answered on the bound vCPU, and a SET on a vCPU this thread
	 * does not hold (the kernel's), which must not reach the bound one. */
	struct { struct kvm_msrs h; struct kvm_msr_entry e[1]; } m1 = {
		.h = { .nmsrs = 1 }, .e = { { .index = 0x174, .data = 0x10 } } };
	show("KVM_SET_MSRS 0x174=0x10", ioctl(vcpu, KVM_SET_MSRS, &m1));
	int other = ioctl(vm, KVM_CREATE_VCPU, 1);
	m1.e[0].data = 0x20;
	show("KVM_SET_MSRS 0x174=0x20 other vCPU", ioctl(other, KVM_SET_MSRS, &m1));
	m1.e[0].data = 0x99;
	show("KVM_GET_MSRS 0x174", ioctl(vcpu, KVM_GET_MSRS, &m1));
	printf("msr 0x174 = %#llx\n", (unsigned long long)m1.e[0].data);
	show("KVM_GET_REGS bad", ioctl(vcpu, KVM_GET_REGS, bad));
	show("KVM_SET_REGS bad", ioctl(vcpu, KVM_SET_REGS, bad));
	show("KVM_GET_SREGS bad", ioctl(vcpu, KVM_GET_SREGS, bad));
	show("KVM_GET_MSRS bad header", ioctl(vcpu, KVM_GET_MSRS, bad));
	struct kvm_msrs many = { .nmsrs = 1000 };
	show("KVM_GET_MSRS nmsrs 1000", ioctl(vcpu, KVM_GET_MSRS, &many));
	struct kvm_msrs huge = { .nmsrs = 0xFFFFFFFF };
	show("KVM_SET_MSRS nmsrs 2^32-1", ioctl(vcpu, KVM_SET_MSRS, &huge));
	/* The largest count whose buffer a 32-bit size can hold, and the
	 * smallest it cannot: E2BIG from the ioctl either way. */
	struct kvm_msrs edge = { .nmsrs = (1u << 28) - 1 };
	show("KVM_GET_MSRS nmsrs 2^28-1", ioctl(vcpu, KVM_GET_MSRS, &edge));
	edge.nmsrs = 1u << 28;
	show("KVM_GET_MSRS nmsrs 2^28", ioctl(vcpu, KVM_GET_MSRS, &edge));
	struct kvm_msrs short_buf = { .nmsrs = 4 }; /* entries run past the struct */
	(void)short_buf;
	struct kvm_cpuid2 c = { .nent = 0xFFFFFFFF };
	show("KVM_SET_CPUID2 nent 2^32-1", ioctl(vcpu, KVM_SET_CPUID2, &c));
	show("KVM_SET_CPUID2 bad", ioctl(vcpu, KVM_SET_CPUID2, bad));
	show("KVM_GET_VCPU_EVENTS bad", ioctl(vcpu, KVM_GET_VCPU_EVENTS, bad));
	show("KVM_GET_XSAVE bad", ioctl(vcpu, KVM_GET_XSAVE, bad));
	show("KVM_GET_MP_STATE bad", ioctl(vcpu, KVM_GET_MP_STATE, bad));
	show("KVM_INTERRUPT bad", ioctl(vcpu, KVM_INTERRUPT, bad));
	show("KVM_SET_SIGNAL_MASK bad", ioctl(vcpu, KVM_SET_SIGNAL_MASK, bad));
	show("KVM_RUN on the VM fd", ioctl(vm, KVM_RUN, 0));
	show("KVM_CREATE_VCPU on the vCPU fd", ioctl(vcpu, KVM_CREATE_VCPU, 1));
	show("unknown KVMIO on the vCPU fd", ioctl(vcpu, _IO(KVMIO, 0xff), 0));
	show("KVM_RUN on a closed fd", ioctl(999, KVM_RUN, 0));
	show("KVM_RUN on stdin-like pipe", ({ int p[2]; pipe(p); ioctl(p[0], KVM_RUN, 0); }));
	int ro = open("/dev/kvm", O_RDONLY);
	show("KVM_GET_API_VERSION read-only /dev/kvm", ioctl(ro, KVM_GET_API_VERSION, 0));
	show("FIONREAD bad", ioctl(0, FIONREAD, bad));
	return 0;
}

/* ---- two VMs ---- */

static int cmd_twovms(const char *file)
{
	static uint8_t code[0x7000];
	size_t len = read_file(file, code, sizeof(code));
	int kvm = open_kvm();
	struct vm a, b;
	vm_create(&a, kvm, code, len, 0);
	vm_create(&b, kvm, code, len, 0);
	struct vcpu va, vb;
	vcpu_create(&va, &a, 0);
	vcpu_create(&vb, &b, 0);
	vcpu_setup(&va, 0);
	vcpu_setup(&vb, 0);
	char out[4096] = "";
	run_to_halt(&vb, out, sizeof(out));
	printf("second VM:\n%s", out);
	out[0] = 0;
	run_to_halt(&va, out, sizeof(out));
	printf("first VM:\n%s", out);
	return 0;
}

/* ---- timing loop ---- */

static int cmd_loop(long n)
{
	int kvm = open_kvm();
	int vm = ioctl(kvm, KVM_CREATE_VM, 0);
	long sum = 0;
	for (long i = 0; i < n; i++)
		sum += ioctl(vm, KVM_CHECK_EXTENSION, KVM_CAP_USER_MEMORY);
	printf("sum %ld\n", sum);
	return 0;
}

/* ---- no /dev/kvm needed ---- */

static int cmd_nokvm(void)
{
	int p[2];
	if (pipe(p) < 0)
		die("pipe");
	if (write(p[1], "abc", 3) != 3)
		die("write");
	int n = 0;
	show("FIONREAD", ioctl(p[0], FIONREAD, &n));
	printf("bytes ready %d\n", n);
	errno = 1234;
	ioctl(p[0], FIONREAD, &n);
	printf("errno untouched by a successful ioctl = %d\n", errno == 1234);
	struct termios t;
	show("TCGETS on a pipe", ioctl(p[0], TCGETS, &t));
	show("FIONREAD on fd -1", ioctl(-1, FIONREAD, &n));
	show("FIONREAD bad pointer", ioctl(p[0], FIONREAD, (void *)8));
	show("KVM_GET_API_VERSION on a pipe", ioctl(p[0], KVM_GET_API_VERSION, 0));
	show("KVM_RUN on fd -1", ioctl(-1, KVM_RUN, 0));
	int d = dup(p[0]);
	show("dup", d > 2 ? 0 : -1);
	show("dup2", dup2(p[0], 50));
	show("dup3", dup3(p[0], 51, O_CLOEXEC));
	show("F_DUPFD_CLOEXEC >= 60", fcntl(p[0], F_DUPFD_CLOEXEC, 60) >= 60 ? 0 : -1);
	show("F_GETFD 51", fcntl(51, F_GETFD));
	show("close", close(d));
	show("close again", close(d));
	show("close -5", close(-5));
	int f = open("/dev/null", O_RDONLY);
	show("open /dev/null", f > 2 ? 0 : -1);
	int g = openat(AT_FDCWD, "/nonexistent/x", O_RDONLY);
	show("openat missing", g);
	int h = open("/tmp", O_TMPFILE | O_RDWR, 0600);
	show("open O_TMPFILE", h > 2 ? 0 : -1);
	return 0;
}

int main(int argc, char **argv)
{
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (argc >= 4 && !strcmp(argv[1], "guest"))
		return cmd_guest(argv[2], !strcmp(argv[3], "long"));
	if (argc >= 4 && !strcmp(argv[1], "threads"))
		return cmd_threads(argv[2], atoi(argv[3]));
	if (argc >= 3 && !strcmp(argv[1], "fork"))
		return cmd_fork(argv[2]);
	if (argc >= 4 && !strcmp(argv[1], "exec"))
		return cmd_exec(argv[2], argv[3], argc >= 5 && !strcmp(argv[4], "off"));
	if (argc >= 3 && !strcmp(argv[1], "reuse"))
		return cmd_reuse(argv[2]);
	if (argc >= 2 && !strcmp(argv[1], "signal"))
		return cmd_signal();
	if (argc >= 2 && !strcmp(argv[1], "efault"))
		return cmd_efault();
	if (argc >= 3 && !strcmp(argv[1], "twovms"))
		return cmd_twovms(argv[2]);
	if (argc >= 2 && !strcmp(argv[1], "nokvm"))
		return cmd_nokvm();
	if (argc >= 3 && !strcmp(argv[1], "loop"))
		return cmd_loop(atol(argv[2]));
	fprintf(stderr, "usage: see the comment at the top of kvmprobe.c\n");
	return 64;
}
