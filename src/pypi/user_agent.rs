//! The target of a pip or uv client, read from its `User-Agent`: `pip/<v> {json}` or
//! `uv/<v> {json}`, whose JSON carries the interpreter, the distribution (and, from uv,
//! the libc) and the CPU.

use serde::Deserialize;

use super::tags::{Arch, PlatformTag};
use super::target::Target;

#[derive(Debug, Default, Deserialize)]
struct Agent {
    implementation: Option<Named>,
    python: Option<String>,
    distro: Option<Distro>,
    cpu: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
struct Named {
    name: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
struct Distro {
    id: Option<String>,
    libc: Option<Libc>,
}

#[derive(Debug, Default, Deserialize)]
struct Libc {
    lib: Option<String>,
    version: Option<String>,
}

/// The musllinux target of a CPython client on a musl system; `None` for anything else.
/// pip reports no libc on musl, only the distribution (`alpine`): musl 1.2 is assumed then,
/// as every supported Alpine ships it.
pub fn target_from_user_agent(user_agent: &str) -> Option<Target> {
    let (installer, json) = user_agent.split_once(' ')?;
    if !(installer.starts_with("pip/") || installer.starts_with("uv/")) {
        return None;
    }
    let agent: Agent = serde_json::from_str(json).ok()?;
    if agent.implementation?.name? != "CPython" {
        return None;
    }
    let distro = agent.distro.unwrap_or_default();
    let libc = distro.libc.unwrap_or_default();
    let is_musl = libc.lib.as_deref() == Some("musl") || distro.id.as_deref() == Some("alpine");
    if !is_musl {
        return None;
    }
    let (musl_major, musl_minor) = libc
        .version
        .as_deref()
        .and_then(|version| {
            let mut parts = version.split('.');
            Some((parts.next()?.parse().ok()?, parts.next()?.parse().ok()?))
        })
        .unwrap_or((1, 2));
    let mut python = agent
        .python?
        .split('.')
        .map(|part| part.parse::<u8>().ok())
        .collect::<Vec<_>>()
        .into_iter();
    let (major, minor) = (python.next()??, python.next()??);
    let arch = Arch::parse(&agent.cpu?);
    Some(Target {
        major,
        minor,
        platform: PlatformTag::Musllinux {
            major: musl_major,
            minor: musl_minor,
            arch,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_pip_and_uv_on_alpine() {
        let pip = r#"pip/26.3 {"ci":null,"cpu":"x86_64","distro":{"id":"alpine","name":"Alpine Linux","version":"3.22.1"},"implementation":{"name":"CPython","version":"3.13.5"},"installer":{"name":"pip","version":"26.3"},"python":"3.13.5","system":{"name":"Linux","release":"6.1.0"}}"#;
        assert_eq!(
            target_from_user_agent(pip).unwrap().to_string(),
            "cp313-musllinux_1_2_x86_64"
        );
        let uv = r#"uv/0.13.9 {"installer":{"name":"uv","version":"0.13.9"},"python":"3.12.11","implementation":{"name":"CPython","version":"3.12.11"},"distro":{"name":"Alpine Linux","version":"3.22","id":"alpine","libc":{"lib":"musl","version":"1.2.5"}},"system":{"name":"Linux","release":"6.1"},"cpu":"aarch64"}"#;
        assert_eq!(
            target_from_user_agent(uv).unwrap().to_string(),
            "cp312-musllinux_1_2_aarch64"
        );
    }

    #[test]
    fn ignores_glibc_other_interpreters_and_other_clients() {
        let debian = r#"pip/26.3 {"cpu":"x86_64","distro":{"id":"debian","libc":{"lib":"glibc","version":"2.36"}},"implementation":{"name":"CPython"},"python":"3.13.5"}"#;
        assert_eq!(target_from_user_agent(debian), None);
        let pypy = r#"pip/26.3 {"cpu":"x86_64","distro":{"id":"alpine"},"implementation":{"name":"PyPy"},"python":"3.10.14"}"#;
        assert_eq!(target_from_user_agent(pypy), None);
        assert_eq!(target_from_user_agent("curl/8.0"), None);
        assert_eq!(target_from_user_agent("pip/26.3 {not json"), None);
    }
}
