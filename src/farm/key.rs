//! The build key: what decides a build's result, hashed. A key that has a result is never
//! built again.

use std::fmt;

use sha2::{Digest as _, Sha256};

use crate::pypi::{Sha256Digest, Target};

/// Bump when what the steps do changes in a way their text does not show.
/// 2: repaired wheels must pass the symbol check against the runtime (`symbols`).
/// 3: build requirements resolved through the index and built with isolation; the smoke
///    test installs the wheel's runtime dependencies.
/// 4: the crates of an sdist's Cargo.lock files are vendored and cargo runs offline.
pub const CACHE_VERSION: u32 = 4;

/// The in-container steps; their bytes enter every key, so editing them rebuilds.
pub const BUILD_STEP: &str = include_str!("../../workers/steps/build.sh");
pub const SMOKE_STEP: &str = include_str!("../../workers/steps/smoke.sh");
pub const BUNDLE_DATA_STEP: &str = include_str!("../../workers/steps/bundle_data.py");
pub const REQUIRES_STEP: &str = include_str!("../../workers/steps/requires.sh");
pub const BUILD_REQUIRES_HOOK: &str = include_str!("../../workers/steps/build_requires.py");

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(transparent)]
pub struct BuildKey(Sha256Digest);

pub struct KeyInputs<'a> {
    pub sdist_sha256: Sha256Digest,
    pub target: &'a Target,
    /// The matched recipe's canonical JSON.
    pub recipe: &'a str,
    /// The builder image's ID, or the root filesystem's content id.
    pub builder: &'a str,
    /// The smoke-test image's identity.
    pub runtime: &'a str,
    /// The resolved build requirements' canonical JSON (`BuildRequirements`); empty where
    /// resolution is off.
    pub build_requirements: &'a str,
    /// The vendored crates' canonical JSON (`LockedCrates`); empty for an sdist without a
    /// Cargo.lock.
    pub crates: &'a str,
}

impl BuildKey {
    /// sha256 over, in this order, each field length-prefixed (so two different input
    /// lists never encode alike):
    /// 1. `"edelweiss-build"` and `CACHE_VERSION`,
    /// 2. the build, smoke, bundle-data, requires step scripts and the build-requires hook,
    /// 3. the sdist's sha256,
    /// 4. the target (`cp313-musllinux_1_2_x86_64`),
    /// 5. the recipe's canonical JSON,
    /// 6. the builder's identity, 7. the runtime (smoke test) image's identity,
    /// 8. the resolved build requirements: what was asked and each wheel's filename and
    ///    sha256, so a new setuptools release on the index is a new build. (What the
    ///    backend adds through `get_requires_for_build_wheel` is resolved during the build,
    ///    from these and the sdist, and is listed in the log.)
    /// 9. the crates vendored for cargo: the sdist's Cargo.lock files and each crate's
    ///    name, version and sha256, so the build's crates are exactly the keyed ones.
    pub fn compute(inputs: &KeyInputs<'_>) -> Self {
        let mut hasher = Sha256::new();
        let mut field = |bytes: &[u8]| {
            hasher.update((bytes.len() as u64).to_be_bytes());
            hasher.update(bytes);
        };
        field(b"edelweiss-build");
        field(&CACHE_VERSION.to_be_bytes());
        field(BUILD_STEP.as_bytes());
        field(SMOKE_STEP.as_bytes());
        field(BUNDLE_DATA_STEP.as_bytes());
        field(REQUIRES_STEP.as_bytes());
        field(BUILD_REQUIRES_HOOK.as_bytes());
        field(inputs.sdist_sha256.to_hex().as_bytes());
        field(inputs.target.to_string().as_bytes());
        field(inputs.recipe.as_bytes());
        field(inputs.builder.as_bytes());
        field(inputs.runtime.as_bytes());
        field(inputs.build_requirements.as_bytes());
        field(inputs.crates.as_bytes());
        Self(Sha256Digest::from_hasher(hasher))
    }

    pub fn from_hex(hex: &str) -> Option<Self> {
        hex.parse().ok().map(Self)
    }

    /// A key named by a label, for tests of what is done with keys.
    #[cfg(test)]
    pub fn labelled(label: &str) -> Self {
        Self(Sha256Digest::of(label.as_bytes()))
    }
}

impl fmt::Display for BuildKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inputs<'a>(target: &'a Target, recipe: &'a str) -> KeyInputs<'a> {
        KeyInputs {
            sdist_sha256: Sha256Digest::of(b"sdist"),
            target,
            recipe,
            builder: "rootfs:abc",
            runtime: "rootfs:abc",
            build_requirements: "",
            crates: "",
        }
    }

    /// Pins the digest of a fixture: an accidental change to the key's encoding, the
    /// steps or CACHE_VERSION fails here, and the expected value is updated on purpose.
    #[test]
    fn the_key_of_a_fixture_is_pinned() {
        let target: Target = "cp313-musllinux_1_2_x86_64".parse().unwrap();
        let key = BuildKey::compute(&inputs(&target, "{\"apk\":[]}"));
        let steps = Sha256Digest::of(format!("{BUILD_STEP}{SMOKE_STEP}").as_bytes());
        insta::assert_snapshot!(format!("steps {steps}\nkey {key}"));
    }

    #[test]
    fn every_input_changes_the_key() {
        let target: Target = "cp313-musllinux_1_2_x86_64".parse().unwrap();
        let other_target: Target = "cp312-musllinux_1_2_x86_64".parse().unwrap();
        let base = BuildKey::compute(&inputs(&target, "{}"));
        let mut variants = vec![
            BuildKey::compute(&inputs(&other_target, "{}")),
            BuildKey::compute(&inputs(&target, "{\"env\":1}")),
        ];
        let mut changed = inputs(&target, "{}");
        changed.sdist_sha256 = Sha256Digest::of(b"other");
        variants.push(BuildKey::compute(&changed));
        let mut changed = inputs(&target, "{}");
        changed.builder = "rootfs:def";
        variants.push(BuildKey::compute(&changed));
        let mut changed = inputs(&target, "{}");
        changed.runtime = "image:sha256:1";
        variants.push(BuildKey::compute(&changed));
        let mut changed = inputs(&target, "{}");
        changed.build_requirements = "{\"pinned\":[]}";
        variants.push(BuildKey::compute(&changed));
        let mut changed = inputs(&target, "{}");
        changed.crates = "{\"locks\":[],\"crates\":[]}";
        variants.push(BuildKey::compute(&changed));
        for variant in variants {
            assert_ne!(variant, base);
        }
    }
}
