//! Build script of hrm-core: compiles the fused CPU kernels (`cpp/fused.cpp`, and the bfloat16
//! attention in `cpp/attention.cpp`) against the
//! libtorch that torch-sys linked, and records that libtorch as a run-time search path, so this
//! crate's tests, benches and binaries start without `LD_LIBRARY_PATH`.
//!
//! The rpath part is the same in every crate of the workspace that links libtorch: a build
//! script cannot share code with another crate's without a published build dependency, and
//! these crates must package on their own.

use std::env;
use std::path::PathBuf;

fn main() {
    println!("cargo:rerun-if-env-changed=DEP_TCH_LIBTORCH_LIB");
    println!("cargo:rerun-if-env-changed=LIBTORCH");
    println!("cargo:rerun-if-changed=cpp/fused.cpp");
    println!("cargo:rerun-if-changed=cpp/fused.h");
    println!("cargo:rerun-if-changed=cpp/attention.cpp");
    println!("cargo:rerun-if-changed=cpp/guard.h");
    println!("cargo:rerun-if-changed=cpp/bf16.h");
    let os = env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    if os != "linux" && os != "macos" {
        panic!("hrm-core builds on Linux and macOS only (found target OS `{os}`)");
    }
    let lib_dir = libtorch_lib_dir();
    compile_fused_kernels(&lib_dir);

    println!("cargo:rustc-link-arg=-Wl,-rpath,{}", lib_dir.display());
    // No symbol of ours names libtorch_cuda, so `--as-needed` would drop it and CUDA would never
    // register: keep it linked wherever this libtorch ships it.
    if os == "linux" && lib_dir.join("libtorch_cuda.so").exists() {
        println!("cargo:rustc-link-arg=-Wl,--no-as-needed,-ltorch_cuda,--as-needed");
    }
}

/// The libtorch `lib/` directory: what torch-sys linked against (its `links = "tch"` metadata,
/// seen by direct dependents only), else `$LIBTORCH/lib`, with the `.libtorch` link of
/// `cargo xtask setup` resolved so that binaries keep working when copied.
fn libtorch_lib_dir() -> PathBuf {
    let dir = env::var("DEP_TCH_LIBTORCH_LIB")
        .map(PathBuf::from)
        .or_else(|_| env::var("LIBTORCH").map(|t| PathBuf::from(t).join("lib")))
        .unwrap_or_else(|_| {
            panic!("neither DEP_TCH_LIBTORCH_LIB (from torch-sys) nor LIBTORCH is set; run `cargo xtask setup`")
        });
    std::fs::canonicalize(&dir).unwrap_or(dir)
}

/// `cpp/fused.cpp` and `cpp/attention.cpp` against libtorch's headers, always at `-O3` (the loops must
/// vectorise, whatever the profile) and without floating-point contraction (a fused
/// multiply-add would round `a * b + c * d` differently from libtorch).
fn compile_fused_kernels(lib_dir: &std::path::Path) {
    let include = lib_dir
        .parent()
        .map(|torch| torch.join("include"))
        .filter(|dir| dir.join("ATen/TensorIterator.h").is_file())
        .unwrap_or_else(|| {
            panic!(
                "no ATen headers next to {}: hrm-core needs the headers the torch 2.11.0 wheel \
                 ships (run `cargo xtask setup`)",
                lib_dir.display()
            )
        });
    println!("cargo:rerun-if-env-changed=LIBTORCH_CXX11_ABI");
    let abi = env::var("LIBTORCH_CXX11_ABI").unwrap_or_else(|_| "1".to_string());
    cc::Build::new()
        .cpp(true)
        .pic(true)
        .warnings(false)
        .opt_level(3)
        .include(&include)
        // The autograd headers (`torch/csrc/autograd/custom_function.h`) include from here.
        .include(include.join("torch/csrc/api/include"))
        .flag("-std=c++17")
        .flag("-ffp-contract=off")
        .flag(format!("-D_GLIBCXX_USE_CXX11_ABI={abi}"))
        .file("cpp/fused.cpp")
        .file("cpp/attention.cpp")
        .compile("hrm_core_fused");
    // The kernels call into these; listed after the static library for the link order.
    println!("cargo:rustc-link-search=native={}", lib_dir.display());
    println!("cargo:rustc-link-lib=dylib=torch_cpu");
    println!("cargo:rustc-link-lib=dylib=c10");
}
