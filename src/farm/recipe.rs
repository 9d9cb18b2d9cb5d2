//! Build recipes (`config/recipes.toml`): per project, optionally per version range, the
//! system packages a build needs, its environment, its import check, and pinned build
//! requirements fetched through edelweiss into the container's wheelhouse.

use std::collections::BTreeMap;
use std::path::Path;
use std::str::FromStr;

use pep440_rs::VersionSpecifiers;
use serde::{Deserialize, Serialize};

use crate::pypi::{PackageName, Version, parse_package_name};

#[derive(Debug, thiserror::Error)]
pub enum RecipeError {
    #[error("cannot read recipes {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("recipes {path}: {source}")]
    Parse {
        path: String,
        source: toml::de::Error,
    },
    #[error("recipe for `{project}`: `{versions}` is not a PEP 440 specifier set")]
    Versions { project: String, versions: String },
    #[error("recipe `{project}` is not a valid project name")]
    Project { project: String },
    #[error("recipe for `{project}`: {reason}")]
    Invalid { project: String, reason: String },
}

/// What a build needs. Serialized canonically into the build key.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Recipe {
    /// Alpine packages the builder image needs (`apk add`); see workers/README.md.
    pub apk: Vec<String>,
    /// Environment for the build step.
    pub env: BTreeMap<String, String>,
    /// Python run in a fresh runtime container after installing the wheel; empty means
    /// "import every top-level module of the wheel".
    pub import_check: String,
    /// Pinned build requirements (`name==version`) placed in the wheelhouse: added to the
    /// sdist's own resolved `[build-system] requires`, overriding any other version of their
    /// projects (or, with resolution off, on top of what the builder has installed).
    pub build_requires: Vec<String>,
    /// A command in the builder whose output is the version of a system library that the
    /// version being built must equal or extend (`3.6.2`, or pygdal's `3.6.2.11`), for
    /// bindings that must match it (GDAL: `gdal-config --version`).
    pub version_must_match: String,
    /// Builder data directories shipped inside the wheel (PROJ's and GDAL's), each found on
    /// import through an environment variable that the wheel sets when it is unset.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub bundle_data: Vec<BundledData>,
}

/// One data directory of the builder shipped in the wheel.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BundledData {
    /// Where it goes in the wheel, e.g. `osgeo/proj_data`: inside a package, whose
    /// `__init__.py` sets `env`.
    pub path: String,
    /// A builder shell command printing the directory to copy.
    pub source: String,
    /// The environment variable the library reads the directory from (`PROJ_DATA`).
    pub env: String,
}

impl BundledData {
    fn check(&self) -> Result<(), String> {
        let identifier = |part: &str| {
            !part.is_empty()
                && !part.starts_with(|c: char| c.is_ascii_digit())
                && part.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        };
        let parts: Vec<&str> = self.path.split('/').collect();
        if parts.len() < 2 || !parts.iter().all(|part| identifier(part)) {
            return Err(format!(
                "bundle_data path `{}` must be a directory inside a package, like `osgeo/proj_data`",
                self.path
            ));
        }
        if !identifier(&self.env) {
            return Err(format!(
                "bundle_data env `{}` is not an environment variable name",
                self.env
            ));
        }
        if self.source.trim().is_empty() {
            return Err(format!("bundle_data `{}` has no source command", self.path));
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct ProjectRecipe {
    project: String,
    #[serde(default)]
    versions: String,
    #[serde(flatten)]
    recipe: Recipe,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RecipeFile {
    default: Recipe,
    #[serde(default, rename = "recipe")]
    recipes: Vec<ProjectRecipe>,
}

#[derive(Debug, Clone)]
struct Matcher {
    project: PackageName,
    versions: Option<VersionSpecifiers>,
    recipe: Recipe,
}

#[derive(Debug, Clone)]
pub struct RecipeBook {
    default: Recipe,
    matchers: Vec<Matcher>,
}

/// The recipes shipped with edelweiss, used when no file is configured.
pub const SHIPPED: &str = include_str!("../../config/recipes.toml");

impl RecipeBook {
    pub fn load(path: &Path) -> Result<Self, RecipeError> {
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| RecipeError::Read {
            path: shown.clone(),
            source,
        })?;
        Self::parse(&text, &shown)
    }

    pub fn parse(text: &str, origin: &str) -> Result<Self, RecipeError> {
        let file: RecipeFile = toml::from_str(text).map_err(|source| RecipeError::Parse {
            path: origin.to_string(),
            source,
        })?;
        for data in &file.default.bundle_data {
            data.check().map_err(|reason| RecipeError::Invalid {
                project: "[default]".into(),
                reason,
            })?;
        }
        let matchers = file
            .recipes
            .into_iter()
            .map(|entry| {
                for data in &entry.recipe.bundle_data {
                    data.check().map_err(|reason| RecipeError::Invalid {
                        project: entry.project.clone(),
                        reason,
                    })?;
                }
                let project =
                    parse_package_name(&entry.project).map_err(|_| RecipeError::Project {
                        project: entry.project.clone(),
                    })?;
                let versions = match entry.versions.trim() {
                    "" => None,
                    text => Some(VersionSpecifiers::from_str(text).map_err(|_| {
                        RecipeError::Versions {
                            project: entry.project.clone(),
                            versions: text.to_string(),
                        }
                    })?),
                };
                Ok(Matcher {
                    project,
                    versions,
                    recipe: entry.recipe,
                })
            })
            .collect::<Result<_, RecipeError>>()?;
        Ok(Self {
            default: file.default,
            matchers,
        })
    }

    /// The first recipe for `project` whose version range holds `version`, else the default.
    pub fn for_release(&self, project: &PackageName, version: &Version) -> &Recipe {
        self.matchers
            .iter()
            .find(|matcher| {
                &matcher.project == project
                    && matcher
                        .versions
                        .as_ref()
                        .is_none_or(|range| range.contains(version))
            })
            .map_or(&self.default, |matcher| &matcher.recipe)
    }
}

impl Recipe {
    /// The canonical encoding that enters the build key (fields in declaration order,
    /// maps sorted).
    pub fn canonical_json(&self) -> String {
        // A struct of strings, lists and a BTreeMap: serializing cannot fail.
        serde_json::to_string(self).expect("recipes serialize")
    }

    /// Names the builder image made for this recipe's system packages: the first 12 hex
    /// digits of the sha256 of the sorted `apk` list. A target's builder may say
    /// `{recipe}` where this goes (`edelweiss-builder:cp313-{recipe}`).
    pub fn image_tag(&self) -> String {
        let mut packages = self.apk.clone();
        packages.sort();
        packages.dedup();
        crate::pypi::Sha256Digest::of(packages.join(" ").as_bytes()).to_hex()[..12].to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn release(name: &str, version: &str) -> (PackageName, Version) {
        (parse_package_name(name).unwrap(), version.parse().unwrap())
    }

    #[test]
    fn the_shipped_recipes_cover_the_projects_edelweiss_exists_for() {
        let book = RecipeBook::parse(SHIPPED, "shipped").unwrap();
        for project in [
            "psycopg2",
            "gdal",
            "pygdal",
            "cffi",
            "bcrypt",
            "cryptography",
            "pillow",
            "lxml",
            "psutil",
            "uwsgi",
            "mysqlclient",
            "python-ldap",
        ] {
            let name = parse_package_name(project).unwrap();
            assert!(
                book.matchers.iter().any(|matcher| matcher.project == name),
                "no recipe for {project}"
            );
        }
        let (name, version) = release("psycopg2", "2.9.10");
        assert!(
            book.for_release(&name, &version)
                .apk
                .contains(&"postgresql-dev".to_string())
        );
        let (name, version) = release("GDAL", "3.6.2");
        assert_eq!(
            book.for_release(&name, &version).version_must_match,
            "gdal-config --version"
        );
        let (name, version) = release("unknown-thing", "1.0");
        assert_eq!(book.for_release(&name, &version), &book.default);
    }

    #[test]
    fn image_tags_are_what_workers_build_images_computes() {
        let recipe = Recipe {
            apk: vec![
                "zlib-dev".into(),
                "postgresql-dev".into(),
                "zlib-dev".into(),
            ],
            ..Recipe::default()
        };
        let expected = crate::pypi::Sha256Digest::of(b"postgresql-dev zlib-dev").to_hex();
        assert_eq!(recipe.image_tag(), expected[..12]);
    }

    #[test]
    fn bundled_data_must_land_inside_a_package_under_a_variable_name() {
        let recipe = |path: &str, env: &str| {
            format!(
                "[default]\n[[recipe]]\nproject = \"demo\"\nbundle_data = [{{ path = \"{path}\", source = \"echo /x\", env = \"{env}\" }}]\n"
            )
        };
        assert!(RecipeBook::parse(&recipe("osgeo/proj_data", "PROJ_DATA"), "ok").is_ok());
        for (path, env) in [
            ("proj_data", "PROJ_DATA"),
            ("osgeo/../etc", "PROJ_DATA"),
            ("/osgeo/proj_data", "PROJ_DATA"),
            ("osgeo/proj_data", "PROJ DATA"),
        ] {
            let error = RecipeBook::parse(&recipe(path, env), "bad").unwrap_err();
            assert!(
                matches!(error, RecipeError::Invalid { .. }),
                "{path} {env}: {error}"
            );
        }
        let (name, version) = release("GDAL", "3.6.2");
        let book = RecipeBook::parse(SHIPPED, "shipped").unwrap();
        let envs: Vec<&str> = book
            .for_release(&name, &version)
            .bundle_data
            .iter()
            .map(|data| data.env.as_str())
            .collect();
        assert_eq!(envs, ["GDAL_DATA", "PROJ_DATA"]);
    }

    #[test]
    fn version_ranges_select_a_recipe() {
        let text = "[default]\n[[recipe]]\nproject = \"demo\"\nversions = \"<2\"\nimport_check = \"old\"\n[[recipe]]\nproject = \"demo\"\nimport_check = \"new\"\n";
        let book = RecipeBook::parse(text, "test").unwrap();
        let (name, old) = release("demo", "1.5");
        assert_eq!(book.for_release(&name, &old).import_check, "old");
        let (name, new) = release("demo", "2.0");
        assert_eq!(book.for_release(&name, &new).import_check, "new");
        assert!(
            RecipeBook::parse(
                "[default]\n[[recipe]]\nproject = \"x\"\nversions = \">>1\"\n",
                "bad"
            )
            .is_err()
        );
        assert!(RecipeBook::parse("[default]\nunknown = 1\n", "bad").is_err());
    }
}
