//! Project pages that ask the farm for what they lack. A page asked for on a target the
//! farm builds for (`/t/<target>/simple/<project>/`, or `/simple/<project>/` from pip or
//! uv, whose User-Agent names the client's target) queues builds of the releases lacking
//! that target's wheel; with `on_miss = "wait"` a target page waits for them, keeping the
//! connection alive, so the first install gets the wheel.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use futures::stream::BoxStream;
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::{BuildService, KnownMissing, MissingWheel, missing_wheels};
use crate::catalog::{self, CatalogError, ServedPage};
use crate::config::{OnDemandSettings, OnMiss};
use crate::index::{Body, Index, View};
use crate::mirror::Mirror;
use crate::pypi::simple::ProjectDetail;
use crate::pypi::{PackageName, Target, target_from_user_agent};

/// Whitespace is valid before both an HTML and a JSON document, and resets the client's
/// read timeout (pip's default is 15 s).
const KEEPALIVE_EVERY: Duration = Duration::from_secs(5);

/// A body sent as it is made: keepalive whitespace, then the page.
pub type PageStream = BoxStream<'static, std::io::Result<Bytes>>;

/// What a target page answers.
pub enum TargetPage {
    /// The page as it is; the builds it lacks may have been queued in the background.
    Ready(ServedPage),
    /// Whitespace while the builds the page lacked run, then the page as rendered after
    /// them (not compressed: the whitespace went out uncompressed, and not cacheable).
    Waiting(PageStream),
}

/// What a target page request does about releases lacking the target's wheel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum OnTargetPage {
    Nothing,
    Queue,
    Wait,
}

impl OnTargetPage {
    fn choose(on_miss: OnMiss, farm_builds_target: bool) -> Self {
        match on_miss {
            _ if !farm_builds_target => Self::Nothing,
            OnMiss::Off => Self::Nothing,
            OnMiss::Background => Self::Queue,
            OnMiss::Wait => Self::Wait,
        }
    }
}

pub struct OnDemandPages {
    index: Arc<Index>,
    mirror: Arc<Mirror>,
    builds: Arc<BuildService>,
    settings: OnDemandSettings,
}

impl OnDemandPages {
    pub fn new(
        index: Arc<Index>,
        mirror: Arc<Mirror>,
        builds: Arc<BuildService>,
        settings: OnDemandSettings,
    ) -> Self {
        Self {
            index,
            mirror,
            builds,
            settings,
        }
    }

    /// Target pages hide sdists with `wheels_only`, so a builder stage without compilers
    /// fails fast.
    pub fn target_view(&self) -> View {
        match self.settings.wheels_only {
            true => View::WheelsOnly,
            false => View::All,
        }
    }

    /// `name`'s `/simple/` page as `body`, `None` when neither this index nor an upstream
    /// has it. When `user_agent` is pip's or uv's on a target the farm builds for, what the
    /// page lacks for it is built in the background.
    pub async fn simple_page(
        self: &Arc<Self>,
        name: &PackageName,
        user_agent: Option<&str>,
        body: Body,
    ) -> Result<Option<ServedPage>, CatalogError> {
        let Some(served) = catalog::page(&self.index, &self.mirror, name, View::All, body).await?
        else {
            return Ok(None);
        };
        if let Some(target) = self.client_target(user_agent) {
            self.queue_missing(name, &served, target);
        }
        Ok(Some(served))
    }

    /// `name`'s `/t/<target>/simple/` page as `body`, `None` when neither this index nor
    /// an upstream has it; what it lacks for `target` is queued, or waited for.
    pub async fn target_page(
        self: &Arc<Self>,
        name: &PackageName,
        target: Target,
        body: Body,
    ) -> Result<Option<TargetPage>, CatalogError> {
        let view = self.target_view();
        let Some(served) = catalog::page(&self.index, &self.mirror, name, view, body).await? else {
            return Ok(None);
        };
        match OnTargetPage::choose(self.settings.on_miss, self.builds.serves(&target)) {
            OnTargetPage::Nothing => {}
            OnTargetPage::Queue => self.queue_missing(name, &served, target),
            OnTargetPage::Wait => {
                let missing = self.missing_for(name, &served, &target).await?;
                if !missing.is_empty() {
                    let stream = self.wait_for_builds(name.clone(), target, missing, view, body);
                    return Ok(Some(TargetPage::Waiting(stream)));
                }
            }
        }
        Ok(Some(TargetPage::Ready(served)))
    }

    /// The farm's target for the client `user_agent` names, when on-demand builds are on
    /// for `/simple/` pages and the farm builds for it.
    fn client_target(&self, user_agent: Option<&str>) -> Option<Target> {
        if !self.settings.infer_from_user_agent || self.settings.on_miss == OnMiss::Off {
            return None;
        }
        let client = target_from_user_agent(user_agent?)?;
        self.builds.target_for_client(&client)
    }

    /// The releases `served` lacks a wheel for on `target`, made from the records again
    /// when not known; remembered for this version of the page.
    async fn missing_for(
        &self,
        name: &PackageName,
        served: &ServedPage,
        target: &Target,
    ) -> Result<Arc<[MissingWheel]>, CatalogError> {
        let version = served.page.version();
        self.missing_at(name, version, served.detail.as_ref(), target)
            .await
    }

    async fn missing_at(
        &self,
        name: &PackageName,
        version: u64,
        detail: Option<&ProjectDetail>,
        target: &Target,
    ) -> Result<Arc<[MissingWheel]>, CatalogError> {
        let known = self.builds.known_missing();
        let releases = self.settings.releases;
        if let Some(missing) = known_missing(known, name, target, version, detail, releases) {
            return Ok(missing);
        }
        let missing: Arc<[MissingWheel]> =
            match catalog::detail(&self.index, &self.mirror, name).await? {
                Some((detail, _)) => missing_wheels(&detail, target, releases).into(),
                None => Arc::from([]),
            };
        known.remember(name, target, version, missing.clone());
        Ok(missing)
    }

    /// Queues, in the background, the builds `served` lacks for `target`; when that is not
    /// known yet, it is found out in the background too, so the page is not held up.
    fn queue_missing(self: &Arc<Self>, name: &PackageName, served: &ServedPage, target: Target) {
        let version = served.page.version();
        let known = known_missing(
            self.builds.known_missing(),
            name,
            &target,
            version,
            served.detail.as_ref(),
            self.settings.releases,
        );
        if known.as_ref().is_some_and(|missing| missing.is_empty()) {
            return;
        }
        let (pages, name) = (self.clone(), name.clone());
        tokio::spawn(async move {
            let missing = match known {
                Some(missing) => missing,
                None => match pages.missing_at(&name, version, None, &target).await {
                    Ok(missing) => missing,
                    Err(error) => {
                        tracing::warn!(project = %name, %error, "could not check for missing wheels");
                        return;
                    }
                },
            };
            if !missing.is_empty() {
                pages.builds.queue_missing(&name, &missing, &target).await;
            }
        });
    }

    /// Queues the builds of `missing`, streams whitespace while they run (up to
    /// `wait_seconds`), then the page as it is after them.
    fn wait_for_builds(
        self: &Arc<Self>,
        name: PackageName,
        target: Target,
        missing: Arc<[MissingWheel]>,
        view: View,
        body: Body,
    ) -> PageStream {
        let (sender, receiver) = mpsc::channel::<std::io::Result<Bytes>>(4);
        let pages = self.clone();
        tokio::spawn(async move {
            let deadline = Instant::now() + Duration::from_secs(pages.settings.wait_seconds);
            let ids = pages.builds.queue_missing(&name, &missing, &target).await;
            if !keep_alive_until_built(pages.builds.as_ref(), &ids, deadline, &sender).await {
                return;
            }
            let page = match catalog::page(&pages.index, &pages.mirror, &name, view, body).await {
                Ok(Some(served)) => Ok(served.page.identity().clone()),
                Ok(None) => Ok(Bytes::new()),
                Err(error) => Err(std::io::Error::other(error.to_string())),
            };
            let _ = sender.send(page).await;
        });
        futures::stream::unfold(receiver, |mut receiver| async move {
            receiver.recv().await.map(|chunk| (chunk, receiver))
        })
        .boxed()
    }
}

/// The releases lacking a wheel for `target` on version `version` of `name`'s page, when
/// known without reading the records again: checked before for this version of the page,
/// or from the page model (`detail`) the request just made, then remembered.
fn known_missing(
    known: &KnownMissing,
    name: &PackageName,
    target: &Target,
    version: u64,
    detail: Option<&ProjectDetail>,
    releases: usize,
) -> Option<Arc<[MissingWheel]>> {
    if let Some(missing) = known.get(name, target, version) {
        return Some(missing);
    }
    let missing: Arc<[MissingWheel]> = missing_wheels(detail?, target, releases).into();
    known.remember(name, target, version, missing.clone());
    Some(missing)
}

/// Whether a build has finished, after waiting for it up to `timeout`.
trait BuildWaiter {
    async fn finished_within(&self, id: &str, timeout: Duration) -> bool;
}

impl BuildWaiter for BuildService {
    /// A build that cannot be read counts as finished: the page is sent as it is.
    async fn finished_within(&self, id: &str, timeout: Duration) -> bool {
        self.wait(id, timeout)
            .await
            .ok()
            .flatten()
            .is_none_or(|record| record.is_finished())
    }
}

/// Sends one space each time a build of `ids` is still running after a keepalive
/// interval, until each has finished or `deadline` passes; false when the client has gone.
async fn keep_alive_until_built(
    builds: &impl BuildWaiter,
    ids: &[String],
    deadline: Instant,
    sender: &mpsc::Sender<std::io::Result<Bytes>>,
) -> bool {
    for id in ids {
        while Instant::now() < deadline {
            if builds.finished_within(id, KEEPALIVE_EVERY).await {
                break;
            }
            if sender.send(Ok(Bytes::from_static(b" "))).await.is_err() {
                return false;
            }
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, HashMap};
    use std::sync::Mutex;

    use super::*;
    use crate::pypi::Sha256Digest;
    use crate::pypi::simple::{FileDetail, Meta};

    fn name(text: &str) -> PackageName {
        crate::pypi::parse_package_name(text).unwrap()
    }

    fn target() -> Target {
        "cp313-musllinux_1_2_x86_64".parse().unwrap()
    }

    fn detail(filenames: &[&str]) -> ProjectDetail {
        let files = filenames
            .iter()
            .map(|filename| {
                let mut file = FileDetail::new(*filename, format!("/files/x/{filename}"));
                let digest = Sha256Digest::of(filename.as_bytes()).to_hex();
                file.hashes = BTreeMap::from([("sha256".into(), digest)]);
                file
            })
            .collect();
        ProjectDetail {
            meta: Meta::default(),
            name: "psycopg2".into(),
            versions: vec![],
            files,
        }
    }

    #[test]
    fn a_target_page_waits_queues_or_does_nothing_by_setting() {
        assert_eq!(OnTargetPage::choose(OnMiss::Wait, true), OnTargetPage::Wait);
        assert_eq!(
            OnTargetPage::choose(OnMiss::Background, true),
            OnTargetPage::Queue
        );
        assert_eq!(
            OnTargetPage::choose(OnMiss::Off, true),
            OnTargetPage::Nothing
        );
        assert_eq!(
            OnTargetPage::choose(OnMiss::Wait, false),
            OnTargetPage::Nothing,
            "a target the farm does not build for queues nothing"
        );
    }

    #[test]
    fn what_a_page_lacks_is_found_once_per_version_of_the_page() {
        let (known, project, target) = (KnownMissing::default(), name("psycopg2"), target());
        assert!(
            known_missing(&known, &project, &target, 1, None, 1).is_none(),
            "neither checked before nor made by this request: the records must be read"
        );
        let made = detail(&["psycopg2-2.9.10.tar.gz"]);
        let missing = known_missing(&known, &project, &target, 1, Some(&made), 1).unwrap();
        assert_eq!(missing[0].sdist_filename, "psycopg2-2.9.10.tar.gz");
        let again = known_missing(&known, &project, &target, 1, None, 1).unwrap();
        assert!(
            Arc::ptr_eq(&missing, &again),
            "the same version is not checked again"
        );
        assert!(
            known_missing(&known, &project, &target, 2, None, 1).is_none(),
            "a write to the project makes a new version of the page"
        );
        let built = detail(&[
            "psycopg2-2.9.10.tar.gz",
            "psycopg2-2.9.10-cp313-cp313-musllinux_1_2_x86_64.whl",
        ]);
        let after = known_missing(&known, &project, &target, 2, Some(&built), 1).unwrap();
        assert!(after.is_empty());
    }

    /// Builds that finish after a number of keepalive intervals each.
    struct FakeBuilds {
        rounds_left: Mutex<HashMap<String, u32>>,
    }

    impl FakeBuilds {
        fn new(rounds: &[(&str, u32)]) -> Self {
            let rounds = rounds.iter().map(|(id, left)| (id.to_string(), *left));
            Self {
                rounds_left: Mutex::new(rounds.collect()),
            }
        }
    }

    impl BuildWaiter for FakeBuilds {
        async fn finished_within(&self, id: &str, _timeout: Duration) -> bool {
            let mut rounds_left = self.rounds_left.lock().unwrap();
            let left = rounds_left.get_mut(id).unwrap();
            *left = left.saturating_sub(1);
            *left == 0
        }
    }

    fn ids(ids: &[&str]) -> Vec<String> {
        ids.iter().map(|id| id.to_string()).collect()
    }

    #[tokio::test]
    async fn one_space_goes_out_per_interval_a_build_is_still_running() {
        let builds = FakeBuilds::new(&[("a", 3), ("b", 1), ("c", 2)]);
        let (sender, mut receiver) = mpsc::channel(16);
        let far = Instant::now() + Duration::from_secs(3600);
        assert!(keep_alive_until_built(&builds, &ids(&["a", "b", "c"]), far, &sender).await);
        drop(sender);
        let mut sent = Vec::new();
        while let Some(chunk) = receiver.recv().await {
            sent.extend_from_slice(&chunk.unwrap());
        }
        assert_eq!(sent, b"   ", "a: two unfinished rounds, b: none, c: one");
    }

    #[tokio::test]
    async fn past_the_deadline_nothing_is_waited_for() {
        let builds = FakeBuilds::new(&[("a", 3)]);
        let (sender, mut receiver) = mpsc::channel(16);
        assert!(keep_alive_until_built(&builds, &ids(&["a"]), Instant::now(), &sender).await);
        drop(sender);
        assert!(receiver.recv().await.is_none());
        assert_eq!(builds.rounds_left.lock().unwrap()["a"], 3);
    }

    #[tokio::test]
    async fn a_client_that_left_stops_the_wait() {
        let builds = FakeBuilds::new(&[("a", 5), ("b", 5)]);
        let (sender, receiver) = mpsc::channel(16);
        drop(receiver);
        let far = Instant::now() + Duration::from_secs(3600);
        assert!(!keep_alive_until_built(&builds, &ids(&["a", "b"]), far, &sender).await);
        let rounds_left = builds.rounds_left.lock().unwrap();
        assert_eq!((rounds_left["a"], rounds_left["b"]), (4, 5));
    }
}
