//! Build script of hrm-dist: compiles the C++ shim over libtorch's c10d (`cpp/shim.cpp`) with
//! the `cc` crate and records libtorch's library directory as a run-time search path.
//!
//! What gets compiled in depends on the headers found on this machine:
//! - libtorch's own headers, always: `<torch>/include` and `<torch>/include/torch/csrc/api/include`,
//!   where `<torch>` is the parent of the library directory torch-sys linked against
//!   (`DEP_TCH_LIBTORCH_LIB`), or `$LIBTORCH`.
//! - Gloo's headers (`gloo/config.h`; Debian's `libgloo-dev` puts them in `/usr/include`), which
//!   the torch wheel does not ship although its `libtorch_cpu` carries Gloo itself. Found ->
//!   `-DUSE_C10D_GLOO` and `--cfg hrm_dist_gloo`. `GLOO_INCLUDE_DIR` names another directory;
//!   `HRM_DIST_NO_GLOO=1` pretends they are absent (to test that build).
//! - NCCL: `libtorch_cuda` next to `libtorch_cpu`, `nccl.h` (the `nvidia-nccl-cu*` wheel's
//!   `nvidia/nccl/include`, or `NCCL_INCLUDE_DIR`) and the CUDA headers ProcessGroupNCCL.hpp
//!   pulls in: `cuda_runtime.h`, `crt/host_config.h` and CCCL's `nv/target`, searched in
//!   `HRM_DIST_CUDA_INCLUDE` (a path list), `CUDA_HOME/include`, the `nvidia/cu13/include`
//!   wheel directory and `/usr/local/cuda/include`. All found -> `-DUSE_C10D_NCCL` and
//!   `--cfg hrm_dist_nccl`. `HRM_DIST_NO_NCCL=1` turns it off.
//!
//! Without Gloo or NCCL the crate still builds; the missing backend is a run-time error that
//! says what to install. Only headers are taken from Gloo and NCCL: the code that runs is the
//! copy inside libtorch, so no second Gloo or NCCL library is ever linked.
//!
//! The rpath part does what the build scripts of the other crates that link libtorch do (one
//! build script per package, so it is repeated here, not included).

use std::env;
use std::path::{Path, PathBuf};

fn main() {
    println!("cargo:rerun-if-changed=cpp/shim.cpp");
    println!("cargo:rerun-if-changed=cpp/shim.h");
    for var in [
        "DEP_TCH_LIBTORCH_LIB",
        "LIBTORCH",
        "GLOO_INCLUDE_DIR",
        "HRM_DIST_NO_GLOO",
        "CONDA_PREFIX",
        "NCCL_INCLUDE_DIR",
        "CUDA_HOME",
        "HRM_DIST_CUDA_INCLUDE",
        "HRM_DIST_NO_NCCL",
    ] {
        println!("cargo:rerun-if-env-changed={var}");
    }
    println!("cargo::rustc-check-cfg=cfg(hrm_dist_gloo)");
    println!("cargo::rustc-check-cfg=cfg(hrm_dist_nccl)");

    let os = env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    if os != "linux" && os != "macos" {
        panic!("hrm-dist builds on Linux and macOS only (found target OS `{os}`)");
    }
    let lib_dir = libtorch_lib_dir();
    let torch_dir = lib_dir.parent().map(Path::to_path_buf).unwrap_or_else(|| {
        panic!(
            "libtorch library directory {} has no parent",
            lib_dir.display()
        )
    });
    let include = torch_dir.join("include");
    if !include
        .join("torch/csrc/distributed/c10d/TCPStore.hpp")
        .exists()
    {
        panic!(
            "{} lacks torch/csrc/distributed/c10d/TCPStore.hpp: hrm-dist needs the c10d headers \
             that the torch 2.11.0 wheel ships (run `cargo xtask setup`)",
            include.display()
        );
    }

    let mut build = cc::Build::new();
    build
        .cpp(true)
        .pic(true)
        .warnings(false)
        .include(&include)
        .include(include.join("torch/csrc/api/include"))
        .flag("-std=c++17")
        // The torch 2.11 wheels are built with the C++11 ABI, as torch-sys assumes by default.
        .flag(format!("-D_GLIBCXX_USE_CXX11_ABI={}", cxx11_abi()))
        .flag("-DGLOG_USE_GLOG_EXPORT")
        .file("cpp/shim.cpp");

    let gloo = gloo_include_dir();
    match &gloo {
        Some(dir) => {
            include_unless_system(&mut build, dir);
            build.define("USE_C10D_GLOO", None);
            println!("cargo:rustc-cfg=hrm_dist_gloo");
        }
        None => println!(
            "cargo:warning=hrm-dist: building without Gloo (no gloo/config.h found): multi-process \
             CPU training needs libgloo-dev (apt-get install libgloo-dev), then a rebuild"
        ),
    }
    println!("cargo:gloo={}", u8::from(gloo.is_some()));

    let nccl = nccl_include_dirs(&lib_dir, &torch_dir);
    match &nccl {
        Ok(dirs) => {
            for dir in dirs {
                include_unless_system(&mut build, dir);
            }
            build.define("USE_C10D_NCCL", None);
            println!("cargo:rustc-cfg=hrm_dist_nccl");
            println!("cargo:rustc-env=HRM_DIST_NCCL_MISSING=");
        }
        // The reason reaches the run-time error `DistError::NoNccl`.
        Err(reason) => println!("cargo:rustc-env=HRM_DIST_NCCL_MISSING={reason}"),
    }
    println!("cargo:nccl={}", u8::from(nccl.is_ok()));

    build.compile("hrm_dist_shim");

    // The shim calls into these; listing them after the static library keeps the link order
    // right whatever torch-sys emits.
    println!("cargo:rustc-link-search=native={}", lib_dir.display());
    if nccl.is_ok() {
        println!("cargo:rustc-link-lib=dylib=torch_cuda");
        println!("cargo:rustc-link-lib=dylib=c10_cuda");
    }
    println!("cargo:rustc-link-lib=dylib=torch_cpu");
    println!("cargo:rustc-link-lib=dylib=torch");
    println!("cargo:rustc-link-lib=dylib=c10");

    rpath(&os, &lib_dir);
}

/// The libtorch `lib/` directory: what torch-sys linked against, else `$LIBTORCH/lib`.
fn libtorch_lib_dir() -> PathBuf {
    let dir = env::var("DEP_TCH_LIBTORCH_LIB")
        .map(PathBuf::from)
        .or_else(|_| env::var("LIBTORCH").map(|t| PathBuf::from(t).join("lib")))
        .unwrap_or_else(|_| {
            panic!("neither DEP_TCH_LIBTORCH_LIB (from torch-sys) nor LIBTORCH is set; run `cargo xtask setup`")
        });
    // Resolve the `.libtorch` link made by `cargo xtask setup`.
    std::fs::canonicalize(&dir).unwrap_or(dir)
}

/// Adds `-I dir`, except for the compiler's own `/usr/include`: naming it with `-I` would move
/// it ahead of the C++ standard library's wrappers and break `#include_next`.
fn include_unless_system(build: &mut cc::Build, dir: &Path) {
    if dir != Path::new("/usr/include") {
        build.include(dir);
    }
}

/// `1` unless `LIBTORCH_CXX11_ABI` says otherwise, as in torch-sys's build script.
fn cxx11_abi() -> String {
    println!("cargo:rerun-if-env-changed=LIBTORCH_CXX11_ABI");
    env::var("LIBTORCH_CXX11_ABI").unwrap_or_else(|_| "1".to_string())
}

fn switched_off(var: &str) -> bool {
    matches!(env::var(var).as_deref(), Ok(v) if !v.is_empty() && v != "0")
}

/// The directory holding `gloo/config.h`, if any and not switched off.
fn gloo_include_dir() -> Option<PathBuf> {
    if switched_off("HRM_DIST_NO_GLOO") {
        println!("cargo:warning=hrm-dist: HRM_DIST_NO_GLOO is set, building without Gloo");
        return None;
    }
    let mut candidates: Vec<PathBuf> = Vec::new();
    if let Ok(dir) = env::var("GLOO_INCLUDE_DIR") {
        candidates.push(dir.into());
    }
    candidates.push("/usr/include".into());
    candidates.push("/usr/local/include".into());
    if let Ok(prefix) = env::var("CONDA_PREFIX") {
        candidates.push(Path::new(&prefix).join("include"));
    }
    let found = candidates
        .into_iter()
        .find(|dir| dir.join("gloo/config.h").is_file());
    match &found {
        // Removing the headers reruns this script (a missing path always does).
        Some(dir) => println!(
            "cargo:rerun-if-changed={}",
            dir.join("gloo/config.h").display()
        ),
        // Naming the absent file would rerun this script, and rebuild the crate, on every
        // build. Debian's package database changes when `apt-get install libgloo-dev` runs, so
        // the headers are picked up then; elsewhere, `cargo clean -p hrm-dist` after installing.
        None => {
            let dpkg = Path::new("/var/lib/dpkg/status");
            if dpkg.is_file() {
                println!("cargo:rerun-if-changed={}", dpkg.display());
            }
        }
    }
    found
}

/// The include directories NCCL needs (`nccl.h`, then `cuda_runtime.h`), or why NCCL is left
/// out.
fn nccl_include_dirs(lib_dir: &Path, torch_dir: &Path) -> Result<Vec<PathBuf>, &'static str> {
    if switched_off("HRM_DIST_NO_NCCL") {
        return Err("HRM_DIST_NO_NCCL was set at build time");
    }
    if !lib_dir.join("libtorch_cuda.so").exists() {
        return Err("this libtorch has no CUDA (no libtorch_cuda)");
    }
    // A torch wheel sits in site-packages beside the `nvidia/*` wheels it depends on.
    let site = torch_dir.parent().map(Path::to_path_buf);
    let mut nccl: Vec<PathBuf> = Vec::new();
    if let Ok(dir) = env::var("NCCL_INCLUDE_DIR") {
        nccl.push(dir.into());
    }
    if let Some(site) = &site {
        nccl.push(site.join("nvidia/nccl/include"));
    }
    nccl.push("/usr/include".into());
    let nccl = nccl.into_iter().find(|d| d.join("nccl.h").is_file());

    // Where the CUDA headers may be: the user's list, a toolkit, then the wheels. All existing
    // directories are searched in this order, each with its `cccl/` subdirectory (CUDA 13 moved
    // libcu++'s `nv/` there). The cu13 runtime wheel lacks the `crt/` and `nv/` headers that
    // cuda_runtime.h and cuda_fp16.h include; the `nvidia-cuda-crt` and `nvidia-cuda-cccl`
    // wheels of the same CUDA version add them to the same directory.
    let mut candidates: Vec<PathBuf> = Vec::new();
    if let Some(list) = env::var_os("HRM_DIST_CUDA_INCLUDE") {
        candidates.extend(env::split_paths(&list));
    }
    if let Ok(home) = env::var("CUDA_HOME") {
        candidates.push(Path::new(&home).join("include"));
    }
    if let Some(site) = &site {
        for sub in [
            "nvidia/cu13/include",
            "nvidia/cuda_runtime/include",
            "nvidia/cuda_nvcc/include",
        ] {
            let dir = site.join(sub);
            if dir.is_dir() {
                // `cargo xtask setup` may add the `crt/` and `nv/` headers later: build again then.
                println!("cargo:rerun-if-changed={}", dir.display());
            }
            candidates.push(dir);
        }
    }
    candidates.push("/usr/local/cuda/include".into());
    let cuda_dirs: Vec<PathBuf> = candidates
        .into_iter()
        .flat_map(|d| [d.join("cccl"), d])
        .filter(|d| d.is_dir())
        .collect();
    let has = |file: &str| cuda_dirs.iter().any(|d| d.join(file).is_file());
    let cuda = if !has("cuda_runtime.h") {
        None
    } else if !has("crt/host_config.h") || !has("nv/target") {
        let missing = "CUDA's crt/host_config.h or nv/target (CCCL) was not found at build time";
        println!("cargo:warning=hrm-dist: {missing}; building without NCCL");
        return Err(missing);
    } else {
        Some(cuda_dirs)
    };

    let missing = match (nccl, cuda) {
        (Some(nccl), Some(cuda)) => {
            let mut dirs = vec![nccl];
            dirs.extend(cuda);
            return Ok(dirs);
        }
        (None, None) => "nccl.h and cuda_runtime.h were not found at build time",
        (None, Some(_)) => "nccl.h was not found at build time",
        (Some(_), None) => "cuda_runtime.h was not found at build time",
    };
    println!("cargo:warning=hrm-dist: libtorch has CUDA but {missing}; building without NCCL");
    Err(missing)
}

/// Records libtorch's `lib/` as a run-time search path, as the other crates' build scripts do.
fn rpath(os: &str, dir: &Path) {
    println!("cargo:rustc-link-arg=-Wl,-rpath,{}", dir.display());
    // Nothing in Rust code names a symbol of libtorch_cuda, so an `--as-needed` linker would
    // drop it and CUDA would never register. Keep it whenever this libtorch ships it.
    if os == "linux" && dir.join("libtorch_cuda.so").exists() {
        println!("cargo:rustc-link-arg=-Wl,--no-as-needed");
        println!("cargo:rustc-link-arg=-ltorch_cuda");
        println!("cargo:rustc-link-arg=-Wl,--as-needed");
    }
}
