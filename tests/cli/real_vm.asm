; A test guest for tests/cli/real_vm.rs: one boot sector, assembled with nasm
; at test time (`nasm -f bin -DLBA=… -DCOUNT=… …`, see `Guest` there).
; It writes COUNT sectors filled with PATTERN (repeated), CALLS times at
; consecutive LBAs from LBA, with BIOS int 13h AH=43h (extended write, the
; boot drive from DL), then powers the VM off through APM (int 15h).
;   COUNTER=1   first increments byte 0 of sector COUNTER_LBA (a boot counter)
;               and puts the new value into PATTERN's last byte, so each
;               session writes its own pattern
;   WAIT_KEY=1  waits for a key (int 16h) between the writes and the power-off,
;               so that a test can look at the disks while the guest runs
; A failed disk call powers off at once (the test then misses the pattern).
bits 16
org 0x7c00
%define BUF_SEG 0x1000
start:
    cli
    xor ax, ax
    mov ds, ax
    mov ss, ax
    mov sp, 0x7c00
    sti
    mov [drive], dl
%if COUNTER
    mov word [dap_count], 1
    mov dword [dap_lba], COUNTER_LBA
    mov ah, 0x42
    call disk
    push es
    mov ax, BUF_SEG
    mov es, ax
    inc byte [es:0]
    mov al, [es:0]
    pop es
    mov [pattern_end - 1], al
    mov ah, 0x43
    call disk
    mov word [dap_count], COUNT
    mov dword [dap_lba], LBA
%endif
    ; COUNT sectors of the pattern at BUF_SEG:0
    mov ax, BUF_SEG
    mov es, ax
    xor di, di
    xor bx, bx
    mov cx, COUNT * 512
.fill:
    mov al, [pattern + bx]
    stosb
    inc bx
    cmp bx, pattern_end - pattern
    jb .next
    xor bx, bx
.next:
    loop .fill
    mov si, CALLS
.write:
    mov ah, 0x43
    call disk
    add dword [dap_lba], COUNT
    dec si
    jnz .write
%if WAIT_KEY
    xor ax, ax
    int 0x16
%endif
off:
    mov ax, 0x5301          ; APM: connect real-mode interface
    xor bx, bx
    int 0x15
    mov ax, 0x530e          ; APM: driver version 1.2
    xor bx, bx
    mov cx, 0x0102
    int 0x15
    mov ax, 0x5307          ; APM: set power state: all devices off
    mov bx, 1
    mov cx, 3
    int 0x15
.hang:
    hlt
    jmp .hang

; int 13h extended read (AH=42h) or write (AH=43h, AL=0) of the DAP
disk:
    push si
    mov al, 0
    mov si, dap
    mov dl, [drive]
    int 0x13
    pop si
    jc off
    ret

drive: db 0
align 4
dap: db 16, 0
dap_count: dw COUNT
    dw 0, BUF_SEG
dap_lba: dq LBA
pattern: db PATTERN
pattern_end:
times 510 - ($ - $$) db 0
dw 0xaa55
