/*
 * devices.S: a multiboot v1 guest for `kvmng-compat qemu`.
 *
 * QEMU loads it with -kernel (a 32-bit ELF with a multiboot header) after
 * SeaBIOS, and enters it in 32-bit protected mode, paging off. It exercises
 * QEMU's emulated devices and prints what it found on COM1:
 *
 *   - serial 16550 at 0x3f8 (port I/O out, and in: the line status, and a
 *     byte sent through the UART's loopback mode);
 *   - CMOS/RTC (userspace in QEMU): the extended-memory size bytes, then the
 *     RTC periodic interrupt on IRQ8 (through the slave 8259);
 *   - PIT channel 0 on IRQ0 (in the kernel with KVM's in-kernel irqchip, in
 *     QEMU with kernel-irqchip=off), counted with sti/hlt;
 *   - HPET (userspace in QEMU) at 0xFED00000: capabilities by MMIO read,
 *     main counter enabled by MMIO write and seen to advance;
 *   - VGA text memory at 0xB8000 (MMIO into QEMU's VGA): write, read back.
 *
 * It ends by writing to isa-debug-exit (port 0xf4): QEMU exits with status
 * (v << 1) | 1, i.e. 33 on success (v = 0x10), 35 on failure (v = 0x11).
 * Output must be deterministic: it never prints counts that depend on timing.
 *
 * Build (what kvmng-compat does):
 *   gcc -m32 -c -nostdinc -o devices.o devices.S
 *   ld -m elf_i386 -nostdlib -Ttext=0x100000 -e _start --build-id=none \
 *      -z noexecstack -z max-page-size=0x1000 -o devices.elf devices.o
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
#define CMOS_IDX        0x70
#define CMOS_DATA       0x71
#define HPET_BASE       0xfed00000
#define VGA_TEXT        0xb8000
#define IRQ0_VECTOR     0x20
#define IRQ8_VECTOR     0x28
#define IRQ0_WANTED     10
#define IRQ8_WANTED     5
#define GIVE_UP         2000    /* interrupts of one kind while waiting for the other */
#define MB_MAGIC        0x1badb002
#define MB_FLAGS        0
#define MB_BOOT_MAGIC   0x2badb002

        .code32
        .text
        .globl _start

        .align 4
multiboot_header:
        .long MB_MAGIC
        .long MB_FLAGS
        .long -(MB_MAGIC + MB_FLAGS)

_start:
        cli
        cld
        mov     $stack_top, %esp
        mov     %eax, boot_magic
        mov     %ebx, boot_info

        /* Our own GDT: flat code 0x08, flat data 0x10. */
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

        /* Multiboot: magic and mem_upper (KiB above 1 MiB). */
        cmpl    $MB_BOOT_MAGIC, boot_magic
        jne     fail_magic
        mov     boot_info, %ebx
        testl   $1, (%ebx)
        jz      fail_magic
        mov     $msg_mb, %esi
        call    puts
        mov     8(%ebx), %eax
        call    put_hex32
        call    newline

        /* UART: line status says the transmitter is idle; loopback a byte. */
        call    uart_loopback

        /* CMOS 0x34/0x35: RAM above 16 MiB in 64 KiB units. */
        mov     $0x35, %al
        call    cmos_read
        movzbl  %al, %ebx
        shl     $8, %ebx
        mov     $0x34, %al
        call    cmos_read
        mov     %al, %bl
        mov     $msg_cmos, %esi
        call    puts
        mov     %ebx, %eax
        call    put_hex32
        call    newline

        /* HPET: capabilities (MMIO read), then run the counter (MMIO write). */
        call    hpet_check

        /* VGA text memory: write a word, read it back. */
        call    vga_check

        /* Interrupts: IDT, PICs, PIT at ~100 Hz, RTC periodic at 64 Hz. */
        call    idt_init
        call    pic_init
        call    pit_init
        call    rtc_periodic_on
wait_irqs:
        /* Interrupts are enabled only across this sti;hlt, and every handler
         * drops its frame and jumps back here instead of returning: this
         * host's software KVM (PVM) cannot emulate a 32-bit IRET (KVM
         * internal error, emulation failure), and nothing needs one. */
        cli
        mov     irq0_count, %eax
        mov     irq8_count, %edx
        cmp     $IRQ0_WANTED, %eax
        jb      1f
        cmp     $IRQ8_WANTED, %edx
        jae     irqs_done
        cmp     $GIVE_UP, %eax
        jae     fail_irq8
        jmp     2f
1:      cmp     $GIVE_UP, %edx
        jae     fail_irq0
2:      sti
        hlt
        jmp     wait_irqs
irqs_done:
        cli
        call    rtc_periodic_off
        mov     $0xff, %al
        out     %al, $PIC1_DATA
        out     %al, $PIC2_DATA
        mov     $msg_irq0, %esi
        call    puts
        mov     $msg_irq8, %esi
        call    puts

        mov     $msg_done, %esi
        call    puts
        mov     $EXIT_OK, %eax
        jmp     exit_qemu

fail_magic:
        mov     $msg_fail_magic, %esi
        jmp     fail
fail_irq0:
        mov     $msg_fail_irq0, %esi
        jmp     fail
fail_irq8:
        mov     $msg_fail_irq8, %esi
        jmp     fail
/* %esi: message. Prints it and exits with the failure status. */
fail:
        cli
        call    puts
        mov     $EXIT_FAIL, %eax
exit_qemu:
        out     %eax, $EXIT_PORT
        /* Not reached when isa-debug-exit is present. */
2:      cli
        hlt
        jmp     2b

#include "serial.inc"

uart_loopback:
        mov     $COM1 + 5, %dx          /* LSR: THR empty and transmitter idle */
        in      %dx, %al
        and     $0x60, %al
        cmp     $0x60, %al
        jne     1f
        mov     $COM1 + 4, %dx          /* MCR: loopback */
        mov     $0x1b, %al
        out     %al, %dx
        mov     $COM1, %dx
        mov     $0xa5, %al
        out     %al, %dx
        mov     $COM1 + 5, %dx
        mov     $100000, %ecx
2:      in      %dx, %al
        test    $0x01, %al              /* data ready */
        jnz     3f
        loop    2b
        jmp     4f
3:      mov     $COM1, %dx
        in      %dx, %al
        mov     %al, %bl
        mov     $COM1 + 4, %dx          /* MCR back to normal */
        mov     $0x0b, %al
        out     %al, %dx
        cmp     $0xa5, %bl
        jne     1f
        mov     $msg_uart_ok, %esi
        call    puts
        ret
4:      mov     $COM1 + 4, %dx
        mov     $0x0b, %al
        out     %al, %dx
1:      mov     $msg_fail_uart, %esi
        jmp     fail

/* ---- CMOS / RTC ---- */

/* %al: register (NMI stays enabled). Returns the value in %al. */
cmos_read:
        out     %al, $CMOS_IDX
        in      $CMOS_DATA, %al
        ret

rtc_periodic_on:
        mov     $0x8a, %al              /* register A, rate 10: 64 Hz */
        out     %al, $CMOS_IDX
        in      $CMOS_DATA, %al
        and     $0xf0, %al
        or      $0x0a, %al
        mov     %al, %ah
        mov     $0x8a, %al
        out     %al, $CMOS_IDX
        mov     %ah, %al
        out     %al, $CMOS_DATA
        mov     $0x8b, %al              /* register B: periodic interrupt enable */
        out     %al, $CMOS_IDX
        in      $CMOS_DATA, %al
        or      $0x40, %al
        mov     %al, %ah
        mov     $0x8b, %al
        out     %al, $CMOS_IDX
        mov     %ah, %al
        out     %al, $CMOS_DATA
        mov     $0x0c, %al              /* register C: clear pending flags */
        out     %al, $CMOS_IDX
        in      $CMOS_DATA, %al
        ret

rtc_periodic_off:
        mov     $0x8b, %al
        out     %al, $CMOS_IDX
        in      $CMOS_DATA, %al
        and     $0xbf, %al
        mov     %al, %ah
        mov     $0x8b, %al
        out     %al, $CMOS_IDX
        mov     %ah, %al
        out     %al, $CMOS_DATA
        mov     $0x0c, %al
        out     %al, $CMOS_IDX
        in      $CMOS_DATA, %al
        ret

/* ---- HPET ---- */

hpet_check:
        mov     $msg_hpet_id, %esi
        call    puts
        mov     HPET_BASE, %eax         /* capabilities: vendor, timers, rev */
        call    put_hex32
        mov     $msg_hpet_period, %esi
        call    puts
        mov     HPET_BASE + 4, %eax     /* counter period in femtoseconds */
        call    put_hex32
        call    newline
        cmpl    $0, HPET_BASE + 4
        je      9f
        movl    $1, HPET_BASE + 0x10    /* general configuration: ENABLE_CNF */
        mov     HPET_BASE + 0xf0, %ebx  /* main counter, low half */
        mov     $200, %ecx              /* let some time pass (port I/O exits) */
1:      mov     $COM1 + 5, %dx
        in      %dx, %al
        loop    1b
        mov     HPET_BASE + 0xf0, %eax
        movl    $0, HPET_BASE + 0x10
        cmp     %ebx, %eax
        je      9f
        mov     $msg_hpet_runs, %esi
        call    puts
        ret
9:      mov     $msg_fail_hpet, %esi
        jmp     fail

/* ---- VGA ---- */

vga_check:
        mov     $VGA_TEXT, %edi
        movw    (%edi), %bx             /* keep what was there */
        movw    $0x1f4b, (%edi)         /* 'K', white on blue */
        movw    (%edi), %ax
        movw    %bx, (%edi)
        cmp     $0x1f4b, %ax
        jne     1f
        mov     $msg_vga_ok, %esi
        call    puts
        ret
1:      mov     $msg_fail_vga, %esi
        jmp     fail

/* ---- interrupts ---- */

/* Every vector points at its stub (unexpected); IRQ0, IRQ8 and the
 * spurious IRQ7/IRQ15 get real handlers. */
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
        mov     $IRQ0_VECTOR, %eax
        mov     $irq0_handler, %edx
        call    set_gate
        mov     $IRQ0_VECTOR + 7, %eax
        mov     $spurious_master, %edx
        call    set_gate
        mov     $IRQ8_VECTOR, %eax
        mov     $irq8_handler, %edx
        call    set_gate
        mov     $IRQ8_VECTOR + 7, %eax
        mov     $spurious_slave, %edx
        call    set_gate
        lidt    idt_desc
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

pic_init:
        mov     $0x11, %al              /* ICW1: edge, cascade, ICW4 */
        out     %al, $PIC1_CMD
        out     %al, $PIC2_CMD
        mov     $IRQ0_VECTOR, %al       /* ICW2: vector bases */
        out     %al, $PIC1_DATA
        mov     $IRQ8_VECTOR, %al
        out     %al, $PIC2_DATA
        mov     $0x04, %al              /* ICW3: slave on IRQ2 */
        out     %al, $PIC1_DATA
        mov     $0x02, %al
        out     %al, $PIC2_DATA
        mov     $0x01, %al              /* ICW4: 8086 mode */
        out     %al, $PIC1_DATA
        out     %al, $PIC2_DATA
        mov     $0xfa, %al              /* master: IRQ0 and the cascade */
        out     %al, $PIC1_DATA
        mov     $0xfe, %al              /* slave: IRQ8 */
        out     %al, $PIC2_DATA
        ret

pit_init:
        mov     $0x34, %al              /* channel 0, lo/hi, mode 2 */
        out     %al, $PIT_CMD
        mov     $0x9c, %al              /* 11932: ~100 Hz */
        out     %al, $PIT_CH0
        mov     $0x2e, %al
        out     %al, $PIT_CH0
        ret

/* Handlers run only from the hlt in wait_irqs (see there): each drops the
 * 12-byte frame (EIP, CS, EFLAGS; same privilege, no error code) and goes
 * back to the loop with interrupts off. */
irq0_handler:
        add     $12, %esp
        incl    irq0_count
        mov     $0x20, %al
        out     %al, $PIC1_CMD
        jmp     wait_irqs

irq8_handler:
        add     $12, %esp
        incl    irq8_count
        mov     $0x0c, %al              /* read register C: acknowledges the RTC */
        out     %al, $CMOS_IDX
        in      $CMOS_DATA, %al
        mov     $0x20, %al
        out     %al, $PIC2_CMD
        out     %al, $PIC1_CMD
        jmp     wait_irqs

spurious_master:
        add     $12, %esp
        jmp     wait_irqs

spurious_slave:
        add     $12, %esp
        mov     $0x20, %al
        out     %al, $PIC1_CMD
        jmp     wait_irqs

unexpected:
        /* the stub pushed the vector (exceptions may have pushed more) */
        mov     (%esp), %ebx
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

/* ---- data ---- */

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

msg_hello:      .asciz "kvmng devices guest: start\n"
msg_mb:         .asciz "multiboot: ok, mem_upper KiB = "
msg_uart_ok:    .asciz "uart: line status idle, loopback byte 0xa5 read back\n"
msg_cmos:       .asciz "cmos: RAM above 16 MiB in 64 KiB units = "
msg_hpet_id:    .asciz "hpet: capabilities = "
msg_hpet_period: .asciz ", period fs = "
msg_hpet_runs:  .asciz "hpet: main counter advances\n"
msg_vga_ok:     .asciz "vga: text memory write/read back ok\n"
msg_irq0:       .asciz "irq0 (pit): at least 10 interrupts\n"
msg_irq8:       .asciz "irq8 (rtc periodic): at least 5 interrupts\n"
msg_done:       .asciz "kvmng devices guest: done\n"
msg_unexpected: .asciz "unexpected interrupt or exception, vector "
msg_fail_magic: .asciz "FAIL: not started by a multiboot loader\n"
msg_fail_uart:  .asciz "FAIL: uart loopback\n"
msg_fail_hpet:  .asciz "FAIL: hpet absent or its counter does not run\n"
msg_fail_vga:   .asciz "FAIL: vga text memory did not read back\n"
msg_fail_irq0:  .asciz "FAIL: no timer interrupts (irq0) while the rtc ticked\n"
msg_fail_irq8:  .asciz "FAIL: no rtc interrupts (irq8) while the timer ticked\n"
msg_fail_unexpected: .asciz "FAIL: unexpected vector\n"

        .bss
        .balign 8
idt:            .space 256 * 8
boot_magic:     .space 4
boot_info:      .space 4
irq0_count:     .space 4
irq8_count:     .space 4
        .balign 16
stack:          .space 16384
stack_top:

        .section .note.GNU-stack, "", @progbits
