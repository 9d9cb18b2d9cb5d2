//! A page as ONE gzip member (RFC 1952), compressed on every core when it is large.
//!
//! One member, not chunks compressed side by side as concatenated members (RFC 1952 §2.2
//! allows them): pip decodes those whole, but uv 0.13 (reqwest) stops after the first
//! member and fails on the truncated page. A large page is cut into chunks instead, each
//! deflated on its own thread as raw deflate (RFC 1951) that ends on a byte boundary with a
//! sync flush, the last one ending the stream; the chunks follow one header, and one CRC-32
//! of the whole page (combined from the chunks') and its length close the member. Each
//! chunk starts without the previous one's 32 KiB window: on chunks of 1 MiB that costs
//! well under 1 % of the size.

use std::io::Write as _;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use flate2::{Compress, Compression, FlushCompress, Status};

/// Measured on a 22 MB JSON page of 40,000 files (bench/RESULTS.md): level 4 is within
/// 0.2 % of level 6's size in half its time, and level 2 within 1.1 % of level 4's in
/// two thirds of its time (0.19 s against 0.29 s, one thread, loaded machine). Level 1 is
/// faster still but 57 % larger.
const LEVEL: u32 = 2;

/// Pages from this size on are compressed in chunks of this size, on every core.
const CHUNK: usize = 1 << 20;

/// `body` as one gzip member. Writing into memory cannot fail.
pub fn gzip(body: &[u8]) -> Vec<u8> {
    let threads = std::thread::available_parallelism().map_or(1, usize::from);
    if body.len() < 2 * CHUNK || threads < 2 {
        return one_thread(body);
    }
    in_chunks(body, CHUNK, threads)
}

fn one_thread(body: &[u8]) -> Vec<u8> {
    let mut encoder =
        flate2::write::GzEncoder::new(Vec::with_capacity(body.len() / 4), Compression::new(LEVEL));
    encoder.write_all(body).expect("gzip into memory");
    encoder.finish().expect("gzip into memory")
}

/// A chunk deflated, with the CRC-32 of its input.
struct Deflated {
    bytes: Vec<u8>,
    crc: flate2::Crc,
}

/// `body` cut into `chunk`-byte chunks, deflated by `threads` threads (this one among
/// them), each taking the next chunk not yet taken.
fn in_chunks(body: &[u8], chunk: usize, threads: usize) -> Vec<u8> {
    let chunks: Vec<&[u8]> = body.chunks(chunk).collect();
    let done: Vec<Mutex<Option<Deflated>>> = chunks.iter().map(|_| Mutex::new(None)).collect();
    let next = AtomicUsize::new(0);
    let work = || {
        loop {
            let index = next.fetch_add(1, Ordering::Relaxed);
            let Some(input) = chunks.get(index) else {
                return;
            };
            let deflated = deflate(input, index + 1 == chunks.len());
            *done[index]
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(deflated);
        }
    };
    std::thread::scope(|scope| {
        for _ in 1..threads.min(chunks.len()) {
            scope.spawn(work);
        }
        work();
    });
    let parts: Vec<Deflated> = done
        .into_iter()
        .map(|part| {
            part.into_inner()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                // Every index below the chunk count was taken, and each taker filled its
                // slot before the scope ended (a panic would have ended the scope with it).
                .expect("every chunk deflated")
        })
        .collect();
    member(&parts, body.len())
}

/// One raw deflate chunk: ended by a sync flush (an empty stored block, so the next chunk
/// starts on a byte boundary), or, for the last, by the final block.
fn deflate(input: &[u8], last: bool) -> Deflated {
    let mut compressor = Compress::new(Compression::new(LEVEL), false);
    let flush = match last {
        true => FlushCompress::Finish,
        false => FlushCompress::Sync,
    };
    let mut bytes = Vec::with_capacity(input.len() / 4 + 64);
    loop {
        let consumed = compressor.total_in() as usize;
        let status = compressor
            .compress_vec(&input[consumed..], &mut bytes, flush)
            .expect("deflate into memory");
        let all_in = compressor.total_in() as usize == input.len();
        // zlib's rule: a flush is complete once a call leaves output space unused.
        let finished = match last {
            true => status == Status::StreamEnd,
            false => all_in && bytes.len() < bytes.capacity(),
        };
        if finished {
            break;
        }
        bytes.reserve(bytes.capacity() / 2 + 64);
    }
    let mut crc = flate2::Crc::new();
    crc.update(input);
    Deflated { bytes, crc }
}

/// The gzip header of flate2's encoder at `LEVEL` (no name, no time, unknown system),
/// the chunks, and the trailer: the CRC-32 and length (modulo 2^32) of the whole input.
fn member(parts: &[Deflated], input_length: usize) -> Vec<u8> {
    const HEADER: [u8; 10] = [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 255];
    let length = HEADER.len() + parts.iter().map(|part| part.bytes.len()).sum::<usize>() + 8;
    let mut member = Vec::with_capacity(length);
    member.extend_from_slice(&HEADER);
    let mut crc = flate2::Crc::new();
    for part in parts {
        member.extend_from_slice(&part.bytes);
        crc.combine(&part.crc);
    }
    member.extend_from_slice(&crc.sum().to_le_bytes());
    // RFC 1952 §2.3.1: ISIZE is the input's length modulo 2^32.
    member.extend_from_slice(&(input_length as u32).to_le_bytes());
    member
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read as _;

    /// Text that compresses like a page but not to nothing: lines with a counter.
    fn page(length: usize) -> Vec<u8> {
        let mut text = Vec::with_capacity(length + 64);
        let mut line = 0u64;
        while text.len() < length {
            let digest = line.wrapping_mul(0x9e37_79b9_7f4a_7c15);
            writeln!(
                text,
                "{{\"filename\":\"demo-1.{line}.whl\",\"sha256\":\"{digest:x}\"}},"
            )
            .unwrap();
            line += 1;
        }
        text.truncate(length);
        text
    }

    /// Decoded by flate2's single-member decoder, which stops after the first member as
    /// uv does: the whole input must come out of it, with nothing left behind it.
    fn decode_one_member(gzip: &[u8]) -> Vec<u8> {
        let mut decoder = flate2::bufread::GzDecoder::new(gzip);
        let mut decoded = Vec::new();
        decoder.read_to_end(&mut decoded).unwrap();
        assert!(
            decoder.into_inner().is_empty(),
            "bytes after the first member"
        );
        decoded
    }

    #[test]
    fn chunked_pages_are_one_member_around_the_chunk_boundaries() {
        let chunk = 4096;
        for length in [
            1,
            chunk - 1,
            chunk,
            chunk + 1,
            2 * chunk - 1,
            2 * chunk,
            2 * chunk + 1,
            7 * chunk + 13,
        ] {
            let input = page(length);
            for threads in [2, 3] {
                let gzip = in_chunks(&input, chunk, threads);
                assert_eq!(
                    decode_one_member(&gzip),
                    input,
                    "{length} bytes, {threads} threads"
                );
            }
        }
    }

    #[test]
    fn a_page_of_a_few_chunks_is_compressed_in_parallel_as_one_member() {
        let input = page(2 * CHUNK + 1);
        let parallel = in_chunks(&input, CHUNK, 2);
        assert_eq!(decode_one_member(&parallel), input);
        let whole = one_thread(&input);
        assert_eq!(parallel[..10], whole[..10], "flate2's header");
        assert!(
            parallel.len() < whole.len() + whole.len() / 100,
            "within 1 % of one stream: {} against {}",
            parallel.len(),
            whole.len()
        );
        assert_eq!(decode_one_member(&gzip(b"")), b"");
    }
}
