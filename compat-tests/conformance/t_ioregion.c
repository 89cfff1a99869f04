// SPDX-License-Identifier: GPL-2.0
/* docs/api.md 5.10: kvmng_ioregion. Guest MMIO and port accesses served by
 * a device thread over an AF_UNIX SOCK_SEQPACKET socket without an exit to
 * the caller of kvmng_run; posted writes; two vCPUs on one socket with the
 * replies in reverse order; the device closing (EPIPE), malformed replies
 * (EBADMSG), a signal during the wait (EINTR, then the access is sent
 * again); every errno of the registration, in the documented order. */
#include "harness.h"

#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stddef.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <time.h>

_Static_assert(sizeof(struct kvmng_ioregion) == 64, "struct kvmng_ioregion");
_Static_assert(sizeof(struct kvmng_ioregion_request) == 40, "request");
_Static_assert(sizeof(struct kvmng_ioregion_reply) == 16, "reply");

#define REGION_SIZE 16
#define MAX_LOG 64

/* A device thread and what it saw. */
struct device {
	int fd;				/* the device's end */
	int script;			/* what to do, see device_main() */
	uint8_t regs[64];		/* register file, little-endian */
	struct kvmng_ioregion_request log[MAX_LOG];
	int nlog;
	int signo;			/* for SCRIPT_POSTED_SIGNAL */
	pthread_t vcpu_thread;		/* whom to signal */
	int go;				/* SCRIPT_STALL: answer from now on */
	int got_first;			/* SCRIPT_STALL: the first request is in */
	pthread_t thread;
};

enum {
	SCRIPT_SERVE,		/* a register file until end of file */
	SCRIPT_CLOSE_AFTER_ONE,	/* read one request, close */
	SCRIPT_MALFORMED,	/* three bad replies, then serve */
	SCRIPT_STALL,		/* hold the first request until go, then serve */
	SCRIPT_REVERSE_READS,	/* hold reads until two, answer in reverse */
	SCRIPT_POSTED_SIGNAL,	/* count posted writes, signal the vCPU */
	SCRIPT_STALL_SECOND,	/* serve one, hold the second until go, serve */
};

static int recv_request(struct device *d, struct kvmng_ioregion_request *r)
{
	ssize_t n;

	do {
		n = recv(d->fd, r, sizeof(*r), MSG_TRUNC);
	} while (n < 0 && errno == EINTR);
	if (n == 0)
		return 0;
	if (n != (ssize_t)sizeof(*r))
		return -1;
	if (d->nlog < MAX_LOG)
		d->log[d->nlog] = *r;
	__atomic_add_fetch(&d->nlog, 1, __ATOMIC_SEQ_CST);
	return 1;
}

static void reply(struct device *d, uint64_t id, uint64_t data)
{
	struct kvmng_ioregion_reply rep = { .id = id, .data = data };
	send(d->fd, &rep, sizeof(rep), MSG_NOSIGNAL);
}

static uint64_t access_regs(struct device *d, const struct kvmng_ioregion_request *r)
{
	uint64_t v = 0;

	if (r->offset + r->len > sizeof(d->regs))
		return ~0ULL;
	if (r->dir == KVMNG_IOREGION_WRITE) {
		memcpy(d->regs + r->offset, &r->data, r->len);
		return 0;
	}
	memcpy(&v, d->regs + r->offset, r->len);
	return v;
}

static void serve(struct device *d)
{
	struct kvmng_ioregion_request r;

	while (recv_request(d, &r) > 0) {
		uint64_t v = access_regs(d, &r);
		if (!(r.dir == KVMNG_IOREGION_WRITE && (r.flags & KVMNG_IOREGION_REQ_POSTED)))
			reply(d, r.id, r.dir == KVMNG_IOREGION_WRITE ? 0 : v);
	}
}

static void *device_main(void *p)
{
	struct device *d = p;
	struct kvmng_ioregion_request r, held[2];
	int nheld = 0;

	switch (d->script) {
	case SCRIPT_SERVE:
		serve(d);
		break;
	case SCRIPT_CLOSE_AFTER_ONE:
		recv_request(d, &r);
		close(d->fd);
		return NULL;
	case SCRIPT_MALFORMED: {
		uint64_t first_id;
		recv_request(d, &r);			/* 1: 8 bytes */
		send(d->fd, &r.id, 8, MSG_NOSIGNAL);
		recv_request(d, &r);			/* 2: data for a write */
		reply(d, r.id, 5);
		recv_request(d, &r);			/* 3: an id never sent */
		first_id = r.id;
		reply(d, r.id + 1000000, 0);
		recv_request(d, &r);			/* 4: 3's late reply, then good */
		reply(d, first_id, 0);
		access_regs(d, &r);
		reply(d, r.id, 0);
		serve(d);
		break;
	}
	case SCRIPT_STALL: {
		struct kvmng_ioregion_request first;
		recv_request(d, &first);
		__atomic_store_n(&d->got_first, 1, __ATOMIC_SEQ_CST);
		while (!__atomic_load_n(&d->go, __ATOMIC_SEQ_CST))
			usleep(1000);
		reply(d, first.id, 0);
		serve(d);
		break;
	}
	case SCRIPT_STALL_SECOND: {
		struct kvmng_ioregion_request second;
		if (recv_request(d, &r) <= 0)
			break;
		reply(d, r.id, access_regs(d, &r));
		recv_request(d, &second);
		__atomic_store_n(&d->got_first, 1, __ATOMIC_SEQ_CST);
		while (!__atomic_load_n(&d->go, __ATOMIC_SEQ_CST))
			usleep(1000);
		reply(d, second.id, access_regs(d, &second));
		serve(d);
		break;
	}
	case SCRIPT_REVERSE_READS:
		while (recv_request(d, &r) > 0) {
			if (r.dir == KVMNG_IOREGION_WRITE) {
				reply(d, r.id, 0);
				continue;
			}
			held[nheld++] = r;
			if (nheld == 2) {
				reply(d, held[1].id, 0x1000 + held[1].vcpu_id);
				reply(d, held[0].id, 0x1000 + held[0].vcpu_id);
				nheld = 0;
			}
		}
		break;
	case SCRIPT_POSTED_SIGNAL: {
		uint32_t expect = 0;
		int in_order = 1, signalled = 0;
		while (recv_request(d, &r) > 0) {
			if (!(r.flags & KVMNG_IOREGION_REQ_POSTED) || (uint32_t)r.data != expect)
				in_order = 0;
			expect++;
			if (expect == 500 && !signalled) {
				pthread_kill(d->vcpu_thread, d->signo);
				signalled = 1;
			}
		}
		d->regs[0] = in_order;
		memcpy(d->regs + 4, &expect, 4);
		break;
	}
	}
	close(d->fd);
	return NULL;
}

/* Socket pair: returns the VMM's end, starts the device on the other. */
static int start_device(struct device *d, int script)
{
	int sv[2];

	memset(d, 0, sizeof(*d));
	REQUIRE(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) == 0,
		"socketpair: %s", strerror(errno));
	d->fd = sv[1];
	d->script = script;
	d->vcpu_thread = pthread_self();
	REQUIRE(pthread_create(&d->thread, NULL, device_main, d) == 0, "pthread_create");
	return sv[0];
}

static struct kvmng_ioregion region(uint64_t addr, uint64_t size, int fd, uint32_t flags)
{
	struct kvmng_ioregion r = {
		.addr = addr, .size = size, .fd = fd, .flags = flags, .user_data = 0x77,
	};
	return r;
}

static uint32_t io_value(struct vm *v)
{
	uint32_t value = 0;
	memcpy(&value, (char *)v->run + v->run->io.data_offset, v->run->io.size);
	return value;
}

/* The set-up of the MMIO cases: a VM running real_mmio, and the device of
 * `script` (its register 8 preset to `preset`) serving GUEST_MMIO_REAL
 * through a region added over the socket.  Returns the VMM's end. */
static int start_mmio_device(struct vm *v, struct device *d, int script, uint32_t preset)
{
	vm_setup(v);
	vm_load_real(v, guest_real_mmio, guest_real_mmio_end - guest_real_mmio);
	int vmm = start_device(d, script);
	memcpy(d->regs + 8, &preset, 4);
	struct kvmng_ioregion r = region(GUEST_MMIO_REAL, REGION_SIZE, vmm, 0);
	CHECK_RET(kvmng_ioregion(KVMNG_IOREGION_ADD, &r, 0), 0);
	return vmm;
}

/* Ends the VM side so the device sees end of file, and joins it. */
static void finish(struct device *d, int vmm)
{
	struct kvmng_ioregion all = region(GUEST_MMIO_REAL, REGION_SIZE, -1, 0);
	kvmng_ioregion(KVMNG_IOREGION_DEL, &all, 0);
	close(vmm);
	shutdown(d->fd, SHUT_RD);
	pthread_join(d->thread, NULL);
}

TEST(ioregion_serves_mmio_without_exits)
{
	struct vm v;
	struct device d;
	int vmm, reason;

	uint32_t preset = 0xCAFEBABE;
	vmm = start_mmio_device(&v, &d, SCRIPT_SERVE, preset);
	/* real_mmio: 16-bit write, 32-bit read, REPORT of the value read. */
	reason = run_once(&v);
	CHECK(reason == KVM_EXIT_IO && v.run->io.port == GUEST_REPORT_PORT,
	      "the first exit is the REPORT (exit %d)", reason);
	CHECK(io_value(&v) == preset, "the guest read the device's register (%#x)", io_value(&v));
	CHECK(run_once(&v) == KVM_EXIT_HLT, "HLT");
	finish(&d, vmm);
	CHECK(d.nlog == 2, "the device saw two requests (%d)", d.nlog);
	CHECK(d.log[0].dir == KVMNG_IOREGION_WRITE && d.log[0].offset == 0 &&
	      d.log[0].len == 2 && d.log[0].data == 0x1234 && d.log[0].flags == 0,
	      "write: offset %llu len %u data %#llx", (unsigned long long)d.log[0].offset,
	      d.log[0].len, (unsigned long long)d.log[0].data);
	CHECK(d.log[1].dir == KVMNG_IOREGION_READ && d.log[1].offset == 8 &&
	      d.log[1].len == 4 && d.log[1].data == 0, "read: offset %llu len %u",
	      (unsigned long long)d.log[1].offset, d.log[1].len);
	CHECK(d.log[0].user_data == 0x77 && d.log[0].vcpu_id == 0 && d.log[0].pad == 0,
	      "user_data and vcpu_id");
	CHECK(d.log[0].id != 0 && d.log[1].id > d.log[0].id, "ids");
}

static struct kvm_run *g_run;

static void on_signal(int sig)
{
	(void)sig;
}

static void set_immediate_exit(int sig)
{
	(void)sig;
	if (g_run)
		__atomic_store_n(&g_run->immediate_exit, 1, __ATOMIC_SEQ_CST);
}

static void install(int sig, void (*handler)(int))
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = handler;
	sigemptyset(&sa.sa_mask);
	REQUIRE(sigaction(sig, &sa, NULL) == 0, "sigaction");
}

TEST(ioregion_posted_port_writes_never_exit)
{
	struct vm v;
	struct device d;
	int vmm;

	install(SIGUSR1, set_immediate_exit);
	vm_setup(&v);
	vm_load_real(&v, guest_pio_loop, guest_pio_loop_end - guest_pio_loop);
	g_run = v.run;
	vmm = start_device(&d, SCRIPT_POSTED_SIGNAL);
	d.signo = SIGUSR1;
	/* pio_loop: out 0x10, eax; inc eax; forever. */
	struct kvmng_ioregion r = region(GUEST_REPORT_PORT, 4, vmm,
					 KVMNG_IOREGION_PIO | KVMNG_IOREGION_POSTED);
	CHECK_RET(kvmng_ioregion(KVMNG_IOREGION_ADD, &r, 0), 0);
	/* The loop never exits to us; the device signals after 500 writes
	 * and the handler sets immediate_exit. */
	CHECK_ERR(kvmng_run(0), EINTR);
	g_run = NULL;
	v.run->immediate_exit = 0;
	r.fd = -1;
	CHECK_RET(kvmng_ioregion(KVMNG_IOREGION_DEL, &r, 0), 0);
	close(vmm);
	pthread_join(d.thread, NULL);
	uint32_t count;
	memcpy(&count, d.regs + 4, 4);
	CHECK(count >= 500, "the device got %u posted writes", count);
	CHECK(d.regs[0] == 1, "all posted, values 0, 1, 2, ... in order");
	/* Without the region the next OUT is an ordinary exit, the next value. */
	CHECK(run_once(&v) == KVM_EXIT_IO && v.run->io.port == GUEST_REPORT_PORT,
	      "OUT exit once the region is gone");
	CHECK(io_value(&v) >= count, "the guest went on from %u (%u)", count, io_value(&v));
}

struct second {
	struct vm v;
	uint32_t reported;
	int reason;
};

static void *run_second_vcpu(void *p)
{
	struct second *s = p;
	int fd = kvmng_create_vcpu(1, KVMNG_CREATE_VCPU_BIND);

	CHECK(fd >= 0, "vCPU 1: %s", errname(errno));
	if (fd < 0)
		return NULL;
	s->v.vcpu = fd;
	s->v.run = mmap(NULL, s->v.run_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	CHECK(s->v.run != MAP_FAILED, "mmap vCPU 1");
	vm_load_real(&s->v, guest_real_mmio, guest_real_mmio_end - guest_real_mmio);
	s->reason = run_once(&s->v);
	s->reported = io_value(&s->v);
	return NULL;
}

TEST(ioregion_two_vcpus_share_a_socket_replies_match_by_id)
{
	struct vm v;
	struct device d;
	struct second s;
	pthread_t t;
	int vmm, reason;

	vmm = start_mmio_device(&v, &d, SCRIPT_REVERSE_READS, 0);
	s.v = v;
	pthread_create(&t, NULL, run_second_vcpu, &s);
	/* The device holds the first read until the second vCPU's is in, then
	 * answers them in reverse order: both in flight on one socket. */
	reason = run_once(&v);
	pthread_join(t, NULL);
	CHECK(reason == KVM_EXIT_IO && io_value(&v) == 0x1000,
	      "vCPU 0 got its own reply (exit %d, %#x)", reason, io_value(&v));
	CHECK(s.reason == KVM_EXIT_IO && s.reported == 0x1001,
	      "vCPU 1 got its own reply (exit %d, %#x)", s.reason, s.reported);
	finish(&d, vmm);
	CHECK(d.nlog == 4, "4 requests (%d)", d.nlog);
}

TEST(ioregion_device_closed_gives_epipe_until_deleted)
{
	struct vm v;
	struct device d;
	int vmm, reason;

	vmm = start_mmio_device(&v, &d, SCRIPT_CLOSE_AFTER_ONE, 0);
	struct kvmng_ioregion r = region(GUEST_MMIO_REAL, REGION_SIZE, vmm, 0);
	CHECK_ERR(kvmng_run(0), EPIPE);
	pthread_join(d.thread, NULL);
	CHECK_ERR(kvmng_run(0), EPIPE);
	CHECK(v.run->exit_reason == KVM_EXIT_MMIO, "kvm_run still describes the access");
	CHECK_RET(kvmng_ioregion(KVMNG_IOREGION_DEL, &r, 0), 0);
	/* The pending write, as an ordinary exit. */
	reason = run_once(&v);
	uint16_t w = 0;
	memcpy(&w, v.run->mmio.data, 2);
	CHECK(reason == KVM_EXIT_MMIO && v.run->mmio.is_write &&
	      v.run->mmio.phys_addr == GUEST_MMIO_REAL && w == 0x1234,
	      "the write comes out as KVM_EXIT_MMIO (exit %d)", reason);
	reason = run_once(&v);
	CHECK(reason == KVM_EXIT_MMIO && !v.run->mmio.is_write, "then the read");
	close(vmm);
}

TEST(ioregion_malformed_replies_give_ebadmsg)
{
	struct vm v;
	struct device d;
	int vmm, reason;

	uint32_t preset = 0x600DF00D;
	vmm = start_mmio_device(&v, &d, SCRIPT_MALFORMED, preset);
	CHECK_ERR(kvmng_run(0), EBADMSG);	/* a reply of 8 bytes */
	CHECK_ERR(kvmng_run(0), EBADMSG);	/* data in a write's reply */
	CHECK_ERR(kvmng_run(0), EBADMSG);	/* an id that was never sent */
	reason = run_once(&v);
	CHECK(reason == KVM_EXIT_IO && io_value(&v) == preset,
	      "the fourth try completes and the guest goes on (exit %d, %#x)", reason,
	      io_value(&v));
	finish(&d, vmm);
	for (int i = 1; i < 4; i++)
		CHECK(d.log[i].dir == KVMNG_IOREGION_WRITE && d.log[i].offset == 0 &&
		      d.log[i].id > d.log[i - 1].id, "try %d: the same write, a new id", i + 1);
}

struct killer {
	struct device *d;
	pthread_t target;
	int sig;
};

static void *signal_when_waiting(void *p)
{
	struct killer *k = p;

	while (!__atomic_load_n(&k->d->got_first, __ATOMIC_SEQ_CST))
		usleep(1000);
	usleep(20000);
	pthread_kill(k->target, k->sig);
	return NULL;
}

TEST(ioregion_signal_ends_the_wait_then_the_access_is_sent_again)
{
	struct vm v;
	struct device d;
	struct killer k;
	pthread_t t;
	int vmm, reason;

	install(SIGUSR1, on_signal);
	uint32_t preset = 0x5EED;
	vmm = start_mmio_device(&v, &d, SCRIPT_STALL, preset);
	k.d = &d;
	k.target = pthread_self();
	k.sig = SIGUSR1;
	pthread_create(&t, NULL, signal_when_waiting, &k);
	/* The device holds the write: the wait ends with the signal. */
	CHECK_ERR(kvmng_run(0), EINTR);
	pthread_join(t, NULL);
	CHECK(v.run->exit_reason == KVM_EXIT_MMIO, "kvm_run still describes the access");
	/* immediate_exit: fails at once, sends nothing. */
	v.run->immediate_exit = 1;
	CHECK_ERR(kvmng_run(0), EINTR);
	v.run->immediate_exit = 0;
	CHECK(__atomic_load_n(&d.nlog, __ATOMIC_SEQ_CST) == 1, "one request so far (%d)", d.nlog);
	/* The device answers the abandoned request late (dropped), then the
	 * one sent again. */
	__atomic_store_n(&d.go, 1, __ATOMIC_SEQ_CST);
	reason = run_once(&v);
	CHECK(reason == KVM_EXIT_IO && io_value(&v) == preset,
	      "the guest goes on (exit %d, %#x)", reason, io_value(&v));
	finish(&d, vmm);
	CHECK(d.nlog == 3, "write, write again, read (%d)", d.nlog);
	CHECK(d.log[1].dir == KVMNG_IOREGION_WRITE && d.log[1].data == 0x1234 &&
	      d.log[1].id > d.log[0].id, "at least once: the write, again, with a new id");
}

TEST_NOKVM(ioregion_checks_flags_op_and_binding_first)
{
	struct kvmng_ioregion r = region(GUEST_MMIO_REAL, REGION_SIZE, -1, 0);

	CHECK_ERR(kvmng_ioregion(KVMNG_IOREGION_ADD, (void *)8, 1), EINVAL);
	CHECK_ERR(kvmng_ioregion(KVMNG_IOREGION_ADD, (void *)8, 1u << 31), EINVAL);
	CHECK_ERR(kvmng_ioregion(0, (void *)8, 0), EINVAL);
	CHECK_ERR(kvmng_ioregion(3, (void *)8, 0), EINVAL);
	CHECK_ERR(kvmng_ioregion(KVMNG_IOREGION_ADD, (void *)8, 0), EUNATCH);
	CHECK_ERR(kvmng_ioregion(KVMNG_IOREGION_DEL, &r, 0), EUNATCH);
	/* flags is an unsigned int: the upper half of the register is not
	 * part of it. */
	CHECK_ERR(syscall(__NR_kvmng_ioregion, KVMNG_IOREGION_ADD, (void *)8, 1UL << 32), EUNATCH);
}

TEST(ioregion_registration_errors_in_order)
{
	struct vm v;
	int sv[2], file, inet, stream[2], dgram[2], lone;

	vm_setup(&v);
	REQUIRE(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) == 0, "socketpair");
	struct kvmng_ioregion good = region(GUEST_MMIO_REAL, REGION_SIZE, sv[0], 0), r;

	CHECK_ERR(kvmng_ioregion(KVMNG_IOREGION_ADD, (void *)8, 0), EFAULT);
	CHECK_ERR(kvmng_ioregion(KVMNG_IOREGION_ADD, unmapped_page(), 0), EFAULT);
#define TRY(op, change, e) do { r = good; change; CHECK_ERR(kvmng_ioregion(op, &r, 0), e); } while (0)
	TRY(KVMNG_IOREGION_ADD, r.flags = 1u << 2, EINVAL);
	TRY(KVMNG_IOREGION_ADD, r.flags = ~0u, EINVAL);
	TRY(KVMNG_IOREGION_ADD, r.reserved[0] = 1, EINVAL);
	TRY(KVMNG_IOREGION_DEL, r.reserved[3] = 1, EINVAL);
	TRY(KVMNG_IOREGION_ADD, r.size = 0, EINVAL);
	TRY(KVMNG_IOREGION_ADD, r.size = KVMNG_IOREGION_MAX_SIZE + 1, E2BIG);
	TRY(KVMNG_IOREGION_ADD, (r.size = ~0ULL, r.fd = -1), E2BIG);
	TRY(KVMNG_IOREGION_ADD, r.addr = ~0ULL - 7, EINVAL);
	TRY(KVMNG_IOREGION_ADD, (r.flags = KVMNG_IOREGION_PIO, r.addr = 0xFFF1), EINVAL);
	TRY(KVMNG_IOREGION_ADD, r.fd = -1, EBADF);
	TRY(KVMNG_IOREGION_ADD, r.fd = closed_fd(), EBADF);
	file = open("/dev/null", O_RDONLY | O_CLOEXEC);
	TRY(KVMNG_IOREGION_ADD, r.fd = file, ENOTSOCK);
	inet = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	TRY(KVMNG_IOREGION_ADD, r.fd = inet, EAFNOSUPPORT);
	socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, stream);
	TRY(KVMNG_IOREGION_ADD, r.fd = stream[0], EPROTOTYPE);
	socketpair(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0, dgram);
	TRY(KVMNG_IOREGION_ADD, r.fd = dgram[0], EPROTOTYPE);
	lone = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	TRY(KVMNG_IOREGION_ADD, r.fd = lone, ENOTCONN);

	CHECK_RET(kvmng_ioregion(KVMNG_IOREGION_ADD, &good, 0), 0);
	TRY(KVMNG_IOREGION_ADD, , EEXIST);
	TRY(KVMNG_IOREGION_ADD, r.addr += REGION_SIZE - 1, EEXIST);
	TRY(KVMNG_IOREGION_ADD, (r.addr -= REGION_SIZE - 1, r.flags = KVMNG_IOREGION_POSTED), EEXIST);
	/* The port space is another space. */
	r = good;
	r.flags = KVMNG_IOREGION_PIO;
	r.addr = 0xFFF0;
	CHECK_RET(kvmng_ioregion(KVMNG_IOREGION_ADD, &r, 0), 0);
	/* DEL: the exact range of the same space; fd and POSTED not used. */
	TRY(KVMNG_IOREGION_DEL, r.size = 8, ENOENT);
	TRY(KVMNG_IOREGION_DEL, r.addr += 1, ENOENT);
	TRY(KVMNG_IOREGION_DEL, (r.flags = KVMNG_IOREGION_PIO, r.addr = GUEST_MMIO_REAL & 0xFFFF), ENOENT);
	r = good;
	r.fd = -1;
	r.flags = KVMNG_IOREGION_POSTED;
	CHECK_RET(kvmng_ioregion(KVMNG_IOREGION_DEL, &r, 0), 0);
	TRY(KVMNG_IOREGION_DEL, , ENOENT);
	CHECK_RET(kvmng_ioregion(KVMNG_IOREGION_ADD, &good, 0), 0);

	/* KVMNG_IOREGION_MAX regions in all (one PIO, one MMIO so far). */
	int added = 2, full = 0;
	for (uint64_t a = 0x100000; added <= KVMNG_IOREGION_MAX; a += 16) {
		r = good;
		r.addr = a;
		errno = 0;
		if (kvmng_ioregion(KVMNG_IOREGION_ADD, &r, 0) == 0) {
			added++;
			continue;
		}
		full = errno;
		break;
	}
	CHECK(added == KVMNG_IOREGION_MAX && full == ENOSPC,
	      "%d regions, then %s", added, errname(full));
#undef TRY
}

/* real_mmio's instructions (GUEST_LOAD_ADDR 0x1000): the write
 * `movw $0x1234, %es:0` at 0x1006 (7 bytes), the read `movl %es:8, %eax`
 * at 0x100d (5 bytes). */
#define REAL_MMIO_WRITE_RIP 0x1006
#define REAL_MMIO_READ_RIP 0x100d

static uint64_t current_rip(void)
{
	struct kvm_regs regs;
	struct kvmng_state_entry e = entry(KVMNG_STATE_REGS, KVMNG_STATE_GET, &regs, sizeof(regs));
	REQUIRE(kvmng_vcpu_state(&e, 1, 0) == 1, "get regs: %s", errname(errno));
	return regs.rip;
}

/* Leaves the access the device holds pending: kvmng_run fails with EINTR
 * once the device has it. */
static void interrupt_the_wait(struct device *d)
{
	struct killer k = { .d = d, .target = pthread_self(), .sig = SIGUSR1 };
	pthread_t t;

	install(SIGUSR1, on_signal);
	pthread_create(&t, NULL, signal_when_waiting, &k);
	CHECK_ERR(kvmng_run(0), EINTR);
	pthread_join(t, NULL);
}

/* api.md 5.10, "Failures": the registers of a pending access are those of
 * the exit: a read has not executed (RIP at it); a write may already be
 * past (KVM retires an MMIO write at the exit). */
TEST(ioregion_pending_write_registers)
{
	struct vm v;
	struct device d;
	int vmm;

	vmm = start_mmio_device(&v, &d, SCRIPT_STALL, 0x5EED);
	interrupt_the_wait(&d);
	uint64_t rip = current_rip();
	CHECK(rip == REAL_MMIO_WRITE_RIP || rip == REAL_MMIO_READ_RIP,
	      "pending write: RIP at the write or past it (%#llx)", (unsigned long long)rip);
	__atomic_store_n(&d.go, 1, __ATOMIC_SEQ_CST);
	finish(&d, vmm);
}

TEST(ioregion_pending_read_registers)
{
	struct vm v;
	struct device d;
	int vmm;

	vmm = start_mmio_device(&v, &d, SCRIPT_STALL_SECOND, 0x5EED);
	interrupt_the_wait(&d);
	CHECK(v.run->exit_reason == KVM_EXIT_MMIO && !v.run->mmio.is_write,
	      "the read is pending (exit %d)", v.run->exit_reason);
	uint64_t rip = current_rip();
	CHECK(rip == REAL_MMIO_READ_RIP, "pending read: RIP at the read (%#llx)",
	      (unsigned long long)rip);
	__atomic_store_n(&d.go, 1, __ATOMIC_SEQ_CST);
	int reason = run_once(&v);
	CHECK(reason == KVM_EXIT_IO && io_value(&v) == 0x5EED, "then it completes (%d, %#x)",
	      reason, io_value(&v));
	finish(&d, vmm);
}

/* api.md 5.10: when a KVM_RUN ioctl completed a pending access, the next
 * kvmng_run just runs: it neither sends the access again nor reports the
 * exit the ioctl already reported. */
TEST(ioregion_access_completed_by_the_ioctl_is_not_reported_again)
{
	struct vm v;
	struct device d;
	int vmm, reason;

	vmm = start_mmio_device(&v, &d, SCRIPT_STALL, 0x5EED);
	interrupt_the_wait(&d);
	/* The KVM_RUN ioctl completes the write and reports the read as an
	 * ordinary exit; the program answers it itself. */
	CHECK_RET(kioctl(v.vcpu, KVM_RUN, 0), 0);
	CHECK(v.run->exit_reason == KVM_EXIT_MMIO && !v.run->mmio.is_write &&
	      v.run->mmio.phys_addr == GUEST_MMIO_REAL + 8,
	      "the ioctl reports the read (exit %d)", v.run->exit_reason);
	uint32_t mine = 0xC0FFEE;
	memcpy(v.run->mmio.data, &mine, 4);
	__atomic_store_n(&d.go, 1, __ATOMIC_SEQ_CST);
	reason = run_once(&v);
	CHECK(reason == KVM_EXIT_IO && io_value(&v) == mine,
	      "kvmng_run runs on with the program's value (exit %d, %#x)", reason, io_value(&v));
	reason = run_once(&v);
	CHECK(reason == KVM_EXIT_HLT, "and on to HLT, no exit reported twice (exit %d)", reason);
	finish(&d, vmm);
	CHECK(d.nlog == 1, "the device saw only the first write (%d requests)", d.nlog);
}

/* api.md 5.10, errors: addr + size is computed in 64 bits and must not
 * wrap; a range that ends exactly at 2^64 wraps to 0 and is refused. */
TEST(ioregion_a_range_ending_at_2_to_the_64_is_refused)
{
	struct vm v;
	struct device d;

	vm_setup(&v);
	int vmm = start_device(&d, SCRIPT_SERVE);
	struct kvmng_ioregion r = region(0ULL - 16, 16, vmm, 0);
	CHECK_ERR(kvmng_ioregion(KVMNG_IOREGION_ADD, &r, 0), EINVAL);
	r = region(0ULL - 32, 16, vmm, 0);
	CHECK_RET(kvmng_ioregion(KVMNG_IOREGION_ADD, &r, 0), 0);
	CHECK_RET(kvmng_ioregion(KVMNG_IOREGION_DEL, &r, 0), 0);
	close(vmm);
	shutdown(d.fd, SHUT_RD);
	pthread_join(d.thread, NULL);
}

/* api.md 5.10: "connected" is the socket's state, which a peer's close
 * does not change: ADD accepts it, and the first access fails with EPIPE. */
TEST(ioregion_add_accepts_a_socket_whose_peer_closed)
{
	struct vm v;
	int sv[2];

	vm_setup(&v);
	vm_load_real(&v, guest_real_mmio, guest_real_mmio_end - guest_real_mmio);
	REQUIRE(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) == 0, "socketpair");
	close(sv[1]);
	struct kvmng_ioregion r = region(GUEST_MMIO_REAL, REGION_SIZE, sv[0], 0);
	CHECK_RET(kvmng_ioregion(KVMNG_IOREGION_ADD, &r, 0), 0);
	CHECK_ERR(kvmng_run(0), EPIPE);
	CHECK_RET(kvmng_ioregion(KVMNG_IOREGION_DEL, &r, 0), 0);
	close(sv[0]);
}

static volatile sig_atomic_t usr2_delivered;
static void count_usr2(int sig)
{
	(void)sig;
	usr2_delivered++;
}

/* api.md 5.10: a signal that the thread blocks but the KVM_SET_SIGNAL_MASK
 * mask allows ends the wait and stays pending, as KVM_RUN leaves it. */
TEST(ioregion_signal_allowed_only_by_the_kvm_mask)
{
	struct vm v;
	struct device d;
	struct killer k;
	pthread_t t;
	sigset_t blocked, pending;
	struct {
		__u32 len;
		__u8 sigset[8];
	} kvm_mask = { .len = 8 };

	install(SIGUSR2, count_usr2);
	int vmm = start_mmio_device(&v, &d, SCRIPT_STALL, 0x5EED);
	sigemptyset(&blocked);
	sigaddset(&blocked, SIGUSR2);
	pthread_sigmask(SIG_BLOCK, &blocked, NULL);
	/* KVM's mask: nothing blocked. */
	CHECK_RET(kvmng_control(KVMNG_SCOPE_VCPU, KVM_SET_SIGNAL_MASK, (uintptr_t)&kvm_mask, 0), 0);
	k.d = &d;
	k.target = pthread_self();
	k.sig = SIGUSR2;
	pthread_create(&t, NULL, signal_when_waiting, &k);
	CHECK_ERR(kvmng_run(0), EINTR);
	pthread_join(t, NULL);
	sigpending(&pending);
	int is_pending = sigismember(&pending, SIGUSR2);
	CHECK(usr2_delivered == 0 && is_pending,
	      "left pending as KVM_RUN leaves it (delivered %d, pending %d)",
	      (int)usr2_delivered, is_pending);
	__atomic_store_n(&d.go, 1, __ATOMIC_SEQ_CST);
	finish(&d, vmm);
}
