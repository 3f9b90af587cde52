//! The build script of every el1kit client (its Cargo.toml names this file as `build`):
//! links the bare-metal binary with the client's linker.ld, which INCLUDEs el1kit's
//! image.ld; hosted builds (unit tests) need nothing.
fn main() {
    let client = std::env::var("CARGO_MANIFEST_DIR").unwrap();
    let kit = format!("{client}/../el1kit");
    println!("cargo:rerun-if-changed=linker.ld");
    println!("cargo:rerun-if-changed={kit}/image.ld");
    if std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("none") {
        println!("cargo:rustc-link-arg-bins=-T{client}/linker.ld");
        println!("cargo:rustc-link-arg-bins=-L{kit}");
    }
}
