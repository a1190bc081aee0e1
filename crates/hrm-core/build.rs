//! Build script: records the libtorch that torch-sys linked as a run-time search path, so this
//! crate's tests, benches and binaries start without `LD_LIBRARY_PATH`.
//!
//! Every crate of the workspace that links libtorch carries this same file: a build script
//! cannot share code with another crate's without a published build dependency, and these
//! crates must package on their own.

fn main() {
    println!("cargo:rerun-if-env-changed=DEP_TCH_LIBTORCH_LIB");
    let os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    // torch-sys reports the directory (its `links = "tch"` key) to direct dependents only.
    let (true, Ok(dir)) = (
        os == "linux" || os == "macos",
        std::env::var("DEP_TCH_LIBTORCH_LIB"),
    ) else {
        return;
    };
    // Resolve the `.libtorch` link of `cargo xtask setup`: binaries keep working when copied.
    let dir = std::fs::canonicalize(&dir).unwrap_or_else(|_| dir.into());
    println!("cargo:rustc-link-arg=-Wl,-rpath,{}", dir.display());
    // No symbol of ours names libtorch_cuda, so `--as-needed` would drop it and CUDA would never
    // register: keep it linked wherever this libtorch ships it.
    if os == "linux" && dir.join("libtorch_cuda.so").exists() {
        println!("cargo:rustc-link-arg=-Wl,--no-as-needed,-ltorch_cuda,--as-needed");
    }
}
