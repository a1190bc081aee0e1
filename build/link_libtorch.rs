//! Build script shared by the crates whose tests, examples or binaries link libtorch.
//!
//! torch-sys reports the libtorch library directory it linked against (`DEP_TCH_LIBTORCH_LIB`,
//! from its `links = "tch"` key). Recording that directory as a run-time search path lets the
//! test binaries, the `hrm` binary and the benches start without `LD_LIBRARY_PATH`.

fn main() {
    println!("cargo:rerun-if-env-changed=DEP_TCH_LIBTORCH_LIB");
    let os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    if os != "linux" && os != "macos" {
        return;
    }
    if let Ok(dir) = std::env::var("DEP_TCH_LIBTORCH_LIB") {
        // Resolve the `.libtorch` link made by `cargo xtask setup`, so binaries keep working
        // when copied out of the checkout.
        let dir = std::fs::canonicalize(&dir).unwrap_or_else(|_| dir.into());
        println!("cargo:rustc-link-arg=-Wl,-rpath,{}", dir.display());
        // Nothing in our code names a symbol of libtorch_cuda, so an `--as-needed` linker drops
        // it and CUDA would never register. Keep it whenever this libtorch ships it.
        if os == "linux" && dir.join("libtorch_cuda.so").exists() {
            println!("cargo:rustc-link-arg=-Wl,--no-as-needed");
            println!("cargo:rustc-link-arg=-ltorch_cuda");
            println!("cargo:rustc-link-arg=-Wl,--as-needed");
        }
    }
}
