//! The server image, built `FROM scratch` (tests/containers/Dockerfile) from
//! the host-built test binary: the binary plus exactly the shared libraries
//! and loader `ldd` resolves for it, so no base image and no static rebuild
//! are needed.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};

use super::engine::Docker;

/// Where the binary lives in the image (the Dockerfile's ENTRYPOINT).
const IMAGE_BINARY: &str = "usr/local/bin/seshat";

/// A built image; removed from the engine when dropped.
pub struct Image {
    docker: Docker,
    /// The image tag (unique per run).
    pub tag: String,
    /// Bytes of files in the image.
    pub size: u64,
    /// Files shipped besides the binary (libraries and loader), as image paths.
    pub libraries: Vec<String>,
    /// Build wall time.
    pub build_time: Duration,
}

impl Drop for Image {
    fn drop(&mut self) {
        if let Err(e) = self.docker.run_blocking(&["rmi", "-f", &self.tag]) {
            eprintln!("warning: cannot remove image {}: {e}", self.tag);
        }
    }
}

/// The shared objects a dynamically linked binary loads, as absolute host
/// paths, loader included; empty for a static binary.
pub fn shared_libraries(binary: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let out = Command::new("ldd").arg(binary).output().context("cannot run `ldd` (package libc-bin)")?;
    let text = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() {
        // A static binary is fine: it ships alone.
        if format!("{text}{stderr}").contains("not a dynamic executable") {
            return Ok(Vec::new());
        }
        bail!("ldd {} failed: {}", binary.display(), stderr.trim());
    }
    let mut libs = Vec::new();
    for line in text.lines() {
        if line.contains("statically linked") {
            return Ok(Vec::new());
        }
        if line.contains("not found") {
            bail!("ldd {}: unresolved library: {}", binary.display(), line.trim());
        }
        // "libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x..)", "/lib64/ld-linux-x86-64.so.2 (0x..)";
        // the vDSO has no path and is provided by the kernel.
        if let Some(p) = line.split_whitespace().find(|w| w.starts_with('/')) {
            libs.push(PathBuf::from(p));
        }
    }
    Ok(libs)
}

/// Put `from` at `to`: a hard link when both are on one filesystem (the
/// debug binary is >100 MB), else a copy. Symlinks are followed, so the
/// loader's usual `/lib64` symlink becomes a real file in the image.
fn place(from: &Path, to: &Path) -> anyhow::Result<u64> {
    if let Some(dir) = to.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let real = std::fs::canonicalize(from).with_context(|| format!("resolve {}", from.display()))?;
    if std::fs::hard_link(&real, to).is_err() {
        std::fs::copy(&real, to).with_context(|| format!("copy {} to {}", real.display(), to.display()))?;
    }
    Ok(std::fs::metadata(to)?.len())
}

/// Assemble the build context for `binary` and build the image as `tag`.
pub async fn build(docker: &Docker, binary: &Path, tag: &str) -> anyhow::Result<Image> {
    let started = Instant::now();
    let ctx = tempfile::Builder::new().prefix("seshat-image-").tempdir()?;
    let rootfs = ctx.path().join("rootfs");
    let mut size = place(binary, &rootfs.join(IMAGE_BINARY))?;
    let mut libraries = Vec::new();
    for lib in shared_libraries(binary)? {
        let rel = lib.strip_prefix("/").expect("ldd paths are absolute");
        size += place(&lib, &rootfs.join(rel))?;
        libraries.push(lib.display().to_string());
    }
    std::fs::create_dir_all(ctx.path().join("state/seshat"))?;
    let dockerfile = Path::new(env!("CARGO_MANIFEST_DIR")).join("containers/Dockerfile");
    let mut args = vec!["build", "--quiet", "--file"];
    let dockerfile = dockerfile.to_string_lossy().into_owned();
    let context = ctx.path().to_string_lossy().into_owned();
    args.push(&dockerfile);
    args.extend(["--tag", tag]);
    let labels = Docker::labels();
    args.extend(labels.iter().map(String::as_str));
    args.push(&context);
    // Handle before the build: a build that fails half-way may still leave a tag.
    let mut image = Image { docker: docker.clone(), tag: tag.to_owned(), size, libraries, build_time: Duration::ZERO };
    docker.run_for(Duration::from_secs(90), &args).await.context("building the server image")?;
    image.build_time = started.elapsed();
    Ok(image)
}
