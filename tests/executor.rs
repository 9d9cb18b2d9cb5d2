//! The executors against hostile programs, in a minimal busybox root: the isolation and
//! limits every build relies on, checked without the full musl root.

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use edelweiss::executor::{Executor, Limits, Mount, RunOutcome, RunSpec, Runc};

/// A root with only a static busybox; `sh` and friends are its applets.
fn busybox_root(dir: &Path) -> PathBuf {
    let root = dir.join("rootfs");
    std::fs::create_dir_all(root.join("bin")).unwrap();
    std::fs::copy("/bin/busybox", root.join("bin/busybox"))
        .expect("busybox-static (see .ci/setup)");
    for applet in [
        "sh", "echo", "cat", "dd", "ls", "ip", "sleep", "head", "touch", "id", "wget", "nc",
    ] {
        std::os::unix::fs::symlink("busybox", root.join("bin").join(applet)).unwrap();
    }
    for directory in ["etc", "input", "output"] {
        std::fs::create_dir_all(root.join(directory)).unwrap();
    }
    root
}

fn spec(root: &Path, work: &Path, name: &str, script: &str) -> RunSpec {
    let output = work.join("output");
    std::fs::create_dir_all(&output).unwrap();
    std::fs::set_permissions(&output, std::os::unix::fs::PermissionsExt::from_mode(0o777)).unwrap();
    RunSpec {
        name: format!("edelweiss-test-{name}-{}", std::process::id()),
        labels: vec![],
        image: root.display().to_string(),
        command: vec!["/bin/sh".into(), "-c".into(), script.into()],
        env: vec![("PATH".into(), "/bin".into())],
        mounts: vec![Mount {
            host: output,
            container: "/output".into(),
            read_only: false,
        }],
        workdir: "/scratch".into(),
        limits: Limits {
            time: Duration::from_secs(10),
            memory_mb: 64,
            cpus: 1.0,
            pids: 64,
            scratch_mb: 16,
            max_file_mb: 8,
        },
        log: work.join(format!("{name}.log")),
    }
}

fn runc(work: &Path) -> Runc {
    Runc::new(work.join("runc-state"), work.join("bundles"))
}

fn run(executor: &Runc, spec: RunSpec) -> (RunOutcome, String) {
    let log = spec.log.clone();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let outcome = runtime.block_on(executor.run(spec)).expect("runc runs");
    (outcome, std::fs::read_to_string(log).unwrap_or_default())
}

#[test]
fn runs_unprivileged_with_a_read_only_root_and_writable_scratch_and_output() {
    let work = tempfile::tempdir().unwrap();
    let root = busybox_root(work.path());
    let executor = runc(work.path());
    let script = "id -u; echo hi > /scratch/a && cat /scratch/a; echo out > /output/result; touch /etc/evil 2>&1 || echo root-is-read-only";
    let (outcome, log) = run(&executor, spec(&root, work.path(), "basic", script));
    assert_eq!(outcome, RunOutcome::Exited(0), "{log}");
    assert!(log.starts_with("65534\nhi\n"), "{log}");
    assert!(log.contains("root-is-read-only"), "{log}");
    assert_eq!(
        std::fs::read_to_string(work.path().join("output/result")).unwrap(),
        "out\n"
    );
    assert!(!root.join("etc/evil").exists());
}

#[test]
fn has_no_network() {
    let work = tempfile::tempdir().unwrap();
    let root = busybox_root(work.path());
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let port = listener.local_addr().unwrap().port();
    let script = format!(
        "echo interfaces=$(ip -o link | grep -v ' lo:' | wc -l); echo probe | nc -w 2 127.0.0.1 {port}; echo exit=$?"
    );
    let (outcome, log) = run(
        &runc(work.path()),
        spec(&root, work.path(), "network", &script),
    );
    assert_eq!(outcome, RunOutcome::Exited(0), "{log}");
    assert!(
        log.lines().any(|line| line == "interfaces=0"),
        "an interface besides lo exists: {log}"
    );
    assert!(
        listener.accept().is_err(),
        "the host's loopback server received a connection"
    );
}

#[test]
fn is_killed_at_the_time_limit_and_leaves_no_container() {
    let work = tempfile::tempdir().unwrap();
    let root = busybox_root(work.path());
    let executor = runc(work.path());
    let mut endless = spec(&root, work.path(), "endless", "while true; do :; done");
    endless.limits.time = Duration::from_secs(2);
    let name = endless.name.clone();
    let started = Instant::now();
    let (outcome, _) = run(&executor, endless);
    assert_eq!(outcome, RunOutcome::TimedOut);
    assert!(started.elapsed() < Duration::from_secs(8));
    let listing = std::process::Command::new("runc")
        .arg("--root")
        .arg(work.path().join("runc-state"))
        .args(["list", "--quiet"])
        .output()
        .unwrap();
    assert!(!String::from_utf8_lossy(&listing.stdout).contains(&name));
}

#[test]
fn limits_processes_memory_and_scratch_space() {
    let work = tempfile::tempdir().unwrap();
    let root = busybox_root(work.path());
    let executor = runc(work.path());
    let fork_bomb = "for i in $(seq 1 200); do sleep 5 & done 2>/dev/null; echo spawned; wait";
    let (outcome, log) = run(
        &executor,
        spec(
            &root,
            work.path(),
            "forks",
            &fork_bomb.replace("seq 1 200", "busybox seq 1 200"),
        ),
    );
    assert!(
        log.contains("can't fork")
            || log.contains("Resource temporarily unavailable")
            || outcome != RunOutcome::Exited(0),
        "{outcome:?} {log}"
    );

    let hog = "hog=$(busybox dd if=/dev/zero bs=1M count=256 2>/dev/null | busybox tr '\\0' a); echo survived ${#hog}";
    let (outcome, log) = run(&executor, spec(&root, work.path(), "memory", hog));
    assert!(
        outcome == RunOutcome::OutOfMemory || !log.contains("survived"),
        "{outcome:?} {log}"
    );

    let filler = "dd if=/dev/zero of=/scratch/fill bs=1M count=100; echo dd=$?";
    let mut fill = spec(&root, work.path(), "scratch", filler);
    fill.limits.max_file_mb = 1024;
    let (_, log) = run(&executor, fill);
    assert!(log.contains("No space left on device"), "{log}");

    let big_file = "dd if=/dev/zero of=/output/big bs=1M count=20; echo dd=$?";
    let (_, log) = run(&executor, spec(&root, work.path(), "file-size", big_file));
    assert!(
        log.contains("File size limit exceeded"),
        "a file past max_file_mb: {log}"
    );
}

/// `read_files` with each executor over the same root: a symlink's target (docker copies
/// the link itself, podman follows it), a path through a symlinked directory, an absent file,
/// and nothing run or left behind.
#[test]
fn reads_files_of_an_image_without_running_it() {
    use edelweiss::executor::{ContainerCli, Engine};
    let work = tempfile::tempdir().unwrap();
    let root = busybox_root(work.path());
    std::fs::create_dir_all(root.join("lib")).unwrap();
    std::fs::create_dir_all(root.join("usr")).unwrap();
    std::fs::write(root.join("lib/ld-musl-x86_64.so.1"), b"the loader").unwrap();
    std::os::unix::fs::symlink(
        "ld-musl-x86_64.so.1",
        root.join("lib/libc.musl-x86_64.so.1"),
    )
    .unwrap();
    std::os::unix::fs::symlink("/lib", root.join("usr/lib")).unwrap();
    let paths = vec![
        "/lib/libc.musl-x86_64.so.1".to_string(),
        "/usr/lib/ld-musl-x86_64.so.1".to_string(),
        "/lib/absent.so".to_string(),
    ];
    let expected = vec![
        Some(b"the loader".to_vec()),
        Some(b"the loader".to_vec()),
        None,
    ];
    let runtime = tokio::runtime::Runtime::new().unwrap();

    let read =
        runtime.block_on(runc(work.path()).read_files(&root.display().to_string(), paths.clone()));
    assert_eq!(read.unwrap(), expected, "runc");

    for engine in [Engine::Docker, Engine::Podman] {
        let executor = ContainerCli::new(engine, "reader-test");
        let program = executor.name();
        if !common::farm::engine_answers(program) {
            continue;
        }
        let image = format!("edelweiss-test-read:{}", std::process::id());
        let import = format!(
            "tar -C {} -c . | {program} import - {image}",
            root.display()
        );
        common::assert_success(std::process::Command::new("sh").args(["-c", &import]));
        let before = containers(program);
        let read = runtime.block_on(executor.read_files(&image, paths.clone()));
        let after = containers(program);
        let _ = std::process::Command::new(program)
            .args(["rmi", &image])
            .output();
        assert_eq!(read.unwrap(), expected, "{program}");
        assert_eq!(before, after, "{program} left a container");
    }
}

fn containers(program: &str) -> Vec<String> {
    common::listed_lines(std::process::Command::new(program).args(["ps", "--all", "--quiet"]))
}
