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

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{bail, Context, Result};

/// The libtorch version tch 0.24.0 is built for. Keep the two pinned together.
pub const TORCH_VERSION: &str = "2.11.0";
const MARKER: &str = "hrm-torch.json";

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
            return Ok(Torch {
                dir,
                user_libtorch: Some(value),
            });
        }
    }

    let home = torch_home()?;
    let (dir, how) = if let Some(dir) = cached_torch_dir(&home) {
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
            .args([
                "-m",
                "pip",
                "install",
                "--disable-pip-version-check",
                &package,
            ])
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
            .args([
                "-m",
                "pip",
                "install",
                "--disable-pip-version-check",
                "--target",
            ])
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
    eprintln!(
        "[setup] installed in {:.0} s",
        started.elapsed().as_secs_f64()
    );
    Ok(())
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
