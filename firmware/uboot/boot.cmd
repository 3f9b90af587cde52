# warden, the host kernel and its initramfs from the first disk (on a board: mmc 0:1, usb 0:1,
# ...), put where the board's memory map allows; /chosen/module@ nodes tell warden which is
# which (Xen's multiboot convention); booti starts warden with the DT.
setenv warden_addr 0x50000000
setenv host_addr 0x40400000
setenv initrd_addr 0x44000000
setenv dt_addr 0x4a000000
load virtio 0 ${warden_addr} warden.bin
load virtio 0 ${host_addr} Image
setenv host_size 0x${filesize}
load virtio 0 ${initrd_addr} initramfs.cpio.gz
setenv initrd_size 0x${filesize}
fdt addr ${fdtcontroladdr}
fdt move ${fdtcontroladdr} ${dt_addr} 0x100000
fdt set /chosen \#address-cells <2>
fdt set /chosen \#size-cells <2>
fdt mknode /chosen module@40400000
fdt set /chosen/module@40400000 compatible "multiboot,kernel" "multiboot,module"
fdt set /chosen/module@40400000 reg <0x0 ${host_addr} 0x0 ${host_size}>
fdt set /chosen/module@40400000 bootargs "console=ttyAMA0 xtest=1001"
fdt mknode /chosen module@44000000
fdt set /chosen/module@44000000 compatible "multiboot,ramdisk" "multiboot,module"
fdt set /chosen/module@44000000 reg <0x0 ${initrd_addr} 0x0 ${initrd_size}>
booti ${warden_addr} - ${dt_addr}
