/*
 * A 512-byte guest whose one vCPU never stops running: the boot sector
 * SeaBIOS loads at 0x7c00 and jumps to, in 16-bit real mode.
 *
 * It reads the time stamp counter in a tight loop and keeps the largest
 * gap between two reads: the longest time the vCPU was not running guest
 * code (preempted on the host, or in the hypervisor). About every 2^31
 * cycles it writes that gap on the first serial port, as
 * "gap XXXXXXXX\n" (hexadecimal cycles), and starts over. Writing to the
 * port exits to QEMU; the time it takes is not counted.
 *
 * Built at test time with binutils (see tests/hypervisor/spinguest.py):
 *   as --32 -o spin.o spin.S
 *   ld -m elf_i386 -Ttext=0x7c00 --oformat=binary -e _start -o spin.img spin.o
 */
    .code16
    .text
    .globl _start
_start:
    cli
    xor     %ax, %ax
    mov     %ax, %ds
    mov     %ax, %ss
    mov     $0x7c00, %sp
    mov     $0x3f8, %dx             /* COM1 data port */
    mov     $'u', %al
    out     %al, %dx
    mov     $'p', %al
    out     %al, %dx
    mov     $'\n', %al
    out     %al, %dx
    rdtsc
    mov     %eax, %esi              /* previous read */
    mov     %eax, %ebp              /* start of the window */
    xor     %edi, %edi              /* largest gap in the window */
spin:
    rdtsc
    mov     %eax, %ebx
    sub     %esi, %ebx              /* gap since the previous read */
    mov     %eax, %esi
    cmp     %edi, %ebx
    jbe     1f
    mov     %ebx, %edi
1:  mov     %eax, %ebx
    sub     %ebp, %ebx
    cmp     $0x80000000, %ebx       /* window over? */
    jb      spin
    call    report
    xor     %edi, %edi
    rdtsc
    mov     %eax, %esi
    mov     %eax, %ebp
    jmp     spin

/* Write "gap " and %edi as 8 hexadecimal digits and a newline. */
report:
    mov     $0x3f8, %dx
    mov     $'g', %al
    out     %al, %dx
    mov     $'a', %al
    out     %al, %dx
    mov     $'p', %al
    out     %al, %dx
    mov     $' ', %al
    out     %al, %dx
    mov     $8, %cx
    mov     %edi, %ebx
2:  rol     $4, %ebx
    mov     %bl, %al
    and     $0xf, %al
    add     $'0', %al
    cmp     $'9', %al
    jbe     3f
    add     $('a' - '9' - 1), %al
3:  out     %al, %dx
    loop    2b
    mov     $'\n', %al
    out     %al, %dx
    ret

    .org    510
    .word   0xaa55
