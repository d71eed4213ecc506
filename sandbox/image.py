"""The runtime image: a Debian tree with python3 + requests, plus our runner and SDK.

Built offline: ``mmdebstrap`` makes the Debian tree (a tarball, cached), ``docker
import`` turns it into a base image, and ``image/Dockerfile`` adds the runner on
top. bubblewrap uses the same tarball unpacked into a directory. Names carry a
recipe hash, so a build is skipped when its result already exists.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import shutil
import subprocess
import tarfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from brokerage.sandbox.errors import ImageError

IMAGE_REPOSITORY = "brokerage-sandbox"
BASE_REPOSITORY = "brokerage-sandbox-base"
RUNNER_DIR = Path(__file__).parent / "runner"
DOCKERFILE = Path(__file__).parent / "image" / "Dockerfile"
IN_IMAGE_RUNNER = "/opt/brokerage/runner/runner.py"
"""where the runner lives inside the image"""
SANDBOX_USER = "65534:65534"
"""uid:gid brokers run as (nobody:nogroup in Debian's base-passwd)"""
DEFAULT_CACHE_DIR = "/var/cache/brokerage/sandbox"
PACKAGES = ("python3-minimal", "python3-requests")
DPKG_EXCLUDES = ("/usr/share/doc/*", "/usr/share/man/*", "/usr/share/locale/*", "/usr/share/info/*")

Progress = Callable[[str], None]


def default_cache_dir() -> Path:
    """``BROKERAGE_SANDBOX_CACHE``, else /var/cache/brokerage/sandbox."""
    return Path(os.environ.get("BROKERAGE_SANDBOX_CACHE") or DEFAULT_CACHE_DIR)


def _quiet(_: str) -> None:
    pass


def host_codename() -> str:
    try:
        for line in Path("/etc/os-release").read_text().splitlines():
            if line.startswith("VERSION_CODENAME="):
                return line.split("=", 1)[1].strip('"') or "bookworm"
    except OSError:
        pass
    return "bookworm"


def host_sources(codename: str) -> str:
    """The host's Debian apt sources (deb822) for ``codename``, so builds use its mirror."""
    stanzas = []
    sources_dir = Path("/etc/apt/sources.list.d")
    for path in sorted(sources_dir.glob("*.sources")) if sources_dir.is_dir() else []:
        for stanza in path.read_text().split("\n\n"):
            fields = _deb822(stanza)
            suites = fields.get("Suites", "").split()
            if "deb" in fields.get("Types", "").split() and any(
                s == codename or s.startswith(codename + "-") for s in suites
            ):
                stanzas.append(_stanza(fields))
    stanzas += _one_line_sources(codename)
    if not stanzas:
        stanzas.append(_stanza({"Types": "deb", "URIs": "http://deb.debian.org/debian",
                                "Suites": codename, "Components": "main"}))  # fmt: skip
    return "\n".join(stanzas)


def _deb822(stanza: str) -> dict[str, str]:
    fields = {}
    for line in stanza.splitlines():
        if line.startswith("#") or ":" not in line or line.startswith(" "):
            continue
        key, value = line.split(":", 1)
        fields[key.strip()] = value.strip()
    return fields


def _stanza(fields: dict[str, str]) -> str:
    keep = ("Types", "URIs", "Suites", "Components", "Signed-By")
    return "".join(f"{key}: {fields[key]}\n" for key in keep if key in fields)


def _one_line_sources(codename: str) -> list[str]:
    path = Path("/etc/apt/sources.list")
    stanzas = []
    for line in path.read_text().splitlines() if path.exists() else []:
        parts = line.split("#")[0].split()
        wanted = len(parts) >= 4 and parts[0] == "deb" and not parts[1].startswith("[")
        if wanted and (parts[2] == codename or parts[2].startswith(codename + "-")):
            stanzas.append(_stanza({"Types": "deb", "URIs": parts[1], "Suites": parts[2],
                                    "Components": " ".join(parts[3:])}))  # fmt: skip
    return stanzas


@dataclass
class Recipe:
    """Everything the image depends on; its hashes name what gets built."""

    codename: str = field(default_factory=host_codename)
    packages: tuple[str, ...] = PACKAGES
    cache_dir: Path = field(default_factory=lambda: default_cache_dir())

    def __post_init__(self) -> None:
        self.sources = host_sources(self.codename)

    @property
    def base_hash(self) -> str:
        spec = {"codename": self.codename, "packages": self.packages, "variant": "essential",
                "excludes": DPKG_EXCLUDES, "sources": self.sources}  # fmt: skip
        return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:12]

    @property
    def image_hash(self) -> str:
        h = hashlib.sha256(self.base_hash.encode())
        h.update(DOCKERFILE.read_bytes())
        for path, data in sorted(runtime_files().items()):
            h.update(path.encode() + b"\0" + data + b"\0")
        return h.hexdigest()[:12]

    @property
    def base_tag(self) -> str:
        return f"{BASE_REPOSITORY}:{self.base_hash}"

    @property
    def image_tag(self) -> str:
        return f"{IMAGE_REPOSITORY}:{self.image_hash}"

    @property
    def tarball(self) -> Path:
        return self.cache_dir / f"base-{self.base_hash}.tar"

    @property
    def rootfs(self) -> Path:
        """The unpacked tree bubblewrap runs in."""
        return self.cache_dir / f"rootfs-{self.image_hash}"


def runtime_files() -> dict[str, bytes]:
    """What the image adds to Debian: ``runner/*.py`` and ``lib/RestrictedPython``."""
    import RestrictedPython

    files = {f"runner/{p.name}": p.read_bytes() for p in sorted(RUNNER_DIR.glob("*.py"))}
    lib = Path(RestrictedPython.__file__).parent
    for path in sorted(lib.glob("*.py")):
        files[f"lib/RestrictedPython/{path.name}"] = path.read_bytes()
    return files


# -- the Debian tree ----------------------------------------------------------------------


def build_tarball(recipe: Recipe, progress: Progress = _quiet) -> Path:
    """The mmdebstrap tarball, built once per base recipe."""
    if recipe.tarball.exists():
        progress(f"debian tree: cached {recipe.tarball}")
        return recipe.tarball
    if shutil.which("mmdebstrap") is None:
        raise ImageError("mmdebstrap is not installed (scripts/setup-sandbox.sh installs it)")
    recipe.cache_dir.mkdir(parents=True, exist_ok=True)
    sources = recipe.cache_dir / f"base-{recipe.base_hash}.sources"
    sources.write_text(recipe.sources)
    partial = recipe.tarball.with_suffix(".partial.tar")
    command = ["mmdebstrap", "--variant=essential", "--include=" + ",".join(recipe.packages)]
    command += [f"--dpkgopt=path-exclude={pattern}" for pattern in DPKG_EXCLUDES]
    command += [recipe.codename, str(partial), str(sources)]
    progress(f"debian tree: {' '.join(command)}")
    _stream(command, progress)
    partial.rename(recipe.tarball)
    return recipe.tarball


def _stream(command: list[str], progress: Progress) -> None:
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        text=True,
    )  # fmt: skip
    assert process.stdout is not None
    tail: list[str] = []
    for line in process.stdout:
        tail = (tail + [line.rstrip()])[-20:]
        progress("  " + line.rstrip())
    if process.wait() != 0:
        raise ImageError(f"{command[0]} failed:\n" + "\n".join(tail))


# -- docker -------------------------------------------------------------------------------


def build_docker_image(
    client: Any, recipe: Recipe | None = None, progress: Progress = _quiet
) -> str:
    """The runtime image's tag, building what is missing. Idempotent."""
    recipe = recipe or Recipe()
    if _has_image(client, recipe.image_tag):
        progress(f"image {recipe.image_tag}: present, nothing to do")
        return recipe.image_tag
    if not _has_image(client, recipe.base_tag):
        tarball = build_tarball(recipe, progress)
        progress(f"docker import {tarball} as {recipe.base_tag}")
        repository, tag = recipe.base_tag.split(":")
        client.api.import_image(src=str(tarball), repository=repository, tag=tag)
    progress(f"docker build {recipe.image_tag} from {recipe.base_tag}")
    _docker_build(client, recipe, progress)
    return recipe.image_tag


def _has_image(client: Any, tag: str) -> bool:
    import docker.errors

    try:
        client.images.get(tag)
    except docker.errors.ImageNotFound:
        return False
    return True


def _docker_build(client: Any, recipe: Recipe, progress: Progress) -> None:
    import docker.errors

    context = build_context_tar()
    try:
        for chunk in client.api.build(
            fileobj=context, custom_context=True, tag=recipe.image_tag, rm=True,
            buildargs={"BASE_IMAGE": recipe.base_tag}, decode=True, pull=False,
        ):  # fmt: skip
            if "stream" in chunk and chunk["stream"].strip():
                progress("  " + chunk["stream"].rstrip())
            if "error" in chunk:
                raise ImageError(f"docker build failed: {chunk['error']}")
    except docker.errors.APIError as exc:
        raise ImageError(f"docker build failed: {exc}") from exc


def build_context_tar() -> io.BytesIO:
    """The Dockerfile plus runner/ and lib/, as a tar stream for ``docker build``."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        _add(tar, "Dockerfile", DOCKERFILE.read_bytes())
        for path, data in runtime_files().items():
            _add(tar, path, data)
    buffer.seek(0)
    return buffer


def write_context(directory: Path) -> None:
    """A ``docker build`` context on disk, for operators who build with the Dockerfile."""
    for path, data in {"Dockerfile": DOCKERFILE.read_bytes(), **runtime_files()}.items():
        target = directory / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)


def _add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mode = len(data), 0o644
    tar.addfile(info, io.BytesIO(data))


# -- bubblewrap ---------------------------------------------------------------------------


def build_rootfs(recipe: Recipe | None = None, progress: Progress = _quiet) -> Path:
    """The unpacked tree for bubblewrap (tarball + runner under /opt/brokerage), and the
    seccomp filter compiled for ``bwrap --seccomp`` beside it. Idempotent."""
    recipe = recipe or Recipe()
    from brokerage.sandbox import seccomp

    progress(f"seccomp filter {seccomp.build_bpf(recipe.cache_dir)}")
    if (recipe.rootfs / "usr/bin/python3").exists():
        progress(f"rootfs {recipe.rootfs}: present, nothing to do")
        (recipe.rootfs / "run/brokerage").mkdir(parents=True, exist_ok=True)
        return recipe.rootfs
    tarball = build_tarball(recipe, progress)
    partial = recipe.rootfs.with_name(recipe.rootfs.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    progress(f"unpacking {tarball} into {recipe.rootfs}")
    _stream(["tar", "-xf", str(tarball), "-C", str(partial), "--exclude=./dev/*"], progress)
    for path, data in runtime_files().items():
        target = partial / "opt/brokerage" / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
        os.chmod(target, 0o644)
    (partial / "run/brokerage").mkdir(parents=True, exist_ok=True)  # egress mount point
    partial.rename(recipe.rootfs)
    return recipe.rootfs


def prune_stale(client: Any, recipe: Recipe) -> list[str]:
    """Delete runtime image tags and rootfs trees other than ``recipe``'s; what went."""
    import docker.errors

    removed = []
    for found in client.images.list(name=IMAGE_REPOSITORY):
        for tag in found.tags:
            if tag == recipe.image_tag:
                continue
            with contextlib.suppress(docker.errors.APIError):  # still used by a container
                client.images.remove(tag)
                removed.append(tag)
    for tree in sorted(recipe.cache_dir.glob("rootfs-*")):
        if tree != recipe.rootfs:
            shutil.rmtree(tree, ignore_errors=True)
            removed.append(str(tree))
    from brokerage.sandbox import seccomp

    current = f"seccomp-{seccomp.policy_hash()}.bpf"
    for compiled in sorted(recipe.cache_dir.glob("seccomp-*.bpf")):
        if compiled.name != current:
            compiled.unlink(missing_ok=True)
            removed.append(str(compiled))
    return removed
