/*
 * smp.S: a multiboot v1 SMP guest for `kvmng-compat qemu`.
 *
 * QEMU loads it with -kernel (after SeaBIOS on pc and q35, after qboot on
 * microvm) and enters it in 32-bit protected mode, paging off, on the
 * bootstrap processor (BSP). It prints on COM1:
 *
 *   1. the number of CPUs QEMU has (fw_cfg key 0x05, port 0x510);
 *   2. the APs brought up one by one with INIT, SIPI, SIPI (a real-mode
 *      trampoline copied to 0x8000, SIPI vector 0x08); each AP prints its
 *      own line, with its local APIC ID;
 *   3. a ring of fixed IPIs sent through the local APIC's ICR (vector
 *      0x41): CPU 0 -> 1 -> ... -> N-1 -> 0, each receiver prints the
 *      sender and passes the token on (with one CPU, a self-IPI);
 *   4. timer interrupts: the PIT (channel 0, ~1 kHz) through the 8259 to
 *      the BSP's LINT0 (ExtINT), while every CPU runs its own local APIC
 *      timer (periodic, vector 0x50) at the same time; then every CPU
 *      reports its count in turn (at least 10 PIT ticks, at least 5 local
 *      APIC timer ticks: thresholds, never timing-dependent numbers).
 *
 * Every line is printed under one spin lock, and the BSP sequences the
 * phases (an AP prints only when told to, or when it holds the IPI token),
 * so the output is the same lines in the same order on every run.
 *
 * It ends by writing to isa-debug-exit (port 0xf4): QEMU exits with status
 * 33 on success (0x10), 35 on failure (0x11, after a "FAIL:" line).
 *
 * Interrupts are enabled only across `sti; hlt` in wait loops, and every
 * handler drops its frame and jumps back to the wait loop its CPU was in
 * (`resume[cpu]`) instead of returning: this host's software KVM (PVM)
 * cannot emulate a 32-bit IRET (see devices.S).
 *
 * Build (what kvmng-compat does): as devices.S.
 *
 * With -DKRUN (gcc -c -DKRUN, ld -m elf_x86_64: linux-loader, which libkrun
 * uses, loads only ELF64) the same guest boots under libkrun, which enters
 * the ELF's entry point in 64-bit mode with its own GDT and page tables: a
 * stub drops to 32-bit protected mode without paging, and from there the
 * code is the same. libkrun has no fw_cfg, so the CPU count comes from its
 * MP table, and no isa-debug-exit, so the guest ends with a reset through
 * the i8042 (port 0x64), which ends libkrun's process.
 */

#define COM1            0x3f8
#define EXIT_PORT       0xf4
#define EXIT_OK         0x10
#define EXIT_FAIL       0x11
#define PIC1_CMD        0x20
#define PIC1_DATA       0x21
#define PIC2_CMD        0xa0
#define PIC2_DATA       0xa1
#define PIT_CH0         0x40
#define PIT_CMD         0x43
#define FW_CFG_SEL      0x510
#define FW_CFG_DATA     0x511
#define FW_CFG_NB_CPUS  0x05

#define LAPIC           0xfee00000
#define LAPIC_ID        (LAPIC + 0x20)
#define LAPIC_EOI       (LAPIC + 0xb0)
#define LAPIC_SVR       (LAPIC + 0xf0)
#define LAPIC_ICR_LO    (LAPIC + 0x300)
#define LAPIC_ICR_HI    (LAPIC + 0x310)
#define LAPIC_LVT_TIMER (LAPIC + 0x320)
#define LAPIC_LVT_LINT0 (LAPIC + 0x350)
#define LAPIC_LVT_LINT1 (LAPIC + 0x360)
#define LAPIC_LVT_ERR   (LAPIC + 0x370)
#define LAPIC_TIMER_ICR (LAPIC + 0x380)
#define LAPIC_TIMER_DCR (LAPIC + 0x3e0)

#define TRAMPOLINE      0x8000          /* SIPI vector 0x08 */
#define MAX_CPUS        8
#define STACK_SIZE      4096

#define VEC_PIT         0x20            /* IRQ0 after remapping the 8259s */
#define VEC_WAKE        0x40            /* "look at your mailbox" */
#define VEC_RING        0x41            /* the token of the IPI ring */
#define VEC_TIMER       0x50            /* local APIC timer */
#define VEC_SPURIOUS    0xff

#define CMD_TIMER       1               /* run the local APIC timer */
#define CMD_REPORT      2               /* print the timer count */

#define PIT_WANTED      10
#define TIMER_WANTED    5
#define GIVE_UP         5000            /* PIT ticks (~5 s) before a wait fails */
#define SPIN_GIVE_UP    200000000       /* spins before a wait without PIT fails */

#define MB_MAGIC        0x1badb002
#define MB_FLAGS        0
#define MB_BOOT_MAGIC   0x2badb002

        .text
        .globl _start

#ifdef KRUN
/* libkrun: 64-bit mode, paging on (identity), its GDT. To 32-bit protected
 * mode: our GDT, a far return into its 32-bit code segment (compatibility
 * mode), paging off (which leaves long mode), EFER.LME off. */
        .code64
_start:
        cli
        lgdt    gdt_desc64
        pushq   $0x08
        pushq   $1f
        lretq
        .code32
1:      mov     $0x10, %ax
        mov     %ax, %ds
        mov     %ax, %ss
        mov     %cr0, %eax
        and     $0x7fffffff, %eax
        mov     %eax, %cr0
        mov     $0xc0000080, %ecx
        rdmsr
        and     $~0x100, %eax
        wrmsr
        mov     %cr4, %eax
        and     $~0x20, %eax
        mov     %eax, %cr4
        mov     $MB_BOOT_MAGIC, %eax            /* as if from multiboot */
        jmp     start32
#else
        .code32
        .align 4
multiboot_header:
        .long MB_MAGIC
        .long MB_FLAGS
        .long -(MB_MAGIC + MB_FLAGS)
_start:
#endif

        .code32
start32:
        cli
        cld
        mov     $stacks + STACK_SIZE, %esp      /* CPU 0's stack */
        mov     %eax, boot_magic

        lgdt    gdt_desc
        ljmp    $0x08, $1f
1:      mov     $0x10, %ax
        mov     %ax, %ds
        mov     %ax, %es
        mov     %ax, %ss
        mov     %ax, %fs
        mov     %ax, %gs

        call    serial_init
        mov     $msg_hello, %esi
        call    puts
        cmpl    $MB_BOOT_MAGIC, boot_magic
        mov     $msg_fail_magic, %esi
        jne     fail

#ifdef KRUN
        /* How many CPUs libkrun made: the enabled processor entries of its
         * MP table. */
        call    mp_count_cpus
        mov     %eax, %ebx
        mov     %eax, ncpus
        mov     $msg_mptable, %esi
#else
        /* How many CPUs QEMU made (-smp): fw_cfg FW_CFG_NB_CPUS, 16 bits. */
        mov     $FW_CFG_SEL, %dx
        mov     $FW_CFG_NB_CPUS, %ax
        out     %ax, %dx
        mov     $FW_CFG_DATA, %dx
        in      %dx, %al
        movzbl  %al, %ebx
        in      %dx, %al
        movzbl  %al, %eax
        shl     $8, %eax
        or      %eax, %ebx
        mov     %ebx, ncpus
        mov     $msg_fwcfg, %esi
#endif
        call    puts
        mov     %ebx, %eax
        call    put_dec
        mov     $msg_cpus, %esi
        call    puts
        cmp     $1, %ebx
        jb      1f
        cmp     $MAX_CPUS, %ebx
        jbe     2f
1:      mov     $msg_fail_ncpus, %esi
        jmp     fail
2:
        /* The BSP's local APIC: software-enabled, LINT0 takes the 8259
         * (ExtINT), its APIC ID must be 0. */
        mov     LAPIC_ID, %eax
        shr     $24, %eax
        test    %eax, %eax
        mov     $msg_fail_bsp_id, %esi
        jnz     fail
        call    idt_init
        lidt    idt_desc
        movl    $0x100 | VEC_SPURIOUS, LAPIC_SVR
        movl    $0x700, LAPIC_LVT_LINT0         /* ExtINT, unmasked */
        movl    $0x10000, LAPIC_LVT_ERR
        mov     $msg_bsp, %esi
        call    puts

        /* PIT at ~1 kHz through the 8259 (IRQ0 only): the BSP's clock for
         * every wait below (GIVE_UP ticks), and the PIT test itself. */
        call    pic_init
        call    pit_init

        /* ---- 1. the APs, one at a time ---- */
        mov     $trampoline, %esi
        mov     $TRAMPOLINE, %edi
        mov     $trampoline_end - trampoline, %ecx
        rep movsb
        movl    $1, cpus_up
        movl    $1, starting
start_next_ap:
        mov     starting, %ebx
        cmp     ncpus, %ebx
        jae     all_up
        shl     $24, %ebx
        mov     %ebx, LAPIC_ICR_HI
        mov     $0x4500, %eax                   /* INIT, assert */
        call    send_icr
        mov     $10000, %ecx                    /* a short pause after INIT */
1:      pause
        loop    1b
        mov     starting, %ebx
        shl     $24, %ebx
        mov     %ebx, LAPIC_ICR_HI
        mov     $0x4600 | (TRAMPOLINE >> 12), %eax   /* SIPI */
        call    send_icr
        movl    $0, pit_ticks
        movl    $0, sipis_sent
wait_ap:
        cli
        movl    $wait_ap, resume
        mov     cpus_up, %eax
        cmp     starting, %eax
        ja      ap_arrived
        cmpl    $GIVE_UP, pit_ticks
        mov     $msg_fail_ap, %esi
        jae     fail
        /* A second SIPI after ~10 ticks if the first did not take. */
        cmpl    $0, sipis_sent
        jne     1f
        cmpl    $10, pit_ticks
        jb      1f
        movl    $1, sipis_sent
        mov     starting, %ebx
        shl     $24, %ebx
        mov     %ebx, LAPIC_ICR_HI
        mov     $0x4600 | (TRAMPOLINE >> 12), %eax
        call    send_icr
1:      sti
        hlt
        jmp     wait_ap
ap_arrived:
        incl    starting
        jmp     start_next_ap
all_up:
        call    lock
        mov     $msg_all, %esi
        call    puts
        mov     ncpus, %eax
        call    put_dec
        mov     $msg_up, %esi
        call    puts
        call    unlock

        /* ---- 2. the IPI ring ---- */
        movl    $0, ring_done
        movl    $0, ring_from
        mov     $1, %eax
        cmp     ncpus, %eax
        jb      1f
        xor     %eax, %eax                      /* one CPU: a self-IPI */
1:      mov     $VEC_RING, %edx
        call    send_ipi
        movl    $0, pit_ticks
wait_ring:
        cli
        movl    $wait_ring, resume
        cmpl    $0, ring_done
        jne     ring_ok
        cmpl    $GIVE_UP, pit_ticks
        mov     $msg_fail_ring, %esi
        jae     fail
        sti
        hlt
        jmp     wait_ring
ring_ok:

        /* ---- 3. timers: every CPU's local APIC timer, and the PIT ---- */
        movl    $0, timers_done
        mov     $1, %ebx
1:      cmp     ncpus, %ebx
        jae     2f
        movl    $CMD_TIMER, cmd(,%ebx,4)
        mov     %ebx, %eax
        mov     $VEC_WAKE, %edx
        call    send_ipi
        inc     %ebx
        jmp     1b
2:      movl    $0, lapic_ticks
        movl    $0, pit_ticks
        call    lapic_timer_start
wait_timers:
        cli
        movl    $wait_timers, resume
        mov     pit_ticks, %eax
        cmp     $GIVE_UP, %eax
        mov     $msg_fail_lapic, %esi
        jae     fail
        cmpl    $GIVE_UP, lapic_ticks
        mov     $msg_fail_pit, %esi
        jae     fail
        cmp     $PIT_WANTED, %eax
        jb      1f
        cmpl    $TIMER_WANTED, lapic_ticks
        jb      1f
        call    lapic_timer_stop                /* idempotent */
        mov     ncpus, %eax
        dec     %eax
        cmp     timers_done, %eax
        je      timers_ok
1:      sti
        hlt
        jmp     wait_timers
timers_ok:
        call    lock
        mov     $msg_pit, %esi
        call    puts
        xor     %eax, %eax
        call    print_timer_line
        call    unlock

        /* ---- 4. every AP reports in turn ---- */
        mov     $1, %ebx
next_report:
        cmp     ncpus, %ebx
        jae     reports_done
        movl    $0, reported
        movl    $CMD_REPORT, cmd(,%ebx,4)
        mov     %ebx, %eax
        mov     $VEC_WAKE, %edx
        call    send_ipi
        movl    $0, pit_ticks
wait_report:
        cli
        movl    $wait_report, resume
        cmpl    $0, reported
        jne     1f
        cmpl    $GIVE_UP, pit_ticks
        mov     $msg_fail_report, %esi
        jae     fail
        sti
        hlt
        jmp     wait_report
1:      inc     %ebx
        jmp     next_report
reports_done:
        mov     $0xff, %al                      /* PIT off: mask the 8259s */
        out     %al, $PIC1_DATA
        out     %al, $PIC2_DATA
        call    lock
        mov     $msg_done, %esi
        call    puts
        call    unlock
        mov     $EXIT_OK, %eax
        jmp     exit_qemu

/* %esi: message. Prints it (taking the lock, unless this CPU holds it)
 * and exits with the failure status. */
fail:
        cli
        call    cpu_id
        cmp     lock_owner, %eax
        je      1f
        call    lock
1:      call    puts
        mov     $EXIT_FAIL, %eax
exit_qemu:
#ifdef KRUN
        mov     $0xfe, %al                      /* i8042: pulse reset */
        out     %al, $0x64
#else
        out     %eax, $EXIT_PORT
#endif
2:      cli
        hlt
        jmp     2b

/* ---- the APs ---- */

/* Real mode at 0x8000 (CS = 0x0800), copied there by the BSP. */
        .code16
trampoline:
        cli
        mov     %cs, %ax
        mov     %ax, %ds
        lgdtl   tramp_gdt_desc - trampoline
        mov     %cr0, %eax
        or      $1, %eax
        mov     %eax, %cr0
        ljmpl   $0x08, $ap_entry32
        .balign 4
tramp_gdt_desc:
        .word   gdt_end - gdt - 1
        .long   gdt
trampoline_end:
        .code32

ap_entry32:
        mov     $0x10, %ax
        mov     %ax, %ds
        mov     %ax, %es
        mov     %ax, %ss
        mov     %ax, %fs
        mov     %ax, %gs
        mov     LAPIC_ID, %eax
        shr     $24, %eax
        cmp     $MAX_CPUS, %eax
        jb      1f
        mov     $MAX_CPUS - 1, %eax             /* a bad ID: fail below */
1:      mov     %eax, %esp
        inc     %esp
        shl     $12, %esp
        add     $stacks, %esp
        cld
        lidt    idt_desc
        movl    $0x100 | VEC_SPURIOUS, LAPIC_SVR
        movl    $0x10000, LAPIC_LVT_LINT0       /* masked: the 8259 is the BSP's */
        movl    $0x10000, LAPIC_LVT_LINT1
        movl    $0x10000, LAPIC_LVT_ERR
        call    cpu_id
        cmp     starting, %eax
        mov     $msg_fail_ap_id, %esi
        jne     fail
        call    lock
        mov     $msg_cpu, %esi
        call    puts
        call    put_dec
        mov     $msg_ap_up, %esi
        call    puts
        call    put_dec
        call    newline
        call    unlock
        lock incl cpus_up
        /* fall through */

/* The AP's idle loop: sleeps until an IPI, then does what cmd[cpu] says. */
ap_loop:
        cli
        call    cpu_id
        movl    $ap_loop, resume(,%eax,4)
        mov     cmd(,%eax,4), %ebx
        movl    $0, cmd(,%eax,4)
        cmp     $CMD_TIMER, %ebx
        je      ap_timer
        cmp     $CMD_REPORT, %ebx
        je      ap_report
        sti
        hlt
        jmp     ap_loop

ap_timer:
        movl    $0, lapic_ticks(,%eax,4)
        call    lapic_timer_start
ap_timer_wait:
        cli
        call    cpu_id
        movl    $ap_timer_wait, resume(,%eax,4)
        cmpl    $TIMER_WANTED, lapic_ticks(,%eax,4)
        jae     1f
        sti
        hlt
        jmp     ap_timer_wait
1:      call    lapic_timer_stop
        lock incl timers_done
        jmp     ap_loop

ap_report:
        call    lock
        call    print_timer_line
        call    unlock
        movl    $1, reported
        jmp     ap_loop

/* ---- helpers (interrupts off) ---- */

#ifdef KRUN
/* Returns in %eax the number of enabled processors of the MP table (0 when
 * there is none): the floating pointer ("_MP_") in the last KiB of base
 * memory or in 0xf0000-0xfffff, then its configuration table ("PCMP"),
 * whose processor entries (type 0) are 20 bytes long and the others 8.
 * The entries are walked by the table's length, as Linux does: libkrun
 * leaves the entry count at 0. */
mp_count_cpus:
        push    %ebx
        push    %ecx
        push    %esi
        mov     $0x9fc00, %esi
        mov     $0xa0000, %ecx
        call    mp_find
        jnc     1f
        mov     $0xf0000, %esi
        mov     $0x100000, %ecx
        call    mp_find
        jc      8f
1:      mov     4(%esi), %esi                   /* the configuration table */
        cmpl    $0x504d4350, (%esi)             /* "PCMP" */
        jne     8f
        movzwl  4(%esi), %ecx                   /* base table length */
        add     %esi, %ecx                      /* its end */
        add     $0x2c, %esi
        xor     %eax, %eax
2:      cmp     %ecx, %esi
        jae     9f
        cmpb    $0, (%esi)
        jne     3f
        testb   $1, 3(%esi)                     /* CPU flags: enabled */
        jz      4f
        inc     %eax
4:      add     $20, %esi
        jmp     2b
3:      add     $8, %esi
        jmp     2b
8:      xor     %eax, %eax
9:      pop     %esi
        pop     %ecx
        pop     %ebx
        ret

/* Looks for "_MP_" on 16-byte boundaries in [%esi, %ecx): found, CF clear
 * and %esi at it; else CF set. */
mp_find:
1:      cmp     %ecx, %esi
        jae     2f
        cmpl    $0x5f504d5f, (%esi)
        je      3f
        add     $16, %esi
        jmp     1b
2:      stc
        ret
3:      clc
        ret
#endif

/* Returns this CPU's local APIC ID in %eax. */
cpu_id:
        mov     LAPIC_ID, %eax
        shr     $24, %eax
        ret

lock:
        push    %eax
1:      lock btsl $0, print_lock
        jnc     2f
        pause
        jmp     1b
2:      call    cpu_id
        mov     %eax, lock_owner
        pop     %eax
        ret

unlock:
        movl    $-1, lock_owner
        movl    $0, print_lock
        ret

/* %eax: low ICR word (the high word is already written). Waits until the
 * local APIC has sent it. */
send_icr:
        mov     %eax, LAPIC_ICR_LO
1:      testl   $0x1000, LAPIC_ICR_LO
        jz      2f
        pause
        jmp     1b
2:      ret

/* %eax: destination APIC ID, %edx: vector. A fixed IPI, physical mode. */
send_ipi:
        push    %eax
        shl     $24, %eax
        mov     %eax, LAPIC_ICR_HI
        mov     %edx, %eax
        or      $0x4000, %eax
        call    send_icr
        pop     %eax
        ret

lapic_timer_start:
        movl    $0x3, LAPIC_TIMER_DCR           /* divide by 16 */
        movl    $0x20000 | VEC_TIMER, LAPIC_LVT_TIMER   /* periodic */
        movl    $62500, LAPIC_TIMER_ICR         /* 1 ms at KVM's 1 GHz bus */
        ret

lapic_timer_stop:
        movl    $0x10000 | VEC_TIMER, LAPIC_LVT_TIMER
        movl    $0, LAPIC_TIMER_ICR
        ret

/* %eax: CPU. "cpu N: lapic timer: at least 5 interrupts" (lock held). */
print_timer_line:
        mov     $msg_cpu, %esi
        call    puts
        call    put_dec
        mov     $msg_lapic, %esi
        call    puts
        ret

/* ---- interrupt handlers: drop the frame, resume the CPU's wait loop ---- */

/* Every vector points at its stub (unexpected); the used ones get real
 * handlers. */
idt_init:
        xor     %ecx, %ecx
1:      mov     %ecx, %edx
        shl     $4, %edx
        add     $vector_stubs, %edx
        mov     %ecx, %eax
        call    set_gate
        inc     %ecx
        cmp     $256, %ecx
        jb      1b
        mov     $VEC_PIT, %eax
        mov     $pit_handler, %edx
        call    set_gate
        mov     $VEC_PIT + 7, %eax
        mov     $spurious_master, %edx
        call    set_gate
        mov     $VEC_PIT + 15, %eax
        mov     $spurious_slave, %edx
        call    set_gate
        mov     $VEC_WAKE, %eax
        mov     $wake_handler, %edx
        call    set_gate
        mov     $VEC_RING, %eax
        mov     $ring_handler, %edx
        call    set_gate
        mov     $VEC_TIMER, %eax
        mov     $timer_handler, %edx
        call    set_gate
        mov     $VEC_SPURIOUS, %eax
        mov     $spurious_lapic, %edx
        call    set_gate
        ret

/* %eax: vector, %edx: handler. 32-bit interrupt gate, selector 0x08. */
set_gate:
        push    %edi
        lea     idt(,%eax,8), %edi
        mov     %dx, (%edi)
        movw    $0x08, 2(%edi)
        movw    $0x8e00, 4(%edi)
        shr     $16, %edx
        mov     %dx, 6(%edi)
        pop     %edi
        ret

pit_handler:
        add     $12, %esp
        incl    pit_ticks
        mov     $0x20, %al
        out     %al, $PIC1_CMD
        jmp     resume_loop

timer_handler:
        add     $12, %esp
        call    cpu_id
        incl    lapic_ticks(,%eax,4)
        movl    $0, LAPIC_EOI
        jmp     resume_loop

wake_handler:
        add     $12, %esp
        movl    $0, LAPIC_EOI
        jmp     resume_loop

/* The token: print who sent it, pass it on (CPU 0 ends the ring). */
ring_handler:
        add     $12, %esp
        movl    $0, LAPIC_EOI
        call    lock
        mov     $msg_cpu, %esi
        call    puts
        call    cpu_id
        call    put_dec
        mov     $msg_ring, %esi
        call    puts
        mov     ring_from, %eax
        call    put_dec
        call    newline
        call    unlock
        call    cpu_id
        test    %eax, %eax
        jnz     1f
        movl    $1, ring_done
        jmp     resume_loop
1:      mov     %eax, ring_from
        inc     %eax
        cmp     ncpus, %eax
        jb      2f
        xor     %eax, %eax
2:      mov     $VEC_RING, %edx
        call    send_ipi
        jmp     resume_loop

spurious_lapic:
        add     $12, %esp
        jmp     resume_loop

spurious_master:
        add     $12, %esp
        jmp     resume_loop

spurious_slave:
        add     $12, %esp
        mov     $0x20, %al
        out     %al, $PIC1_CMD
        jmp     resume_loop

resume_loop:
        call    cpu_id
        jmp     *resume(,%eax,4)

unexpected:
        /* the stub pushed the vector (exceptions may have pushed more) */
        mov     (%esp), %ebx
        call    cpu_id
        cmp     lock_owner, %eax
        je      1f
        call    lock
1:      mov     $msg_cpu, %esi
        call    puts
        call    put_dec
        mov     $msg_unexpected, %esi
        call    puts
        mov     %ebx, %eax
        call    put_hex32
        call    newline
        mov     $msg_fail_unexpected, %esi
        jmp     fail

        .balign 16
vector_stubs:
        .set    vec, 0
        .rept   256
        .balign 16
        pushl   $vec
        jmp     unexpected
        .set    vec, vec + 1
        .endr

/* ---- 8259 and PIT ---- */

pic_init:
        mov     $0x11, %al              /* ICW1: edge, cascade, ICW4 */
        out     %al, $PIC1_CMD
        out     %al, $PIC2_CMD
        mov     $VEC_PIT, %al           /* ICW2: vector bases */
        out     %al, $PIC1_DATA
        mov     $VEC_PIT + 8, %al
        out     %al, $PIC2_DATA
        mov     $0x04, %al              /* ICW3: slave on IRQ2 */
        out     %al, $PIC1_DATA
        mov     $0x02, %al
        out     %al, $PIC2_DATA
        mov     $0x01, %al              /* ICW4: 8086 mode */
        out     %al, $PIC1_DATA
        out     %al, $PIC2_DATA
        mov     $0xfe, %al              /* master: IRQ0 only */
        out     %al, $PIC1_DATA
        mov     $0xff, %al
        out     %al, $PIC2_DATA
        ret

pit_init:
        mov     $0x34, %al              /* channel 0, lo/hi, mode 2 */
        out     %al, $PIT_CMD
        mov     $0xa9, %al              /* 1193: ~1 kHz */
        out     %al, $PIT_CH0
        mov     $0x04, %al
        out     %al, $PIT_CH0
        ret

#include "serial.inc"

/* %eax: 0..99, in decimal. */
put_dec:
        push    %eax
        push    %edx
        push    %ecx
        xor     %edx, %edx
        mov     $10, %ecx
        div     %ecx
        test    %eax, %eax
        jz      1f
        add     $'0', %al
        call    putc
1:      mov     %dl, %al
        add     $'0', %al
        call    putc
        pop     %ecx
        pop     %edx
        pop     %eax
        ret

/* ---- data ---- */

        .data
        .balign 8
gdt:
        .quad   0
        .quad   0x00cf9a000000ffff      /* 0x08: code, flat, 32-bit */
        .quad   0x00cf92000000ffff      /* 0x10: data, flat */
gdt_end:
gdt_desc:
        .word   gdt_end - gdt - 1
        .long   gdt
idt_desc:
        .word   256 * 8 - 1
        .long   idt
#ifdef KRUN
gdt_desc64:
        .word   gdt_end - gdt - 1
        .quad   gdt
#endif
lock_owner:     .long -1

msg_hello:      .asciz "kvmng smp guest: start\n"
msg_fwcfg:      .asciz "fw_cfg: "
msg_mptable:    .asciz "mp table: "
msg_cpus:       .asciz " cpus\n"
msg_bsp:        .asciz "cpu 0: bootstrap processor, apic id 0\n"
msg_cpu:        .asciz "cpu "
msg_ap_up:      .asciz ": up after INIT/SIPI, apic id "
msg_all:        .asciz "all "
msg_up:         .asciz " cpus up\n"
msg_ring:       .asciz ": ipi 0x41 from cpu "
msg_pit:        .asciz "cpu 0: pit irq0 via 8259: at least 10 interrupts\n"
msg_lapic:      .asciz ": lapic timer: at least 5 interrupts\n"
msg_done:       .asciz "kvmng smp guest: done\n"
msg_unexpected: .asciz ": unexpected interrupt or exception, vector "
msg_fail_magic: .asciz "FAIL: not started by a multiboot loader\n"
msg_fail_ncpus: .asciz "FAIL: cpu count out of range 1..8\n"
msg_fail_bsp_id: .asciz "FAIL: the BSP's apic id is not 0\n"
msg_fail_ap:    .asciz "FAIL: an AP did not come up after INIT/SIPI\n"
msg_fail_ap_id: .asciz "FAIL: an AP with an unexpected apic id\n"
msg_fail_ring:  .asciz "FAIL: the IPI ring did not come back to cpu 0\n"
msg_fail_lapic: .asciz "FAIL: local APIC timers did not reach 5 interrupts on every cpu\n"
msg_fail_pit:   .asciz "FAIL: no PIT interrupts while the local APIC timer ticked\n"
msg_fail_report: .asciz "FAIL: an AP did not report\n"
msg_fail_unexpected: .asciz "FAIL: unexpected vector\n"

        .bss
        .balign 8
idt:            .space 256 * 8
boot_magic:     .space 4
ncpus:          .space 4
cpus_up:        .space 4
starting:       .space 4
sipis_sent:     .space 4
print_lock:     .space 4
pit_ticks:      .space 4
ring_from:      .space 4
ring_done:      .space 4
timers_done:    .space 4
reported:       .space 4
resume:         .space 4 * MAX_CPUS
cmd:            .space 4 * MAX_CPUS
lapic_ticks:    .space 4 * MAX_CPUS
        .balign 4096
stacks:         .space STACK_SIZE * MAX_CPUS

        .section .note.GNU-stack, "", @progbits
