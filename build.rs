//! Links the bare-metal binary with linker.ld; hosted builds (unit tests) need nothing.
//!
//! warden is linked as a static position-independent executable: boot/entry.S applies its
//! R_AARCH64_RELATIVE relocations for the address it was loaded at, so one image runs at any
//! 2 MiB-aligned address (see the README, "Load address"). `-z notext` lets read-only data
//! (vtables) carry relocations: they are applied before the MMU makes it read-only.
fn main() {
    println!("cargo:rerun-if-changed=linker.ld");
    println!("cargo:rerun-if-changed=boot/entry.S");
    println!("cargo:rerun-if-changed=boot/vectors.S");
    if std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("none") {
        let dir = std::env::var("CARGO_MANIFEST_DIR").unwrap();
        println!("cargo:rustc-link-arg-bins=-T{dir}/linker.ld");
        println!("cargo:rustc-link-arg-bins=-pie");
        println!("cargo:rustc-link-arg-bins=-znotext");
        println!("cargo:rustc-link-arg-bins=--no-dynamic-linker");
    }
}
