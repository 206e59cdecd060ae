#!/usr/bin/python3
"""Checks the Dockerfiles without a Docker engine (scripts/check-deploy.sh).

usage: check_images.py BIN_DIR

1. Each Dockerfile: every COPY source outside another stage exists in the
   repository; the final stage runs as a numeric non-root USER, has a
   HEALTHCHECK, and copies all five service binaries, which the build stage
   builds with ninja.
2. build-packages.txt names only packages scripts/install-deps.sh installs
   (so the image builds what CI tests).
3. runtime-packages.txt holds the owner of every shared library the built
   binaries in BIN_DIR link directly (dpkg -S), except libc and the compiler
   runtime that every Debian image has.
"""
import glob
import os
import re
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DOCKER = os.path.join(ROOT, "deploy", "docker")
SERVICES = ["orchestrator", "rollout", "verifier", "reward_model", "learner"]
ESSENTIAL = {"libc6", "libgcc-s1", "libstdc++6"}
errors = []


def instructions(path):
    """(keyword, argument) pairs with continuations joined and comments dropped."""
    out, current = [], ""
    for line in open(path):
        stripped = line.strip()
        if stripped.startswith("#") or not stripped:
            continue
        current += " " + stripped.rstrip("\\").strip()
        if not stripped.endswith("\\"):
            keyword, _, arg = current.strip().partition(" ")
            out.append((keyword.upper(), arg.strip()))
            current = ""
    return out


def package_list(name):
    names = []
    for line in open(os.path.join(DOCKER, name)):
        line = line.split("#", 1)[0].strip()
        if line:
            names.append(line.split(":", 1)[1] if line.startswith("cpu:") else line)
    return names


def check_dockerfile(path):
    name = os.path.basename(path)
    stages, ninja_targets = [], set()
    for keyword, arg in instructions(path):
        if keyword == "FROM":
            stages.append({"from": arg, "user": None, "health": False, "binaries": set()})
        elif keyword == "COPY":
            parts = [p for p in arg.split() if not p.startswith("--")]
            if "--from=" in arg:
                stages[-1]["binaries"].update(os.path.basename(p) for p in parts[:-1])
            else:
                for src in parts[:-1]:
                    if src != "." and not os.path.exists(os.path.join(ROOT, src)):
                        errors.append(f"{name}: COPY source {src} does not exist")
        elif keyword == "USER":
            stages[-1]["user"] = arg
        elif keyword == "HEALTHCHECK":
            stages[-1]["health"] = True
        elif keyword == "RUN" and "ninja" in arg:
            ninja_targets.update(re.findall(r"\b(" + "|".join(SERVICES) + r")\b", arg))
    final = stages[-1]
    user = (final["user"] or "").split(":")[0]
    if not user.isdigit() or int(user) == 0:
        errors.append(f"{name}: the final stage must set a numeric non-root USER (has {final['user']})")
    if not final["health"]:
        errors.append(f"{name}: the final stage has no HEALTHCHECK")
    for service in SERVICES:
        if service not in final["binaries"]:
            errors.append(f"{name}: the final stage does not copy {service}")
        if service not in ninja_targets:
            errors.append(f"{name}: the build stage does not build {service}")
    if len(stages) < 2:
        errors.append(f"{name}: not a multi-stage build")


def install_deps_packages():
    text = open(os.path.join(ROOT, "scripts", "install-deps.sh")).read()
    block = re.search(r"PACKAGES=\((.*?)\n\)", text, re.S).group(1)
    return {w for line in block.splitlines() for w in line.split("#", 1)[0].split()}


def linked_packages(bin_dir):
    binaries = [os.path.join(bin_dir, s) for s in SERVICES if os.path.exists(os.path.join(bin_dir, s))]
    if not binaries:
        errors.append(f"no service binary in {bin_dir}")
        return {}, []
    needed = set()
    for b in binaries:
        out = subprocess.run(["readelf", "-d", b], capture_output=True, text=True, check=True).stdout
        needed.update(re.findall(r"Shared library: \[(.*?)\]", out))
    ldd = subprocess.run(["ldd"] + binaries, capture_output=True, text=True, check=True).stdout
    paths = {}
    for line in ldd.splitlines():
        m = re.match(r"\s*(\S+) => (/\S+)", line)
        if m and m.group(1) in needed:
            paths[m.group(1)] = os.path.realpath(m.group(2))
    missing = sorted(needed - set(paths) - {"linux-vdso.so.1"})
    if missing:
        errors.append(f"libraries not found by ldd: {missing}")
    owners = {}
    # Debian's merged /usr: dpkg may record /lib/... or /usr/lib/...
    queries = {}
    for lib, path in paths.items():
        queries[lib] = [path, path[4:] if path.startswith("/usr/") else "/usr" + path]
    result = subprocess.run(["dpkg", "-S"] + [q for qs in queries.values() for q in qs],
                            capture_output=True, text=True)
    owner_of_path = {}
    for line in result.stdout.splitlines():
        pkg, _, path = line.partition(": ")
        owner_of_path[path.strip()] = pkg.split(":")[0]
    for lib, qs in queries.items():
        found = [owner_of_path[q] for q in qs if q in owner_of_path]
        if found:
            owners[lib] = found[0]
        else:
            errors.append(f"{lib} ({paths[lib]}) belongs to no Debian package")
    return owners, binaries


def main():
    for path in sorted(glob.glob(os.path.join(DOCKER, "Dockerfile.*"))):
        if not path.endswith(".dockerignore"):
            check_dockerfile(path)
    deps = install_deps_packages()
    for pkg in package_list("build-packages.txt"):
        if pkg not in deps:
            errors.append(f"build-packages.txt: {pkg} is not installed by scripts/install-deps.sh")
    runtime = set(package_list("runtime-packages.txt"))
    owners, binaries = linked_packages(sys.argv[1])
    for lib, pkg in sorted(owners.items()):
        if pkg not in runtime and pkg not in ESSENTIAL:
            errors.append(f"runtime-packages.txt lacks {pkg} (owner of {lib}, linked by the services)")
    print(f"check-deploy: images: {len(owners)} linked libraries of {len(binaries)} binaries "
          f"map to {len(set(owners.values()))} packages, all in runtime-packages.txt" if not errors else "")
    if errors:
        print("check-deploy: FAIL:\n  " + "\n  ".join(errors), file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
