//! The few facts of an MP4 that platforms check before they take it, read
//! from the file's first bytes: whether the `moov` box comes before the
//! media data (`+faststart`), the duration, the codecs and the picture
//! size. No decoder: the ISO BMFF box structure only.

/// What the first bytes of an MP4 tell.
#[derive(Debug, Clone, PartialEq)]
pub struct Mp4Facts {
    /// `moov` comes before `mdat` (a player, or Meta's fetcher, can start
    /// before the whole file is there).
    pub moov_at_front: bool,
    /// From `mvhd`; 0 when `moov` is not at the front.
    pub duration_secs: f64,
    /// The first video track's sample entry (`avc1`, `hvc1`, `hev1`, …).
    pub video_codec: Option<String>,
    /// The first audio track's sample entry (`mp4a`, …).
    pub audio_codec: Option<String>,
    /// The video sample entry's coded width.
    pub width: u32,
    /// The video sample entry's coded height.
    pub height: u32,
}

/// How many bytes of the file [`probe`] wants: enough for `ftyp` and the
/// `moov` of any short (a 15-minute 60 fps reel's is a few hundred KiB).
pub const PROBE_BYTES: u64 = 4 * 1024 * 1024;

struct Boxes<'a> {
    data: &'a [u8],
    at: usize,
}

/// One box: its type, and its payload (or as much of it as `data` holds).
struct Bx<'a> {
    kind: [u8; 4],
    body: &'a [u8],
    /// The whole box lies inside `data`.
    complete: bool,
}

impl<'a> Iterator for Boxes<'a> {
    type Item = Bx<'a>;

    fn next(&mut self) -> Option<Bx<'a>> {
        let rest = self.data.get(self.at..)?;
        if rest.len() < 8 {
            return None;
        }
        let size32 = u32::from_be_bytes(rest[0..4].try_into().ok()?);
        let kind: [u8; 4] = rest[4..8].try_into().ok()?;
        let (header, size) = match size32 {
            0 => (8usize, rest.len() as u64),
            1 => {
                let large = u64::from_be_bytes(rest.get(8..16)?.try_into().ok()?);
                (16, large)
            }
            n => (8, u64::from(n)),
        };
        if size < header as u64 {
            self.at = self.data.len();
            return None;
        }
        let size = usize::try_from(size).unwrap_or(usize::MAX);
        let complete = size <= rest.len();
        let end = size.min(rest.len());
        self.at = self.at.saturating_add(size);
        Some(Bx { kind, body: &rest[header..end], complete })
    }
}

fn boxes(data: &[u8]) -> Boxes<'_> {
    Boxes { data, at: 0 }
}

fn child<'a>(data: &'a [u8], kind: &[u8; 4]) -> Option<&'a [u8]> {
    boxes(data).find(|b| &b.kind == kind).map(|b| b.body)
}

fn be32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

fn be64(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_be_bytes(b.get(at..at + 8)?.try_into().ok()?))
}

fn be16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

fn fourcc(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Reads the facts from the first bytes of a file (at least `ftyp` and
/// `moov` when the file is fast-start; [`PROBE_BYTES`] is enough).
///
/// # Errors
/// A sentence when the bytes are not an MP4, or its `moov` is cut short.
pub fn probe(head: &[u8]) -> Result<Mp4Facts, String> {
    let mut seen_ftyp = false;
    for b in boxes(head) {
        match &b.kind {
            b"ftyp" => seen_ftyp = true,
            b"mdat" => {
                if !seen_ftyp {
                    break;
                }
                return Ok(Mp4Facts {
                    moov_at_front: false,
                    duration_secs: 0.0,
                    video_codec: None,
                    audio_codec: None,
                    width: 0,
                    height: 0,
                });
            }
            b"moov" if seen_ftyp => {
                if !b.complete {
                    return Err(format!("the moov box is larger than the first {} bytes", head.len()));
                }
                return moov(b.body);
            }
            _ => {}
        }
    }
    if seen_ftyp {
        Err(format!("no moov box in the first {} bytes", head.len()))
    } else {
        Err("not an MP4 file (no ftyp box at the start)".to_owned())
    }
}

fn moov(moov: &[u8]) -> Result<Mp4Facts, String> {
    let mvhd = child(moov, b"mvhd").ok_or("the moov box has no mvhd")?;
    let (timescale, duration) = if mvhd.first() == Some(&1) {
        (be32(mvhd, 20), be64(mvhd, 24))
    } else {
        (be32(mvhd, 12), be32(mvhd, 16).map(u64::from))
    };
    let (timescale, duration) = timescale.zip(duration).ok_or("the mvhd box is cut short")?;
    #[allow(clippy::cast_precision_loss)]
    let duration_secs = if timescale == 0 { 0.0 } else { duration as f64 / f64::from(timescale) };
    let mut facts =
        Mp4Facts { moov_at_front: true, duration_secs, video_codec: None, audio_codec: None, width: 0, height: 0 };
    for trak in boxes(moov).filter(|b| &b.kind == b"trak") {
        let Some(mdia) = child(trak.body, b"mdia") else { continue };
        // hdlr: version/flags (4), pre_defined (4), handler_type (4).
        let handler = child(mdia, b"hdlr").and_then(|h| h.get(8..12)).map(fourcc);
        let entry = child(mdia, b"minf")
            .and_then(|m| child(m, b"stbl"))
            .and_then(|s| child(s, b"stsd"))
            // stsd: version/flags (4), entry_count (4), then the first entry's box.
            .and_then(|s| s.get(8..))
            .and_then(|entries| boxes(entries).next().map(|e| (fourcc(&e.kind), e.body)));
        let Some((codec, body)) = entry else { continue };
        match handler.as_deref() {
            Some("vide") if facts.video_codec.is_none() => {
                // VisualSampleEntry: reserved (6), data_reference_index (2),
                // pre_defined/reserved (16), width (2), height (2).
                facts.width = be16(body, 24).map_or(0, u32::from);
                facts.height = be16(body, 26).map_or(0, u32::from);
                facts.video_codec = Some(codec);
            }
            Some("soun") if facts.audio_codec.is_none() => facts.audio_codec = Some(codec),
            _ => {}
        }
    }
    Ok(facts)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bx(kind: &[u8; 4], body: &[u8]) -> Vec<u8> {
        let mut v = u32::try_from(body.len() + 8).unwrap().to_be_bytes().to_vec();
        v.extend_from_slice(kind);
        v.extend_from_slice(body);
        v
    }

    fn trak(handler: &[u8; 4], codec: &[u8; 4], w: u16, h: u16) -> Vec<u8> {
        let mut hdlr = vec![0; 8];
        hdlr.extend_from_slice(handler);
        hdlr.extend_from_slice(&[0; 12]);
        let mut entry = vec![0; 24];
        entry.extend_from_slice(&w.to_be_bytes());
        entry.extend_from_slice(&h.to_be_bytes());
        let mut stsd = vec![0, 0, 0, 0, 0, 0, 0, 1];
        stsd.extend(bx(codec, &entry));
        let stbl = bx(b"stbl", &bx(b"stsd", &stsd));
        let mdia = [bx(b"hdlr", &hdlr), bx(b"minf", &stbl)].concat();
        bx(b"trak", &bx(b"mdia", &mdia))
    }

    fn file(faststart: bool) -> Vec<u8> {
        let mut mvhd = vec![0; 12];
        mvhd.extend_from_slice(&1000u32.to_be_bytes());
        mvhd.extend_from_slice(&42_500u32.to_be_bytes());
        mvhd.extend_from_slice(&[0; 80]);
        let moov = bx(
            b"moov",
            &[bx(b"mvhd", &mvhd), trak(b"vide", b"avc1", 1080, 1920), trak(b"soun", b"mp4a", 0, 0)].concat(),
        );
        let ftyp = bx(b"ftyp", b"isom\0\0\x02\0isomiso2avc1mp41");
        let mdat = bx(b"mdat", &[7; 1000]);
        if faststart { [ftyp, moov, mdat].concat() } else { [ftyp, mdat, moov].concat() }
    }

    #[test]
    fn a_faststart_file_shows_its_facts() {
        let f = probe(&file(true)).unwrap();
        assert!(f.moov_at_front);
        assert!((f.duration_secs - 42.5).abs() < 1e-9);
        assert_eq!((f.video_codec.as_deref(), f.audio_codec.as_deref()), (Some("avc1"), Some("mp4a")));
        assert_eq!((f.width, f.height), (1080, 1920));
    }

    #[test]
    fn moov_after_the_data_and_garbage_are_told_apart() {
        assert!(!probe(&file(false)).unwrap().moov_at_front);
        assert!(probe(b"random bytes that are not an mp4 at all").unwrap_err().contains("not an MP4"));
        let cut = &file(true)[..60];
        assert!(probe(cut).unwrap_err().contains("moov"), "{:?}", probe(cut));
        // A box claiming to be smaller than its header ends the walk, no panic.
        assert!(probe(&[0, 0, 0, 3, b'f', b't', b'y', b'p']).is_err());
    }
}
