//! `cargo xtask setup`: find or install libtorch 2.11.0 and point the build at it.
//!
//! Order of preference (DESIGN.md section 1):
//! 1. a `LIBTORCH` the user set in the environment (checked, used as it is);
//! 2. the per-user cache `$HRM_TORCH_HOME` (default `~/.cache/hrm-rs/torch-2.11.0`), a
//!    virtual environment holding PyPI's `torch==2.11.0`, shared by every clone;
//! 3. a `python3` whose `torch` is 2.11.0 (as on machines with torch preinstalled);
//! 4. otherwise PyPI's `torch==2.11.0` is installed into the cache (the only download the
//!    project ever makes), into a `.partial` directory renamed into place when complete.
//!
//! The result is linked as `<root>/.libtorch`, which `.cargo/config.toml` hands to torch-sys as
//! `LIBTORCH`; the crates' build scripts then record its `lib/` as a run-time search path.
//!
//! Two repairs and one extra, all idempotent:
//! - pip writes the venv's absolute path into its console scripts (`bin/torchrun`, `bin/pip`,
//!   `bin/activate`), so after the `.partial` directory is renamed they would name a python
//!   that no longer exists; [`repair_venv_paths`] rewrites them, after an install and on every
//!   run (caches made before this fix are repaired too).
//! - hrm-dist's multi-process CPU backend (c10d's Gloo, inside libtorch) needs Gloo's headers,
//!   which the torch wheel does not ship: [`gloo_headers`] installs Debian's `libgloo-dev` when
//!   they are missing and the user is root, and otherwise says what to install. Without them
//!   everything still builds and single-process training works.
//! - hrm-core's CUDA-graph handle and hrm-dist's NCCL backend are C++ built against the CUDA
//!   runtime headers; the torch wheel ships them without their `crt/` part and without CCCL's
//!   `nv/` headers, which are the small `nvidia-cuda-crt` and `nvidia-cuda-cccl` packages of the
//!   same CUDA release (about 3 MB together): [`cuda_headers`] installs them into the cache's
//!   environment when they are missing there. Without them everything still builds; CUDA graphs
//!   and NCCL are then unavailable.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{bail, Context, Result};

/// The libtorch version tch 0.24.0 is built for. Keep the two pinned together.
pub const TORCH_VERSION: &str = "2.11.0";
const MARKER: &str = "hrm-torch.json";
/// `python -m pip install` as every install here runs it: without pip's wheel cache, which would
/// keep a second copy of the few GB of wheels next to the installed ones.
const PIP_INSTALL: [&str; 5] = [
    "-m",
    "pip",
    "install",
    "--disable-pip-version-check",
    "--no-cache-dir",
];

/// Where libtorch was found, ready to be handed to child processes.
pub struct Torch {
    /// The torch package directory (holds `lib/` and `include/`).
    pub dir: PathBuf,
    /// Set when the user's own `LIBTORCH` is used, so children see the same value.
    user_libtorch: Option<String>,
}

impl Torch {
    /// Applies the environment a child cargo or `hrm` process needs.
    pub fn apply(&self, cmd: &mut Command) {
        if let Some(value) = &self.user_libtorch {
            cmd.env("LIBTORCH", value);
        }
        // The binaries carry an rpath already; doc-tests are linked by rustdoc in a temporary
        // place, so give them the library directory through the loader's path as well.
        let var = if cfg!(target_os = "macos") {
            "DYLD_LIBRARY_PATH"
        } else {
            "LD_LIBRARY_PATH"
        };
        let lib = self.dir.join("lib");
        let joined = match std::env::var_os(var) {
            Some(old) if !old.is_empty() => {
                let mut paths = vec![lib];
                paths.extend(std::env::split_paths(&old));
                std::env::join_paths(paths).unwrap_or_default()
            }
            _ => lib.into_os_string(),
        };
        cmd.env(var, joined);
    }
}

/// Finds or installs libtorch and links it for the build. Idempotent; about a second when the
/// cache is present.
pub fn run(root: &Path) -> Result<Torch> {
    if cfg!(windows) {
        bail!(
            "hrm-rs set-up supports Linux and macOS; on Windows set LIBTORCH to a libtorch 2.11.0"
        );
    }
    let link = root.join(".libtorch");
    // `.cargo/config.toml` sets LIBTORCH to our link; any other value is the user's own.
    if let Ok(value) = std::env::var("LIBTORCH") {
        if Path::new(&value) != link {
            let dir = PathBuf::from(&value);
            check_libtorch_dir(&dir).with_context(|| format!("LIBTORCH={value}"))?;
            let version = read_version(&dir).unwrap_or_else(|| "unknown".to_string());
            if !version.starts_with(TORCH_VERSION) {
                bail!("LIBTORCH={value} holds libtorch {version}; tch 0.24.0 needs {TORCH_VERSION}. Unset LIBTORCH to let `cargo xtask setup` install it.");
            }
            eprintln!(
                "[setup] libtorch {version} from LIBTORCH at {}",
                dir.display()
            );
            gloo_headers();
            return Ok(Torch {
                dir,
                user_libtorch: Some(value),
            });
        }
    }

    let home = torch_home()?;
    let (dir, how) = if let Some(dir) = cached_torch_dir(&home) {
        if let Err(e) = repair_venv_paths(&home) {
            eprintln!(
                "[setup] warning: could not repair the scripts in {}: {e:#}",
                home.join("bin").display()
            );
        }
        (dir, "cached")
    } else if let Some(dir) = python3_torch_dir() {
        (dir, "python3's own torch")
    } else {
        install(&home)?;
        let dir = cached_torch_dir(&home).with_context(|| {
            format!(
                "torch was installed into {} but is not usable",
                home.display()
            )
        })?;
        (dir, "installed")
    };
    check_libtorch_dir(&dir)?;
    point_link(&link, &dir)?;
    let cuda = if dir.join("lib").join("libtorch_cuda.so").exists() {
        " (with CUDA libraries)"
    } else {
        ""
    };
    eprintln!(
        "[setup] libtorch {TORCH_VERSION}{cuda}, {how}, at {}",
        dir.display()
    );
    gloo_headers();
    cuda_headers(&home, &dir);
    Ok(Torch {
        dir,
        user_libtorch: None,
    })
}

fn torch_home() -> Result<PathBuf> {
    if let Some(home) = std::env::var_os("HRM_TORCH_HOME") {
        return Ok(PathBuf::from(home));
    }
    let base = match std::env::var_os("XDG_CACHE_HOME") {
        Some(cache) if !cache.is_empty() => PathBuf::from(cache),
        _ => {
            let home =
                std::env::var_os("HOME").context("neither HRM_TORCH_HOME nor HOME is set")?;
            PathBuf::from(home).join(".cache")
        }
    };
    Ok(base.join("hrm-rs").join(format!("torch-{TORCH_VERSION}")))
}

/// The torch directory recorded in the cache's marker, if the cache is complete.
fn cached_torch_dir(home: &Path) -> Option<PathBuf> {
    let marker = fs::read_to_string(home.join(MARKER)).ok()?;
    let relative = marker
        .lines()
        .find_map(|line| line.strip_prefix("torch_dir="))?;
    let dir = home.join(relative.trim());
    dir.join("lib").is_dir().then_some(dir)
}

/// The torch package of the system's `python3`, when it is exactly version 2.11.0.
fn python3_torch_dir() -> Option<PathBuf> {
    let output = Command::new("python3")
        .args([
            "-c",
            "import os, torch; print(torch.__version__); print(os.path.dirname(torch.__file__))",
        ])
        .output()
        .ok()?;
    if !output.status.success() {
        return None;
    }
    let text = String::from_utf8_lossy(&output.stdout);
    let mut lines = text.lines();
    let version = lines.next()?.trim();
    let dir = PathBuf::from(lines.next()?.trim());
    (version.split('+').next() == Some(TORCH_VERSION) && dir.join("lib").is_dir()).then_some(dir)
}

/// Installs `torch==2.11.0` into `home` through a `.partial` directory.
fn install(home: &Path) -> Result<()> {
    let partial = home.with_extension("partial");
    if partial.exists() {
        eprintln!(
            "[setup] removing an unfinished install at {}",
            partial.display()
        );
        fs::remove_dir_all(&partial).with_context(|| format!("removing {}", partial.display()))?;
    }
    if home.exists() {
        // A directory without a marker is an install that never completed.
        fs::remove_dir_all(home).with_context(|| format!("removing {}", home.display()))?;
    }
    if let Some(parent) = home.parent() {
        fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
    }
    let started = Instant::now();
    eprintln!(
        "[setup] installing PyPI torch=={TORCH_VERSION} into {} (once per machine; a few GB)",
        home.display()
    );
    let package = format!("torch=={TORCH_VERSION}");
    let venv_ok = Command::new("python3")
        .args(["-m", "venv"])
        .arg(&partial)
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    let site = if venv_ok {
        let python = partial.join("bin").join("python");
        let status = Command::new(&python)
            .args(PIP_INSTALL)
            .arg(&package)
            .status()
            .with_context(|| format!("running {}", python.display()))?;
        if !status.success() {
            bail!("pip could not install {package} into {}", partial.display());
        }
        find_site_packages(&partial)?
    } else {
        // Without the venv module (Debian's python3 without python3-venv), install into a
        // plain directory with pip's --target.
        eprintln!("[setup] python3 -m venv is unavailable; using pip install --target");
        let target = partial.join("site-packages");
        let status = Command::new("python3")
            .args(PIP_INSTALL)
            .arg("--target")
            .arg(&target)
            .arg(&package)
            .status()
            .context("running python3 -m pip (is python3 installed?)")?;
        if !status.success() {
            bail!("pip could not install {package} into {}", target.display());
        }
        target
    };
    let torch_dir = site.join("torch");
    check_libtorch_dir(&torch_dir)?;
    let version = read_version(&torch_dir).unwrap_or_default();
    if !version.starts_with(TORCH_VERSION) {
        bail!("pip installed torch {version}, expected {TORCH_VERSION}");
    }
    let relative = torch_dir
        .strip_prefix(&partial)
        .context("torch outside the install directory")?;
    fs::write(
        partial.join(MARKER),
        format!(
            "version={TORCH_VERSION}\ntorch_dir={}\n",
            relative.display()
        ),
    )?;
    fs::rename(&partial, home)
        .with_context(|| format!("moving {} to {}", partial.display(), home.display()))?;
    repair_venv_paths(home)?;
    eprintln!(
        "[setup] installed in {:.0} s",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// Rewrites the `.partial` directory name that `python3 -m venv` and pip wrote into the venv's
/// scripts (the `#!` line of `bin/torchrun`, `bin/pip` and the other console scripts,
/// `VIRTUAL_ENV` and the prompt in `bin/activate*`, the command in `pyvenv.cfg`) to the final
/// name. Both directories share a parent, so replacing the name fixes the absolute paths too.
/// Idempotent: files without the old name are left alone. Returns how many were rewritten.
fn repair_venv_paths(home: &Path) -> Result<usize> {
    let partial = home.with_extension("partial");
    let (Some(old), Some(new)) = (
        partial.file_name().and_then(|n| n.to_str()),
        home.file_name().and_then(|n| n.to_str()),
    ) else {
        return Ok(0);
    };
    let mut files = vec![home.join("pyvenv.cfg")];
    if let Ok(entries) = fs::read_dir(home.join("bin")) {
        files.extend(entries.flatten().map(|e| e.path()));
    }
    let mut rewritten = 0;
    for path in files {
        // `bin/python*` are links to the base interpreter: never follow or rewrite them.
        let Ok(meta) = fs::symlink_metadata(&path) else {
            continue;
        };
        if !meta.is_file() {
            continue;
        }
        let Ok(text) = fs::read_to_string(&path) else {
            continue; // not text: nothing of ours in it
        };
        if !text.contains(old) {
            continue;
        }
        // Write beside, keep the permissions (scripts stay executable), then rename over.
        let tmp = path.with_extension("hrm-tmp");
        fs::write(&tmp, text.replace(old, new))
            .with_context(|| format!("writing {}", tmp.display()))?;
        fs::set_permissions(&tmp, meta.permissions())
            .with_context(|| format!("setting permissions of {}", tmp.display()))?;
        fs::rename(&tmp, &path).with_context(|| format!("replacing {}", path.display()))?;
        rewritten += 1;
    }
    if rewritten > 0 {
        eprintln!(
            "[setup] repaired {rewritten} venv scripts that named {} (bin/torchrun works again)",
            partial.display()
        );
    }
    Ok(rewritten)
}

/// Where Gloo's headers are (the directory holding `gloo/config.h`), searched where
/// hrm-dist's build script searches.
fn find_gloo_headers() -> Option<PathBuf> {
    let mut candidates: Vec<PathBuf> = Vec::new();
    if let Some(dir) = std::env::var_os("GLOO_INCLUDE_DIR") {
        candidates.push(dir.into());
    }
    candidates.push("/usr/include".into());
    candidates.push("/usr/local/include".into());
    if let Some(prefix) = std::env::var_os("CONDA_PREFIX") {
        candidates.push(Path::new(&prefix).join("include"));
    }
    candidates
        .into_iter()
        .find(|d| d.join("gloo").join("config.h").is_file())
}

/// Makes sure hrm-dist can build its Gloo backend: reports the headers when present, installs
/// `libgloo-dev` with apt-get when they are missing and we are root, and otherwise says what to
/// install. Never fails: without Gloo the build and single-process runs still work.
fn gloo_headers() {
    if std::env::var_os("HRM_DIST_NO_GLOO").is_some_and(|v| !v.is_empty() && v != "0") {
        eprintln!(
            "[setup] HRM_DIST_NO_GLOO is set: hrm-dist builds without Gloo (one process on CPU)"
        );
        return;
    }
    if let Some(dir) = find_gloo_headers() {
        eprintln!("[setup] Gloo headers at {}", dir.join("gloo").display());
        return;
    }
    const MISSING: &str =
        "multi-process CPU training (hrm-dist's Gloo backend) needs Gloo's headers";
    if !cfg!(target_os = "linux") || !is_root() || !has_program("apt-get") {
        eprintln!(
            "[setup] {MISSING}: install them with `sudo apt-get install libgloo-dev` (Debian, Ubuntu) \
             or point GLOO_INCLUDE_DIR at a directory holding gloo/config.h, then rebuild. \
             Single-process training works without them."
        );
        return;
    }
    eprintln!("[setup] {MISSING}: installing libgloo-dev with apt-get");
    let apt = |args: &[&str]| {
        Command::new("apt-get")
            .args(args)
            .env("DEBIAN_FRONTEND", "noninteractive")
            .status()
            .map(|s| s.success())
            .unwrap_or(false)
    };
    let installed = apt(&["update", "-qq"]) && apt(&["install", "-y", "-qq", "libgloo-dev"]);
    match find_gloo_headers() {
        Some(dir) if installed => {
            eprintln!(
                "[setup] installed libgloo-dev: Gloo headers at {}",
                dir.join("gloo").display()
            )
        }
        _ => eprintln!(
            "[setup] warning: apt-get could not install libgloo-dev; {MISSING}, so multi-process \
             CPU runs stay off until it is installed. Single-process training works."
        ),
    }
}

/// Installs `nvidia-cuda-crt` and `nvidia-cuda-cccl` (the CUDA runtime's `crt/` headers and
/// CCCL's `nv/` headers) beside a CUDA torch wheel whose runtime headers lack them, with the cache
/// environment's own pip, at the CUDA release of the wheel's `nvidia-cuda-runtime`. Torch found
/// elsewhere (a system python3) is not modified: the message says what to install.
fn cuda_headers(home: &Path, torch_dir: &Path) {
    let Some(site) = torch_dir.parent() else {
        return;
    };
    let Some(include) = ["nvidia/cu13/include", "nvidia/cuda_runtime/include"]
        .iter()
        .map(|d| site.join(d))
        .find(|d| d.join("cuda_runtime_api.h").is_file())
    else {
        return; // a CPU wheel, or CUDA headers found elsewhere by the build scripts
    };
    let has_cccl = include.join("cccl/nv/target").is_file() || include.join("nv/target").is_file();
    let missing: Vec<&str> = [
        (
            "nvidia-cuda-crt",
            include.join("crt/host_config.h").is_file(),
        ),
        ("nvidia-cuda-cccl", has_cccl),
    ]
    .into_iter()
    .filter_map(|(package, present)| (!present).then_some(package))
    .collect();
    if missing.is_empty() {
        return;
    }
    let release = fs::read_dir(site).ok().and_then(|entries| {
        entries.flatten().find_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let version = name
                .strip_prefix("nvidia_cuda_runtime-")?
                .strip_suffix(".dist-info")?
                .to_string();
            let mut parts = version.split('.');
            Some(format!("{}.{}", parts.next()?, parts.next()?))
        })
    });
    let Some(release) = release else { return };
    let packages: Vec<String> = missing
        .iter()
        .map(|p| format!("{p}=={release}.*"))
        .collect();
    let list = packages.join(" ");
    let python = home.join("bin").join("python");
    if !torch_dir.starts_with(home) || !python.is_file() {
        eprintln!(
            "[setup] CUDA graphs and NCCL need CUDA headers the torch wheel leaves out, next to \
             {}: install them into that python (`python3 -m pip install {list}`), then rebuild",
            include.display()
        );
        return;
    }
    eprintln!("[setup] installing {list} (CUDA headers, for CUDA graphs and NCCL)");
    let ok = Command::new(&python)
        .args(PIP_INSTALL)
        .arg("--no-deps")
        .args(&packages)
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if !ok {
        eprintln!(
            "[setup] warning: could not install {list}; everything builds, but CUDA graphs and \
             NCCL stay unavailable until they are installed"
        );
    }
}

/// Whether this process runs as root (`id -u` prints 0).
fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| o.status.success() && String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

/// Whether `program` can be started from `PATH`.
fn has_program(program: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|dir| dir.join(program).is_file()))
}

fn find_site_packages(venv: &Path) -> Result<PathBuf> {
    let lib = venv.join("lib");
    for entry in fs::read_dir(&lib).with_context(|| format!("reading {}", lib.display()))? {
        let site = entry?.path().join("site-packages");
        if site.join("torch").is_dir() {
            return Ok(site);
        }
    }
    bail!("no site-packages/torch under {}", lib.display())
}

/// Checks that `dir` looks like a libtorch: `lib/` with the torch library and `include/`.
fn check_libtorch_dir(dir: &Path) -> Result<()> {
    let lib = dir.join("lib");
    let has_lib = ["libtorch_cpu.so", "libtorch_cpu.dylib"]
        .iter()
        .any(|name| lib.join(name).exists());
    if !has_lib {
        bail!("{} has no lib/libtorch_cpu library", dir.display());
    }
    if !dir.join("include").is_dir() {
        bail!(
            "{} has no include/ directory (headers are needed to build tch)",
            dir.display()
        );
    }
    Ok(())
}

/// The version of a libtorch directory: `build-version` (libtorch archives) or `version.py`
/// (the torch Python package).
fn read_version(dir: &Path) -> Option<String> {
    if let Ok(text) = fs::read_to_string(dir.join("build-version")) {
        return Some(text.trim().to_string());
    }
    let text = fs::read_to_string(dir.join("version.py")).ok()?;
    text.lines().find_map(|line| {
        let rest = line.strip_prefix("__version__")?;
        let value = rest
            .split('=')
            .nth(1)?
            .trim()
            .trim_matches(|c| c == '\'' || c == '"');
        Some(value.to_string())
    })
}

/// Points `link` at `target`, replacing a link to anything else atomically.
fn point_link(link: &Path, target: &Path) -> Result<()> {
    if fs::read_link(link).ok().as_deref() == Some(target) {
        return Ok(());
    }
    let tmp = link.with_extension("tmp");
    let _ = fs::remove_file(&tmp);
    #[cfg(unix)]
    std::os::unix::fs::symlink(target, &tmp)
        .with_context(|| format!("linking {}", tmp.display()))?;
    fs::rename(&tmp, link).with_context(|| format!("replacing {}", link.display()))?;
    eprintln!("[setup] {} -> {}", link.display(), target.display());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn venv_scripts_are_repointed_once_and_stay_executable() {
        let base = std::env::temp_dir().join(format!("hrm-setup-test-{}", std::process::id()));
        let _ = fs::remove_dir_all(&base);
        let home = base.join("torch-2.11.0");
        let bin = home.join("bin");
        fs::create_dir_all(&bin).expect("create bin");
        let old = base.join("torch-2.11.partial");
        let script = bin.join("torchrun");
        fs::write(
            &script,
            format!("#!{}/bin/python\nimport sys\n", old.display()),
        )
        .expect("write script");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            fs::set_permissions(&script, fs::Permissions::from_mode(0o755)).expect("chmod");
            std::os::unix::fs::symlink("/usr/bin/python3", bin.join("python")).expect("link");
        }
        fs::write(
            bin.join("activate"),
            format!(
                "VIRTUAL_ENV=\"{}\"\nPS1=\"(torch-2.11.partial) \"\n",
                old.display()
            ),
        )
        .expect("write activate");
        fs::write(bin.join("untouched"), "#!/bin/sh\necho hi\n").expect("write other");

        assert_eq!(repair_venv_paths(&home).expect("repair"), 2);
        let text = fs::read_to_string(&script).expect("read script");
        assert_eq!(
            text,
            format!("#!{}/bin/python\nimport sys\n", home.display())
        );
        let activate = fs::read_to_string(bin.join("activate")).expect("read activate");
        assert_eq!(
            activate,
            format!(
                "VIRTUAL_ENV=\"{}\"\nPS1=\"(torch-2.11.0) \"\n",
                home.display()
            )
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(&script).expect("stat").permissions().mode();
            assert_eq!(mode & 0o777, 0o755);
            let link = fs::read_link(bin.join("python")).expect("still a link");
            assert_eq!(link, Path::new("/usr/bin/python3"));
        }
        // Idempotent: nothing left to rewrite.
        assert_eq!(repair_venv_paths(&home).expect("second repair"), 0);
        let _ = fs::remove_dir_all(&base);
    }
}
