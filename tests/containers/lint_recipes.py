"""Static checks of the container recipes and Slurm scripts that cannot be built or run here
(no container daemon, no GPU image pulls, no Apptainer, no Container Engine):
  containers/Containerfile: known instructions; every ${ARG} in a FROM declared before the first
    FROM, every one in a stage declared in that stage; COPY --from names an earlier stage; the
    final stage carries the OCI version and revision labels;
  containers/apptainer.def: Apptainer's parser rules (header keys before the first section,
    comment lines skipped; known sections, none twice); every {{ VAR }} declared in %arguments;
    the %runscript execs cairn;
  containers/cairn.toml (CSCS EDF): valid TOML; image, mounts "SRC:DST[:FLAGS]", string env
    values including PMIX_MCA_psec; the aws-ofi-nccl hook annotations with a known variant;
  examples/slurm/*.sbatch and the shell scripts: `bash -n`, #SBATCH options the installed sbatch
    knows (when Slurm is installed), srun with --mpi=pmix and kill-on-bad-exit, and shellcheck
    when it is installed.
Usage: lint_recipes.py SOURCE_DIR. Prints one line per check and "N passed, M failed"."""
import glob, gzip, os, re, shutil, subprocess, sys, tomllib

source = sys.argv[1]
passed = failed = 0


def check(condition, what):
    global passed, failed
    if condition:
        passed += 1
    else:
        failed += 1
        print(f"FAILED: {what}")


def logical_lines(path):
    """Containerfile lines with backslash continuations joined and comments dropped."""
    lines, current = [], ""
    for raw in open(path):
        line = raw.rstrip("\n")
        if not current and line.lstrip().startswith("#"):
            continue
        if line.endswith("\\"):
            current += line[:-1] + " "
            continue
        current += line
        if current.strip():
            lines.append(current.strip())
        current = ""
    return lines


def containerfile(path):
    instructions = {"FROM", "RUN", "CMD", "LABEL", "EXPOSE", "ENV", "ADD", "COPY", "ENTRYPOINT",
                    "VOLUME", "USER", "WORKDIR", "ARG", "ONBUILD", "STOPSIGNAL", "HEALTHCHECK",
                    "SHELL"}
    global_args, stage_args, stages, labels = set(), set(), [], {}
    for line in logical_lines(path):
        word, _, rest = line.partition(" ")
        check(word in instructions, f"{path}: unknown instruction {word}")
        used = set(re.findall(r"\$\{(\w+)", rest))
        if word == "ARG":
            name = rest.split("=")[0].strip()
            (stage_args if stages else global_args).add(name)
        elif word == "FROM":
            check(used <= global_args, f"{path}: FROM uses undeclared {sorted(used - global_args)}")
            match = re.search(r"\bAS\s+(\S+)", rest, re.IGNORECASE)
            stages.append(match.group(1) if match else str(len(stages)))
            stage_args, labels = set(), {}
        elif word == "COPY" and "--from=" in rest:
            origin = re.search(r"--from=(\S+)", rest).group(1)
            check(origin in stages[:-1], f"{path}: COPY --from={origin} names no earlier stage")
        elif word == "LABEL":
            labels.update(re.findall(r"([\w.]+)=\"?([^\"\s]*)", rest))
        if word in ("RUN", "LABEL", "ENV", "COPY") and stages:
            undeclared = {v for v in used if v not in stage_args and v not in ("PATH",)}
            # shell variables of the RUN line itself are lower case by convention here
            undeclared = {v for v in undeclared if not v.islower()}
            check(not undeclared, f"{path}: {word} uses {sorted(undeclared)} not declared in stage")
    check(len(stages) >= 2, f"{path}: a build stage and a runtime stage")
    for key in ("org.opencontainers.image.version", "org.opencontainers.image.revision"):
        check(key in labels, f"{path}: the final stage has no {key} label")
    print(f"ok: {path}: {len(stages)} stages ({', '.join(stages)}), labels {sorted(labels)}")


def apptainer_definition(path):
    text = open(path).read()
    header, sections, current = {}, {}, None
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith("%"):
            current = stripped[1:].split()[0].lower()
            check(current not in sections, f"{path}: section %{current} twice")
            sections[current] = []
        elif current is None:
            if not stripped or stripped.startswith("#"):
                continue
            key, colon, value = stripped.partition(":")
            check(bool(colon), f"{path}: header line without ':': {stripped}")
            header[key.strip().lower()] = value.strip()
        else:
            sections[current].append(line)
    valid = {"help", "setup", "files", "labels", "environment", "pre", "post", "runscript",
             "test", "startscript", "arguments"}
    check(set(sections) <= valid, f"{path}: unknown sections {sorted(set(sections) - valid)}")
    check(header.get("bootstrap") in ("oci-archive", "docker-archive", "docker", "localimage"),
          f"{path}: Bootstrap is {header.get('bootstrap')}")
    check("from" in header, f"{path}: no From:")
    declared = {l.split("=")[0].strip() for l in sections.get("arguments", []) if "=" in l}
    used = set(re.findall(r"\{\{\s*(\w+)\s*\}\}", text))
    check(used <= declared, f"{path}: template variables not in %arguments: "
                            f"{sorted(used - declared)}")
    check(any("exec cairn" in l for l in sections.get("runscript", [])), f"{path}: %runscript")
    print(f"ok: {path}: Bootstrap {header.get('bootstrap')}, sections {sorted(sections)}")


def environment_definition(path):
    with open(path, "rb") as f:
        edf = tomllib.load(f)
    check(isinstance(edf.get("image"), str) and edf["image"], f"{path}: image")
    for mount in edf.get("mounts", []):
        check(isinstance(mount, str) and len(mount.split(":")) in (2, 3), f"{path}: mount {mount}")
    env = edf.get("env", {})
    check(all(isinstance(v, str) for v in env.values()), f"{path}: [env] values must be strings")
    check(env.get("PMIX_MCA_psec") in ("^munge", "native"), f"{path}: PMIX_MCA_psec")
    hooks = edf.get("annotations", {}).get("com", {}).get("hooks", {})
    nccl = hooks.get("aws_ofi_nccl", {})
    check(nccl.get("enabled") == "true", f"{path}: com.hooks.aws_ofi_nccl.enabled")
    check(nccl.get("variant") in ("cuda12", "cuda13", "cuda-dl"), f"{path}: aws_ofi_nccl.variant")

    def strings(table):
        return all(strings(v) if isinstance(v, dict) else isinstance(v, str)
                   for v in table.values())
    check(strings(edf.get("annotations", {})), f"{path}: annotation values must be strings")
    print(f"ok: {path}: image {edf['image']}, {len(env)} env, hooks {sorted(hooks)}")


def sbatch_options():
    """The long options of the installed sbatch (its --help, which needs some slurm.conf, and its
    manual page, which also lists the ones --help leaves out), or None without Slurm."""
    sbatch = shutil.which("sbatch")
    if not sbatch:
        return None
    conf = os.path.join(os.environ.get("TMPDIR", "/tmp"), f"lint-slurm-{os.getpid()}.conf")
    with open(conf, "w") as f:
        f.write("ClusterName=lint\nSlurmctldHost=localhost\n")
    help_text = subprocess.run([sbatch, "--help"], capture_output=True, text=True,
                               env=dict(os.environ, SLURM_CONF=conf)).stdout
    os.remove(conf)
    manual = "/usr/share/man/man1/sbatch.1.gz"
    if os.path.exists(manual):
        help_text += gzip.open(manual, "rt", errors="replace").read().replace("\\-", "-")
    return set(re.findall(r"--([a-z][a-z-]*)", help_text))


def shell_scripts(paths):
    known = sbatch_options()
    for path in paths:
        check(subprocess.run(["bash", "-n", path]).returncode == 0, f"{path}: bash -n")
        text = open(path).read()
        if path.endswith(".sbatch"):
            options = re.findall(r"^#SBATCH\s+--([a-z-]+)", text, re.MULTILINE)
            check({"signal", "requeue"} <= set(options), f"{path}: --signal and --requeue")
            if known is not None:
                check(set(options) <= known, f"{path}: sbatch does not know {set(options) - known}")
    helper = open(os.path.join(source, "examples/slurm/cairn-job.sh")).read()
    check("--mpi=pmix" in helper and "--kill-on-bad-exit=1" in helper, "cairn-job.sh: srun flags")
    if shutil.which("shellcheck"):
        result = subprocess.run(["shellcheck", "-x"] + [os.path.relpath(p, source) for p in paths],
                                cwd=source, capture_output=True, text=True)
        check(result.returncode == 0, f"shellcheck:\n{result.stdout}")
    else:
        print("note: shellcheck is not installed; its checks were not run")
    print(f"ok: {len(paths)} shell scripts" + ("" if known else " (sbatch not installed: its"
                                               " option list was not checked)"))


containerfile(os.path.join(source, "containers/Containerfile"))
apptainer_definition(os.path.join(source, "containers/apptainer.def"))
environment_definition(os.path.join(source, "containers/cairn.toml"))
shell_scripts(sorted(glob.glob(os.path.join(source, "examples/slurm/*")) +
                     [os.path.join(source, "containers", name) for name in
                      ("build-image", "oci-to-sqsh", "runtime-packages")] +
                     glob.glob(os.path.join(source, "tests/containers/*.sh"))))
print(f"lint_recipes: {passed} passed, {failed} failed")
sys.exit(1 if failed else 0)
