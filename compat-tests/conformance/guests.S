/* The guest programs of shim/kvmng-guests/asm, assembled to flat binaries by
 * the Makefile (as shim/kvmng-guests/build.rs does) and embedded here. */
	.section .rodata
	.balign 16
	.globl guest_real_pio, guest_real_pio_end
guest_real_pio:
	.incbin "real_pio.bin"
guest_real_pio_end:
	.balign 16
	.globl guest_real_mmio, guest_real_mmio_end
guest_real_mmio:
	.incbin "real_mmio.bin"
guest_real_mmio_end:
	.balign 16
	.globl guest_pio_loop, guest_pio_loop_end
guest_pio_loop:
	.incbin "pio_loop.bin"
guest_pio_loop_end:
	.section .note.GNU-stack,"",@progbits
