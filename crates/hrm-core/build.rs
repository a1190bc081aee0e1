//! Build script of hrm-core: compiles the fused CPU kernels (`cpp/fused.cpp`, and the bfloat16
//! attention in `cpp/attention.cpp`) and the CUDA-graph handle (`cpp/cuda_graph.cpp`) against
//! the libtorch that torch-sys linked, and records that libtorch as a run-time search path, so
//! this crate's tests, benches and binaries start without `LD_LIBRARY_PATH`.
//!
//! The CUDA-graph handle is compiled for real where that libtorch has its CUDA libraries and
//! the CUDA runtime headers are found (`CUDA_HOME`, the `nvidia` packages beside a torch wheel,
//! `/usr/local/cuda`); elsewhere it reports at run time that the build has no CUDA graphs.
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
    println!("cargo:rerun-if-changed=cpp/cuda_graph.cpp");
    println!("cargo:rerun-if-env-changed=CUDA_HOME");
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
    let cuda_include = cuda_graph_headers(lib_dir, &include);
    let mut build = cc::Build::new();
    if let Some(cuda) = &cuda_include {
        build.include(cuda).define("HRM_CUDA_GRAPHS", None);
    }
    build
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
        .file("cpp/cuda_graph.cpp")
        .compile("hrm_core_fused");
    // The kernels call into these; listed after the static library for the link order.
    println!("cargo:rustc-link-search=native={}", lib_dir.display());
    if cuda_include.is_some() {
        println!("cargo:rustc-link-lib=dylib=torch_cuda");
        println!("cargo:rustc-link-lib=dylib=c10_cuda");
    }
    println!("cargo:rustc-link-lib=dylib=torch_cpu");
    println!("cargo:rustc-link-lib=dylib=c10");
}

/// The CUDA runtime headers to build the CUDA-graph handle with, when this libtorch has CUDA
/// (its `libtorch_cuda`, `libc10_cuda` and `ATen/cuda/CUDAGraph.h`): `$CUDA_HOME/include`, the
/// `nvidia` packages installed beside a torch wheel (`nvidia/cu13/include`,
/// `nvidia/cuda_runtime/include`), or `/usr/local/cuda/include`, whichever holds the runtime
/// headers with their `crt/` part. `None` builds the handle without CUDA.
fn cuda_graph_headers(
    lib_dir: &std::path::Path,
    torch_include: &std::path::Path,
) -> Option<PathBuf> {
    let has_cuda = ["libtorch_cuda.so", "libc10_cuda.so"]
        .iter()
        .all(|lib| lib_dir.join(lib).exists())
        && torch_include.join("ATen/cuda/CUDAGraph.h").is_file();
    if !has_cuda {
        return None;
    }
    let mut candidates: Vec<PathBuf> = Vec::new();
    if let Ok(home) = env::var("CUDA_HOME") {
        candidates.push(PathBuf::from(home).join("include"));
    }
    // torch/lib -> torch -> site-packages
    if let Some(site) = lib_dir.parent().and_then(std::path::Path::parent) {
        for sub in ["nvidia/cu13/include", "nvidia/cuda_runtime/include"] {
            let dir = site.join(sub);
            if dir.is_dir() {
                // `cargo xtask setup` may add the `crt/` headers later: build again then.
                println!("cargo:rerun-if-changed={}", dir.display());
            }
            candidates.push(dir);
        }
    }
    candidates.push(PathBuf::from("/usr/local/cuda/include"));
    candidates
        .into_iter()
        // `cuda_runtime.h` includes `crt/host_config.h`, which the torch wheel's runtime package
        // leaves out (`cargo xtask setup` installs it).
        .find(|dir| {
            dir.join("cuda_runtime_api.h").is_file() && dir.join("crt/host_config.h").is_file()
        })
}
