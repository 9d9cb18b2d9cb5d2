//! Content codings of a page (RFC 9110 §12.5.3): which one a client's `Accept-Encoding`
//! picks, and compressing a page into it. pip sends `gzip, deflate`, uv `gzip, deflate,
//! zstd`; a client that sends nothing gets the page as it is.

use bytes::Bytes;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Coding {
    Identity,
    Gzip,
    Zstd,
}

/// Measured on a 22 MB JSON page of 40,000 files (bench/RESULTS.md): zstd level 1 is
/// smaller than level 3 on these pages (hex digests) in a third of the time (0.03 s).
const ZSTD_LEVEL: i32 = 1;

impl Coding {
    /// The `Content-Encoding` value; `None` for identity, which is sent without one.
    pub fn header_value(self) -> Option<&'static str> {
        match self {
            Self::Identity => None,
            Self::Gzip => Some("gzip"),
            Self::Zstd => Some("zstd"),
        }
    }

    /// Distinguishes the strong validators of one page's codings (RFC 9110 §8.8.3.3: each
    /// representation has its own).
    pub fn etag_suffix(self) -> &'static str {
        match self {
            Self::Identity => "",
            Self::Gzip => "-gzip",
            Self::Zstd => "-zstd",
        }
    }

    /// `body` in this coding. Writing into memory cannot fail.
    pub fn compress(self, body: &[u8]) -> Bytes {
        super::exact(match self {
            Self::Identity => body.to_vec(),
            Self::Gzip => super::gzip::gzip(body),
            // Its buffer is the worst case, the page's size: `exact` gives the rest back.
            Self::Zstd => zstd::bulk::compress(body, ZSTD_LEVEL).expect("zstd into memory"),
        })
    }

    fn named(name: &str) -> Option<Self> {
        match name {
            "identity" => Some(Self::Identity),
            "gzip" | "x-gzip" => Some(Self::Gzip),
            "zstd" => Some(Self::Zstd),
            _ => None,
        }
    }
}

/// The server's preference among codings a client accepts equally.
const PREFERENCE: [Coding; 3] = [Coding::Zstd, Coding::Gzip, Coding::Identity];

/// The coding for an `Accept-Encoding` header: the highest q-value among the codings the
/// server has, then zstd before gzip before identity. `*` stands for every coding the
/// header does not name. Identity is the answer when nothing else is acceptable, also when
/// the header refuses it: a page is better than a 406.
pub fn choose(accept_encoding: Option<&str>) -> Coding {
    let Some(header) = accept_encoding else {
        return Coding::Identity;
    };
    let mut named: Vec<(Coding, f32)> = Vec::new();
    let mut wildcard: Option<f32> = None;
    for item in header.split(',') {
        let mut parts = item.split(';');
        let name = parts.next().unwrap_or_default().trim().to_ascii_lowercase();
        let mut quality = Some(1.0);
        for parameter in parts {
            if let Some((key, value)) = parameter.split_once('=') {
                if key.trim().eq_ignore_ascii_case("q") {
                    quality = value
                        .trim()
                        .parse()
                        .ok()
                        .filter(|q: &f32| (0.0..=1.0).contains(q));
                }
            }
        }
        let Some(quality) = quality else { continue };
        if name == "*" {
            wildcard = Some(quality);
        } else if let Some(coding) = Coding::named(&name) {
            named.push((coding, quality));
        }
    }
    let quality_of = |coding: Coding| {
        named
            .iter()
            .filter(|(named, _)| *named == coding)
            .map(|(_, q)| *q)
            .reduce(f32::max)
            .or(wildcard)
    };
    PREFERENCE
        .iter()
        .filter(|coding| **coding != Coding::Identity)
        .filter_map(|coding| quality_of(*coding).map(|q| (*coding, q)))
        .filter(|(_, q)| *q > 0.0)
        .fold(
            None,
            |best: Option<(Coding, f32)>, (coding, q)| match best {
                Some((_, best_q)) if best_q >= q => best,
                _ => Some((coding, q)),
            },
        )
        .map_or(Coding::Identity, |(coding, _)| coding)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read as _;

    #[test]
    fn choice_table() {
        let table = [
            (None, Coding::Identity),
            (Some(""), Coding::Identity),
            (Some("gzip, deflate"), Coding::Gzip),       // pip
            (Some("gzip, deflate, zstd"), Coding::Zstd), // uv
            (Some("gzip, deflate, br, zstd"), Coding::Zstd), // browsers
            (Some("identity"), Coding::Identity),
            (Some("br"), Coding::Identity),
            (Some("GZip"), Coding::Gzip),
            (Some("x-gzip"), Coding::Gzip),
            (Some("*"), Coding::Zstd),
            (Some("zstd;q=0, *"), Coding::Gzip),
            (Some("zstd;q=0.5, gzip;q=0.8"), Coding::Gzip),
            (Some("zstd;q=0.8, gzip;q=0.8"), Coding::Zstd),
            (Some("gzip;q=0"), Coding::Identity),
            (Some("gzip;q=2"), Coding::Identity),
            (Some("identity;q=0"), Coding::Identity),
        ];
        for (header, expected) in table {
            assert_eq!(choose(header), expected, "{header:?}");
        }
    }

    #[test]
    fn compressed_bodies_decode_to_the_page() {
        let page = "<a href=\"/files/abc/demo-1.0.tar.gz\">demo-1.0.tar.gz</a><br>\n".repeat(500);
        let gzip = Coding::Gzip.compress(page.as_bytes());
        let mut decoded = String::new();
        flate2::read::GzDecoder::new(&gzip[..])
            .read_to_string(&mut decoded)
            .unwrap();
        assert_eq!(decoded, page);
        let zstd = Coding::Zstd.compress(page.as_bytes());
        assert_eq!(zstd::decode_all(&zstd[..]).unwrap(), page.as_bytes());
        assert!(gzip.len() < page.len() / 10 && zstd.len() < page.len() / 10);
    }
}
