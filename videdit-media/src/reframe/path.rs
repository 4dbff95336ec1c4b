//! From face detections to a framing: tracks, the subject (the face that
//! speaks, or the most present one), the layout, and a smooth camera path
//! written as keyframes. Pure functions over numbers; nothing here reads
//! media.

use videdit_core::recipe::{Keyframe, MAX_KEYFRAMES, Reframe};

/// One face found in one sampled frame, in fractions of the source frame.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Face {
    /// Centre, a fraction of the width.
    pub x: f64,
    /// Centre, a fraction of the height.
    pub y: f64,
    /// Side of the (square) box, a fraction of the height.
    pub size: f64,
    /// Detector score.
    pub score: f64,
}

/// What was seen in one sampled frame.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Sample {
    /// Source seconds.
    pub t: f64,
    /// The faces found, each with its mouth motion since the previous
    /// sample (mean absolute change of the mouth region less that of the
    /// upper face, in grey levels; `None` for the first sample of a face).
    pub faces: Vec<(Face, Option<f64>)>,
}

/// A face followed from sample to sample.
#[derive(Debug, Clone)]
pub struct Track {
    /// Per sample: the face, when seen.
    pub seen: Vec<Option<Face>>,
    /// Per sample: mouth motion, when measured.
    pub motion: Vec<Option<f64>>,
}

impl Track {
    /// Samples in which the face was seen.
    #[must_use]
    pub fn presence(&self) -> usize {
        self.seen.iter().flatten().count()
    }

    /// The face at sample `i`, or the nearest seen within `hold` samples
    /// (a missed detection is held, not dropped).
    #[must_use]
    pub fn at(&self, i: usize, hold: usize) -> Option<Face> {
        (0..=hold).find_map(|d| {
            let back = i.checked_sub(d).and_then(|j| self.seen.get(j).copied().flatten());
            back.or_else(|| self.seen.get(i + d).copied().flatten())
        })
    }

    fn median_size(&self) -> f64 {
        let mut s: Vec<f64> = self.seen.iter().flatten().map(|f| f.size).collect();
        s.sort_by(f64::total_cmp);
        s.get(s.len() / 2).copied().unwrap_or(0.0)
    }

    fn median_x(&self) -> f64 {
        let mut s: Vec<f64> = self.seen.iter().flatten().map(|f| f.x).collect();
        s.sort_by(f64::total_cmp);
        s.get(s.len() / 2).copied().unwrap_or(0.5)
    }
}

/// Tuning of the framing; [`Default`] is what the renderer uses.
#[derive(Debug, Clone, Copy)]
pub struct PathOptions {
    /// A face unseen for longer than this (seconds) ends its track.
    pub lost_after: f64,
    /// The camera does not move while the subject is this close to the
    /// centre (a fraction of the crop width).
    pub dead_zone: f64,
    /// Fastest pan, crop widths a second.
    pub max_speed: f64,
    /// Largest change of pan speed, crop widths a second per second.
    pub max_accel: f64,
    /// A speaker holds the camera at least this long (seconds).
    pub min_shot: f64,
    /// Half the window over which mouth motion is averaged (seconds).
    pub speech_window: f64,
    /// Half the window over which the subject's position is averaged
    /// before the camera follows it (seconds): detector jitter averages out.
    pub smooth: f64,
    /// Step of the simulated camera (seconds).
    pub step: f64,
    /// Largest distance of the keyframes' lines from the simulated path
    /// (a fraction of the source width).
    pub tolerance: f64,
}

impl Default for PathOptions {
    fn default() -> Self {
        Self {
            lost_after: 1.5,
            dead_zone: 0.06,
            max_speed: 0.8,
            max_accel: 2.5,
            min_shot: 1.2,
            speech_window: 0.6,
            smooth: 0.4,
            step: 0.1,
            tolerance: 0.002,
        }
    }
}

/// Follows faces across samples: each face joins the track whose last
/// face is nearest (within its size, of a similar size), else starts one.
#[must_use]
pub fn tracks(samples: &[Sample], sample_step: f64, options: &PathOptions) -> Vec<Track> {
    let n = samples.len();
    let lost = (options.lost_after / sample_step.max(1e-3)).ceil() as usize;
    let mut tracks: Vec<Track> = Vec::new();
    let mut last_seen: Vec<usize> = Vec::new();
    for (i, s) in samples.iter().enumerate() {
        let mut pairs: Vec<(f64, usize, usize)> = Vec::new();
        for (fi, (face, _)) in s.faces.iter().enumerate() {
            for (ti, t) in tracks.iter().enumerate() {
                if i - last_seen[ti] > lost {
                    continue;
                }
                let Some(prev) = t.seen[last_seen[ti]] else { continue };
                let d = ((face.x - prev.x) * 16.0 / 9.0).hypot(face.y - prev.y);
                let ratio = face.size / prev.size.max(1e-6);
                if d < prev.size.max(face.size) * 1.2 && (0.6..1.7).contains(&ratio) {
                    pairs.push((d, fi, ti));
                }
            }
        }
        pairs.sort_by(|a, b| a.0.total_cmp(&b.0));
        let mut face_used = vec![false; s.faces.len()];
        let mut track_used = vec![false; tracks.len()];
        for (_, fi, ti) in pairs {
            if face_used[fi] || track_used[ti] {
                continue;
            }
            face_used[fi] = true;
            track_used[ti] = true;
            tracks[ti].seen[i] = Some(s.faces[fi].0);
            tracks[ti].motion[i] = s.faces[fi].1;
            last_seen[ti] = i;
        }
        for (fi, (face, _)) in s.faces.iter().enumerate() {
            if !face_used[fi] {
                let mut t = Track { seen: vec![None; n], motion: vec![None; n] };
                t.seen[i] = Some(*face);
                tracks.push(t);
                last_seen.push(i);
            }
        }
    }
    // Fleeting detections (mostly false ones) are not subjects.
    let min_presence = (n / 10).max(2).min(n);
    tracks.retain(|t| t.presence() >= min_presence);
    tracks
}

/// Whether someone speaks at `t` (source seconds), from the words' times.
fn speaking(words: &[(f64, f64)], t: f64) -> bool {
    words.iter().any(|&(s, e)| t >= s - 0.1 && t <= e + 0.1)
}

/// Who speaks at each sample: the index of the track whose mouth moves
/// most while words are spoken (averaged over a window), held through
/// pauses; `None` where nobody can be told.
#[must_use]
pub fn speakers(
    tracks: &[Track],
    samples: &[Sample],
    words: &[(f64, f64)],
    sample_step: f64,
    options: &PathOptions,
) -> Vec<Option<usize>> {
    let n = samples.len();
    let half = (options.speech_window / sample_step.max(1e-3)).round() as usize;
    // Each track's motion less its own quiet level (its lower quartile),
    // so a face that is merely noisier does not win.
    let activity: Vec<Vec<f64>> = tracks
        .iter()
        .map(|t| {
            let mut m: Vec<f64> = t.motion.iter().flatten().copied().collect();
            m.sort_by(f64::total_cmp);
            let quiet = m.get(m.len() / 4).copied().unwrap_or(0.0);
            (0..n)
                .map(|i| {
                    let lo = i.saturating_sub(half);
                    let hi = (i + half).min(n - 1);
                    let (sum, count) = (lo..=hi)
                        .filter(|&j| speaking(words, samples[j].t))
                        .filter_map(|j| t.motion[j])
                        .fold((0.0, 0usize), |(s, c), m| (s + (m - quiet).max(0.0), c + 1));
                    if count == 0 { 0.0 } else { sum / count as f64 }
                })
                .collect()
        })
        .collect();
    let mut out: Vec<Option<usize>> = (0..n)
        .map(|i| {
            let mut best: Option<(usize, f64)> = None;
            let mut second = 0.0_f64;
            for (ti, a) in activity.iter().enumerate() {
                if tracks[ti].at(i, half).is_none() {
                    continue;
                }
                match best {
                    Some((_, b)) if a[i] <= b => second = second.max(a[i]),
                    _ => {
                        if let Some((_, b)) = best {
                            second = second.max(b);
                        }
                        best = Some((ti, a[i]));
                    }
                }
            }
            // A clear lead only: 0.5 grey levels and a third above the next face.
            best.filter(|&(_, b)| b > 0.5 && b > second * 1.35).map(|(ti, _)| ti)
        })
        .collect();
    // Pauses keep the last speaker; the start takes the first one.
    let first = out.iter().flatten().next().copied();
    let mut current = first;
    for s in &mut out {
        match s {
            Some(v) => current = Some(*v),
            None => *s = current,
        }
    }
    // Shots shorter than the minimum join the shot before them.
    let min = (options.min_shot / sample_step.max(1e-3)).round() as usize;
    let mut i = 0;
    while i < n {
        let mut j = i;
        while j < n && out[j] == out[i] {
            j += 1;
        }
        if j - i < min && i > 0 && j < n {
            let before = out[i - 1];
            out[i..j].iter_mut().for_each(|s| *s = before);
        }
        i = j;
    }
    out
}

/// The moment to cut from one speaker to the next around `t`: just
/// before the first word after the nearest pause (within half a second),
/// else `t`.
fn cut_time(words: &[(f64, f64)], t: f64) -> f64 {
    words
        .windows(2)
        .filter(|w| w[1].0 - w[0].1 >= 0.12)
        .map(|w| (w[1].0 - 0.1).max((w[0].1 + w[1].0) / 2.0))
        .filter(|c| (c - t).abs() <= 0.6)
        .min_by(|a, b| (a - t).abs().total_cmp(&(b - t).abs()))
        .unwrap_or(t)
}

/// A smooth camera along `targets` (time, centre x as a fraction of the
/// width; `cut` where the subject changes): a dead zone, limits on speed
/// and acceleration, a jump at each cut; then keyframes that stay within
/// the tolerance of it. `crop_w` is the crop's width as a fraction of the
/// source width; centres stay where the crop fits.
#[must_use]
pub fn camera(targets: &[(f64, f64, bool)], crop_w: f64, options: &PathOptions) -> Vec<(f64, f64, bool)> {
    // Averaged over a window, never across a cut.
    let mut run = 0;
    let runs: Vec<usize> = targets
        .iter()
        .map(|t| {
            run += usize::from(t.2);
            run
        })
        .collect();
    let targets: Vec<(f64, f64, bool)> = targets
        .iter()
        .enumerate()
        .map(|(i, &(t, _, cut))| {
            let near: Vec<f64> = (0..targets.len())
                .filter(|&j| runs[j] == runs[i] && (targets[j].0 - t).abs() <= options.smooth)
                .map(|j| targets[j].1)
                .collect();
            (t, near.iter().sum::<f64>() / near.len() as f64, cut)
        })
        .collect();
    let Some(&(t0, x0, _)) = targets.first() else { return Vec::new() };
    let (lo, hi) = (crop_w / 2.0, 1.0 - crop_w / 2.0);
    let fit = |x: f64| if lo <= hi { x.clamp(lo, hi) } else { 0.5 };
    let (dz, vmax, amax) = (options.dead_zone * crop_w, options.max_speed * crop_w, options.max_accel * crop_w);
    let mut path = vec![(t0, fit(x0), false)];
    let (mut x, mut v) = (fit(x0), 0.0_f64);
    for w in targets.windows(2) {
        let (ta, _, _) = w[0];
        let (tb, xb, cut) = w[1];
        if cut {
            x = fit(xb);
            v = 0.0;
            path.push((tb, x, true));
            continue;
        }
        let steps = ((tb - ta) / options.step).ceil().max(1.0) as usize;
        let dt = (tb - ta) / steps as f64;
        for k in 1..=steps {
            let f = k as f64 / steps as f64;
            let target = fit(w[0].1 + (xb - w[0].1) * f);
            let err = target - x;
            // Outside the dead zone, head for the subject at a speed that
            // lets the camera stop in time (v² = 2·a·d), never above vmax.
            let desired = if err.abs() > dz {
                err.signum() * (2.0 * amax * (err.abs() - dz / 2.0)).sqrt().min(vmax)
            } else {
                0.0
            };
            v += (desired - v).clamp(-amax * dt, amax * dt);
            x = fit(x + v * dt);
            path.push((ta + dt * k as f64, x, false));
        }
    }
    // Within the recipe's limit: a coarser tolerance for a long, busy path
    // (cuts and ends always stay, and shots of at least `min_shot` keep
    // them well under it).
    let mut tolerance = options.tolerance;
    let mut keys = simplify(&path, tolerance);
    for _ in 0..16 {
        if keys.len() <= MAX_KEYFRAMES {
            break;
        }
        tolerance *= 2.0;
        keys = simplify(&path, tolerance);
    }
    keys
}

/// The points of `path` needed to draw it with straight lines within
/// `tolerance` (Ramer–Douglas–Peucker, per run between cuts).
fn simplify(path: &[(f64, f64, bool)], tolerance: f64) -> Vec<(f64, f64, bool)> {
    fn rdp(p: &[(f64, f64, bool)], tol: f64, keep: &mut [bool], offset: usize) {
        if p.len() < 3 {
            return;
        }
        let (a, b) = (p[0], p[p.len() - 1]);
        let (mut worst, mut at) = (0.0, 0);
        for (i, q) in p.iter().enumerate().take(p.len() - 1).skip(1) {
            let f = if b.0 > a.0 { (q.0 - a.0) / (b.0 - a.0) } else { 0.0 };
            let d = (q.1 - (a.1 + (b.1 - a.1) * f)).abs();
            if d > worst {
                worst = d;
                at = i;
            }
        }
        if worst > tol {
            keep[offset + at] = true;
            rdp(&p[..=at], tol, keep, offset);
            rdp(&p[at..], tol, keep, offset + at);
        }
    }
    let mut keep = vec![false; path.len()];
    let mut start = 0;
    for i in 0..path.len() {
        let boundary = i == 0 || i + 1 == path.len() || path[i].2 || path.get(i + 1).is_some_and(|p| p.2);
        if boundary {
            keep[i] = true;
            if i > start {
                rdp(&path[start..=i], tolerance, &mut keep, start);
            }
            start = i;
        }
    }
    path.iter().zip(keep).filter(|(_, k)| *k).map(|(p, _)| *p).collect()
}

/// The geometry of a framing: the source's shape and the output's.
#[derive(Debug, Clone, Copy)]
pub struct Shapes {
    /// Source width / height.
    pub source_aspect: f64,
    /// Output width / height.
    pub out_aspect: f64,
}

/// What was found, for logs and the bench.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FramingStats {
    /// Sampled frames.
    pub samples: usize,
    /// Faces followed (tracks).
    pub tracks: usize,
    /// Changes of speaker the path cuts at.
    pub cuts: usize,
}

fn keyframes(path: &[(f64, f64, bool)], y: f64) -> Vec<Keyframe> {
    path.iter().map(|&(t, x, cut)| Keyframe { t, x: x as f32, y: y.clamp(0.0, 1.0) as f32, cut }).collect()
}

/// The framing `requested` (`auto`, or `track` / `split` without a path)
/// for a clip whose samples are `samples` (every `sample_step` seconds)
/// and whose words are spoken at `words` (source seconds).
#[must_use]
pub fn framing(
    requested: &Reframe,
    samples: &[Sample],
    sample_step: f64,
    words: &[(f64, f64)],
    shapes: Shapes,
    options: &PathOptions,
) -> (Reframe, FramingStats) {
    let tracks = tracks(samples, sample_step, options);
    let mut stats = FramingStats { samples: samples.len(), tracks: tracks.len(), cuts: 0 };
    let n = samples.len();
    let hold = (options.lost_after / sample_step).ceil() as usize;
    let present = |t: &Track| t.presence() as f64 / n.max(1) as f64;
    if tracks.is_empty() || n == 0 {
        let fallback = match requested {
            Reframe::Track { .. } | Reframe::Split { .. } => Reframe::Crop { x: None },
            _ => Reframe::Fit,
        };
        return (fallback, stats);
    }
    let speaker = speakers(&tracks, samples, words, sample_step, options);
    let crop_w = (shapes.out_aspect / shapes.source_aspect).min(1.0);

    // Two people, both there most of the time, both speaking, too far
    // apart for one crop: a split screen (asked for, or chosen).
    let mut by_presence: Vec<usize> = (0..tracks.len()).collect();
    by_presence.sort_by_key(|&i| std::cmp::Reverse(tracks[i].presence()));
    let pair = (by_presence.len() >= 2).then(|| (by_presence[0], by_presence[1]));
    let speaks = |ti: usize| speaker.iter().filter(|s| **s == Some(ti)).count() as f64 / n as f64;
    if let Some((a, b)) = pair {
        let apart = (tracks[a].median_x() - tracks[b].median_x()).abs() > crop_w * 0.6;
        let both_there = present(&tracks[a]) >= 0.6 && present(&tracks[b]) >= 0.6;
        let both_speak = speaks(a) >= 0.15 && speaks(b) >= 0.15;
        let split_asked = matches!(requested, Reframe::Split { .. });
        if split_asked || (matches!(requested, Reframe::Auto) && apart && both_there && both_speak) {
            let (left, right) = if tracks[a].median_x() <= tracks[b].median_x() { (a, b) } else { (b, a) };
            // Each half shows its face about a third of the half's height.
            let half_aspect = shapes.out_aspect * 2.0;
            let size = tracks[left].median_size().max(tracks[right].median_size());
            let zoom = (size * 3.0).clamp(0.35, 1.0);
            let panel_w = (zoom * half_aspect / shapes.source_aspect).min(1.0);
            let panel = |ti: usize| {
                let targets: Vec<(f64, f64, bool)> =
                    (0..n).filter_map(|i| tracks[ti].at(i, hold).map(|f| (samples[i].t, f.x, false))).collect();
                let ys: Vec<f64> = tracks[ti].seen.iter().flatten().map(|f| f.y + f.size * 0.15).collect();
                let y = ys.iter().sum::<f64>() / ys.len().max(1) as f64;
                // The crop stays inside the source vertically too.
                let y = y.clamp(zoom / 2.0, 1.0 - zoom / 2.0);
                keyframes(&camera(&targets, panel_w, options), y)
            };
            return (Reframe::Split { zoom: zoom as f32, top: panel(left), bottom: panel(right) }, stats);
        }
    }

    // One subject at a time: the speaker where one can be told, else the
    // most present face; a cut when the subject changes.
    let main = by_presence[0];
    let mut targets: Vec<(f64, f64, bool)> = Vec::new();
    let mut previous: Option<usize> = None;
    for i in 0..n {
        let subject = speaker[i].filter(|&s| tracks[s].at(i, hold).is_some()).unwrap_or(main);
        let Some(face) = tracks[subject].at(i, hold).or_else(|| previous.and_then(|p| tracks[p].at(i, hold))) else {
            continue;
        };
        let cut = previous.is_some_and(|p| p != subject);
        if cut {
            let at = cut_time(words, samples[i].t - sample_step / 2.0);
            // The old subject until the cut, the new one from it.
            if let Some(&(t, x, _)) = targets.last()
                && at > t
            {
                targets.push((at - 1e-3, x, false));
            }
            targets.push((at.max(targets.last().map_or(at, |l| l.0 + 1e-3)), face.x, true));
            stats.cuts += 1;
        }
        if targets.last().is_none_or(|l| samples[i].t > l.0) {
            targets.push((samples[i].t, face.x, false));
        }
        previous = Some(subject);
    }
    (Reframe::Track { keyframes: keyframes(&camera(&targets, crop_w, options), 0.5) }, stats)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn face(x: f64) -> Face {
        Face { x, y: 0.4, size: 0.25, score: 10.0 }
    }

    #[test]
    fn the_camera_holds_in_its_dead_zone_follows_smoothly_and_cuts() {
        let o = PathOptions::default();
        let crop_w = 0.316;
        // Small jitter around 0.5: no movement at all.
        let jitter: Vec<_> =
            (0..50).map(|i| (f64::from(i) * 0.2, 0.5 + if i % 2 == 0 { 0.01 } else { -0.01 }, false)).collect();
        let still = camera(&jitter, crop_w, &o);
        assert_eq!(still.len(), 2, "a jittering subject inside the dead zone leaves the camera still: {still:?}");
        // A jump of the subject: the camera accelerates, arrives and stops, without overshoot.
        let mut jump: Vec<_> = (0..10).map(|i| (f64::from(i) * 0.2, 0.4, false)).collect();
        jump.extend((10..60).map(|i| (f64::from(i) * 0.2, 0.6, false)));
        let path = camera(&jump, crop_w, &o);
        let end = path.last().unwrap();
        assert!((end.1 - 0.6).abs() < o.dead_zone * crop_w, "{end:?}");
        assert!(path.iter().all(|p| p.1 <= 0.6 + 1e-9), "no overshoot: {path:?}");
        let speeds: Vec<f64> = path.windows(2).map(|w| (w[1].1 - w[0].1) / (w[1].0 - w[0].0)).collect();
        assert!(speeds.iter().all(|v| v.abs() <= o.max_speed * crop_w + 1e-9), "{speeds:?}");
        // A cut jumps at once.
        let cut = [(0.0, 0.3, false), (1.0, 0.3, false), (1.0, 0.7, true), (2.0, 0.7, false)];
        let path = camera(&cut, crop_w, &o);
        assert!(path.iter().any(|p| p.2 && (p.1 - 0.7).abs() < 1e-9 && (p.0 - 1.0).abs() < 1e-9), "{path:?}");
        // A subject wandering for three minutes still fits the recipe's limit.
        let wander: Vec<_> =
            (0..900).map(|i| (f64::from(i) * 0.2, 0.5 + 0.3 * (f64::from(i) * 0.7).sin(), false)).collect();
        assert!(camera(&wander, crop_w, &o).len() <= MAX_KEYFRAMES);
        // Centres stay where the crop fits.
        let edge = camera(&[(0.0, 0.0, false), (1.0, 1.0, false)], crop_w, &o);
        assert!(edge.iter().all(|p| p.1 >= crop_w / 2.0 - 1e-9 && p.1 <= 1.0 - crop_w / 2.0 + 1e-9));
    }

    #[test]
    fn faces_are_followed_and_the_speaking_one_is_chosen() {
        // Two faces; the left one's mouth moves for the first 5 s of speech, then the right one's.
        let words: Vec<(f64, f64)> = (0..50).map(|i| (f64::from(i) * 0.2, f64::from(i) * 0.2 + 0.15)).collect();
        let samples: Vec<Sample> = (0..50)
            .map(|i| {
                let t = f64::from(i) * 0.2;
                let (l, r) = if t < 5.0 { (6.0, 0.3) } else { (0.4, 5.0) };
                Sample { t, faces: vec![(face(0.25), Some(l)), (face(0.75 + 0.002 * f64::from(i % 3)), Some(r))] }
            })
            .collect();
        let o = PathOptions::default();
        let tracks = tracks(&samples, 0.2, &o);
        assert_eq!(tracks.len(), 2);
        let who = speakers(&tracks, &samples, &words, 0.2, &o);
        let left = tracks.iter().position(|t| t.seen[0].unwrap().x < 0.5).unwrap();
        assert_eq!(who[5], Some(left));
        assert_eq!(who[45], Some(1 - left));
        let shapes = Shapes { source_aspect: 16.0 / 9.0, out_aspect: 9.0 / 16.0 };
        let (r, stats) = framing(&Reframe::Track { keyframes: vec![] }, &samples, 0.2, &words, shapes, &o);
        let Reframe::Track { keyframes } = r else { panic!("{r:?}") };
        assert_eq!(stats.cuts, 1);
        let cut = keyframes.iter().find(|k| k.cut).unwrap();
        assert!((cut.t - 5.0).abs() < 0.5, "{cut:?}");
        let (auto, _) = framing(&Reframe::Auto, &samples, 0.2, &words, shapes, &o);
        assert!(matches!(auto, Reframe::Split { .. }), "two speakers far apart: {auto:?}");
        let (none, _) = framing(&Reframe::Auto, &[Sample { t: 0.0, faces: vec![] }], 0.2, &words, shapes, &o);
        assert_eq!(none, Reframe::Fit);
    }
}
